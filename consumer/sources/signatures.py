"""Signed Live Events (HTTPS delivery): a request's body in, the bytes Canvas signed out, or a refusal naming why.

With "Sign Payload" on, Canvas POSTs each event as a compact JWT signed with
RS256; the header's `kid` names one of three keys (previous, current, next)
that Canvas publishes as a JWKS and rotates monthly. `KeySet` holds those
keys (from a URL, or a file on closed networks) and `Verifier` checks one
body against them. Every refusal is `Unverified` (the receiver answers 401
and counts `kind`, a bounded label); having no key to check a token with
(the JWKS cannot be fetched) is the receiver's problem, not the sender's, so
it is `KeysUnavailable` (503: Canvas delivers again later).

What is trusted: only RS256, only keys of the JWKS that are RSA, for
signatures, and at least 2,048 bits. The signature is checked by PyJWT's
RS256 algorithm object (PKCS#1 v1.5 with SHA-256, on `cryptography`), the
only one this module holds: whatever a header says, `none`, HS* with the
public key as the secret, ES* or PS* cannot be used to check a token. This
module splits the compact token and base64url-decodes its segments itself,
as strictly as PyJWT's `decode` does (the base64url alphabet only, at most
two `=` of padding, no impossible length): PyJWT's own decoding checks the
alphabet one character at a time in Python, which was 60% of the time of a
verification (100 to 35 us) on a receiver taking thousands a second. It
chooses the key, checks the time claims and the issuer (pure comparisons,
so the reasons can say what the values were), and returns the payload
segment's exact bytes: what was signed is what the pipeline parses, never a
re-encoding.

Keys are cached for `ttl` seconds. Past that they are still used while one
background thread fetches them again (stale-while-revalidate): a request
whose key is held never waits on the network. An unknown `kid` (a rotation)
fetches the JWKS at once, at most once per `refetch_interval`; with no key
at all (the URL unreachable since start), at most every 5 s. While the JWKS
cannot be fetched, a kid not held may be a new key (a rotation): that too is
KeysUnavailable, so the event is delivered again rather than dropped.
"""

from __future__ import annotations

import binascii
import http.client
import json
import logging
import math
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.utils import base64url_decode

from consumer.clock import REAL_CLOCK, Clock
from consumer.core import ConfigurationError
from consumer.text import one_line, safe_text

log = logging.getLogger(__name__)

ALGORITHM = "RS256"
MIN_KEY_BITS = 2048
MAX_JWKS_BYTES = 1 << 20  # a JWKS of three keys is about 1.5 KB; more is not a JWKS
NO_KEYS_RETRY = 5.0  # seconds between two fetches while no key is held at all
KINDS = frozenset({"unsigned", "malformed", "algorithm", "unknown_kid", "bad_signature", "expired", "not_yet_valid",
                   "issuer", "claims"})

# PyJWT with RS256 registered and nothing else: even a token that got past the header check below could not
# be verified with another algorithm (HS256 with the public key as its secret, `none`).
_RS256 = jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA256)
# A compact JWT is the base64url alphabet and dots (PyJWT also takes '=' padding). Anything else is not one:
# an unsigned event (JSON) when those are allowed.
_TOKEN = re.compile(rb"[A-Za-z0-9_\-=.]+")
_SHOWN = 40  # characters of a hostile value (a kid, an issuer) quoted in a reason


class Unverified(Exception):
    """The body cannot be trusted (the receiver answers 401 and does not store it).

    `kind` is one of KINDS (a metrics label); `reason` is one safe line naming what was wrong.
    """

    def __init__(self, kind: str, reason: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown refusal kind {kind!r}")
        self.kind = kind
        self.reason = one_line(reason) or kind
        super().__init__(self.reason)


class KeysUnavailable(Exception):
    """No key to verify with: the JWKS could not be fetched (or none is configured). The sender may try again."""


class KeyNotHeld(Exception):
    """`Verifier.verify(body, fetch=False)`: the body names a key not held; verifying it may wait on the network."""


def looks_like_jwt(body: bytes) -> bool:
    """Whether `body` is meant as a compact JWT (base64url and dots) rather than an unsigned event (JSON)."""
    return _is_token(body.strip())


def _is_token(token: bytes) -> bool:
    return b"." in token and _TOKEN.fullmatch(token) is not None


# -- the keys ------------------------------------------------------------------------------------------------------


class JwksError(ValueError):
    """A JWKS that cannot be used; the message says why, in one line."""


@dataclass(frozen=True)
class ParsedJwks:
    keys: dict[str, RSAPublicKey]
    skipped: tuple[str, ...]  # one safe line per key that cannot verify RS256 signatures, naming why


def parse_jwks(data: bytes) -> ParsedJwks:
    """The RS256 signing keys of a JWKS document, by kid; raises JwksError when it has none (or is not a JWKS).

    Keys of another type (EC, oct), for another use (`enc`) or algorithm, under 2,048 bits, without a kid
    or with a kid seen before are skipped, each named in `skipped`. Only the public members (`n`, `e`) are
    read: a JWKS that wrongly publishes the private ones gives its public key all the same.
    """
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise JwksError(f"not JSON: {one_line(str(error), 120)}") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksError('not a JWKS: expected a JSON object with a "keys" list')
    keys: dict[str, RSAPublicKey] = {}
    skipped: list[str] = []
    for index, entry in enumerate(document["keys"]):
        kid, problem = _usable(entry, index)
        if problem is None and kid in keys:
            problem = f"key {_shown(kid)}: a second key with this kid"
        if problem is None:
            try:
                key = jwt.PyJWK({"kty": "RSA", "n": entry.get("n"), "e": entry.get("e")}, algorithm=ALGORITHM).key
            except (jwt.PyJWTError, ValueError, TypeError) as error:  # PyJWT wraps most; cryptography's own
                problem = f"key {_shown(kid)}: {one_line(str(error), 80) or type(error).__name__}"
            else:
                if not isinstance(key, RSAPublicKey):  # from_jwk gives a private key only from private members
                    problem = f"key {_shown(kid)}: not an RSA public key"
                elif key.key_size < MIN_KEY_BITS:
                    problem = f"key {_shown(kid)}: RSA key of {key.key_size} bits, under {MIN_KEY_BITS}"
                else:
                    keys[kid] = key
        if problem is not None:
            skipped.append(problem)
    if not keys:
        detail = f" ({'; '.join(skipped[:5])})" if skipped else ""
        raise JwksError(f"no usable RSA signing key{detail}")
    return ParsedJwks(keys, tuple(skipped))


def _usable(entry: Any, index: int) -> tuple[str, str | None]:
    """(kid, None) for an RSA signing key entry, or (kid or "", why it is skipped)."""
    if not isinstance(entry, dict):
        return "", f"key #{index + 1}: not a JSON object"
    kid = entry.get("kid")
    if not isinstance(kid, str) or not kid:
        return "", f"key #{index + 1}: no kid"
    if entry.get("kty") != "RSA":
        return kid, f"key {_shown(kid)}: type {_shown(entry.get('kty'))}, not RSA"
    if entry.get("use", "sig") != "sig":
        return kid, f"key {_shown(kid)}: use {_shown(entry.get('use'))}, not sig"
    if entry.get("alg", ALGORITHM) != ALGORITHM:
        return kid, f"key {_shown(kid)}: algorithm {_shown(entry.get('alg'))}, not {ALGORITHM}"
    return kid, None


def fetch_jwks(url: str, timeout: float, limit: int = MAX_JWKS_BYTES) -> bytes:
    """The body of a GET of `url` (http or https only, redirects included), read within about `timeout` seconds
    in all (a server that trickles its answer is given up on); raises OSError naming the problem."""
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "canvas-progress"})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise OSError(f"the response is larger than {limit} bytes")
            chunks: list[bytes] = []
            size = 0
            while chunk := response.read1(65536):
                size += len(chunk)
                if size > limit:
                    raise OSError(f"the response is larger than {limit} bytes")
                if time.monotonic() > deadline:
                    raise OSError(f"no complete response within {timeout:g} s")
                chunks.append(chunk)
    except urllib.error.HTTPError as error:
        error.close()
        raise OSError(f"HTTP {error.code}") from None
    except urllib.error.URLError as error:  # cannot connect: refused, DNS, TLS; a redirect to another scheme
        raise OSError(one_line(str(error.reason), 200) or "cannot connect") from None
    except (http.client.HTTPException, ValueError) as error:  # a broken response; a redirect to a bad URL
        raise OSError(f"{type(error).__name__}: {one_line(str(error), 200)}") from None
    return b"".join(chunks)


def _opener() -> urllib.request.OpenerDirector:
    """urllib for http and https only: no file:, ftp: or data: URLs, not even by a redirect."""
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), urllib.request.HTTPHandler(), urllib.request.HTTPSHandler(),
                    urllib.request.HTTPRedirectHandler(), urllib.request.HTTPDefaultErrorHandler(),
                    urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


_OPENER = _opener()


class KeySet:
    """Canvas's public keys by kid, from a JWKS URL (cached, refreshed) or a file (read once). Thread-safe.

    `clock` measures the TTL and the intervals between fetches (a fake one in tests). A fetch never happens
    with the state lock held: requests whose key is held are served while it runs.
    """

    def __init__(self, url: str | None = None, file: str | None = None, ttl: float = 3600.0,
                 refetch_interval: float = 60.0, timeout: float = 5.0, clock: Clock = REAL_CLOCK) -> None:
        if url and file:
            raise ConfigurationError("JWKS_URL and JWKS_FILE are both set: use one of them")
        if not url and not file:
            raise ConfigurationError("no JWKS to verify signatures with: set JWKS_URL or JWKS_FILE")
        if url:
            parts = urllib.parse.urlsplit(url)
            try:
                parts.port  # noqa: B018 (raises ValueError for a port that is not a number in range)
            except ValueError:
                raise ConfigurationError(f"JWKS_URL {_shown(url, 120)} has an invalid port") from None
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigurationError(f"JWKS_URL {_shown(url, 120)} is not an http:// or https:// URL")
        self.url = url or None
        self.file = file or None
        self.ttl = ttl
        self.refetch_interval = refetch_interval
        self.timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()  # the state below
        self._fetching = threading.Lock()  # one fetch at a time; taken without `_lock` held
        self._keys: dict[str, RSAPublicKey] = {}
        self._loaded_at: float | None = None  # when the keys held were fetched
        self._attempted_at: float | None = None  # when a fetch last started
        self._failing = False  # the last fetch failed: a kid not held may be a new key we cannot see yet
        self._refresher: threading.Thread | None = None
        self._closed = False
        self._reported: set[str] = set()  # skipped keys already logged

    @property
    def source(self) -> str:
        """Where the keys come from, for logs: the file, or the URL without its query or credentials."""
        if self.file:
            return safe_text(self.file)
        parts = urllib.parse.urlsplit(self.url or "")
        host = parts.hostname or ""
        return safe_text(f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}")

    def start(self) -> None:
        """Read the file (a bad one raises ConfigurationError), or fetch the URL once (a failure is logged)."""
        if self.file:
            self._load_file()
            return
        with self._fetching:
            with self._lock:
                self._attempted_at = self._clock.now()
            self._fetch()

    def key(self, kid: str) -> RSAPublicKey:
        """The public key named `kid`; Unverified("unknown_kid") when the JWKS has none, KeysUnavailable when
        no key is held at all."""
        with self._lock:
            key = self._keys.get(kid)
            if key is not None:
                self._refresh_if_stale()
                return key
        if self.url:
            self._fetch_for(kid)
        with self._lock:
            key = self._keys.get(kid)
            held = len(self._keys)
            failing = self._failing
        if key is not None:
            return key
        if not held:
            raise KeysUnavailable(f"no signing key is held: the JWKS at {self.source} could not be fetched "
                                  f"(tried again at most every {NO_KEYS_RETRY:.0f} s)")
        if failing:  # a rotation we cannot see: the sender is not at fault, let it deliver again later
            raise KeysUnavailable(f"key id {_shown(kid)} is not among the {held} keys held, and the JWKS at "
                                  f"{self.source} cannot be fetched now (tried again at most every "
                                  f"{self.refetch_interval:g} s)")
        raise Unverified("unknown_kid", f"unknown key id {_shown(kid)} (the JWKS holds {held} keys)")

    def kids(self) -> list[str]:
        with self._lock:
            return sorted(self._keys)

    def holds(self, kid: str) -> bool:
        """Whether `key(kid)` would answer without waiting on the network (the key is held)."""
        with self._lock:
            return kid in self._keys

    def close(self) -> None:
        """Stop fetching; wait for a background refresh that is under way (at most the fetch timeout)."""
        with self._lock:
            self._closed = True
            refresher = self._refresher
        if refresher is not None:
            refresher.join(self.timeout + 1.0)

    # -- internals: `_lock` guards the dict and the times, `_fetching` serialises fetches --

    def _refresh_if_stale(self) -> None:
        """(With `_lock` held.) Past the TTL, start the one background refresh, unless one is running or the
        last attempt was less than `refetch_interval` ago (a failed refresh is not retried on every request)."""
        if self.url is None or self._closed or self._loaded_at is None:
            return
        now = self._clock.now()
        if now - self._loaded_at < self.ttl:
            return
        if self._refresher is not None and self._refresher.is_alive():
            return
        if self._attempted_at is not None and now - self._attempted_at < self.refetch_interval:
            return
        self._attempted_at = now
        self._refresher = threading.Thread(target=self._refresh, name="jwks-refresh", daemon=True)
        self._refresher.start()

    def _refresh(self) -> None:
        with self._fetching:
            self._fetch()

    def _fetch_for(self, kid: str) -> None:
        """Fetch now for a kid not held, unless a fetch happened too recently. A caller arriving while a fetch
        runs waits for it, then looks again."""
        with self._fetching:
            with self._lock:
                if kid in self._keys or self._closed:
                    return
                now = self._clock.now()
                interval = self.refetch_interval if self._keys else min(NO_KEYS_RETRY, self.refetch_interval)
                if self._attempted_at is not None and now - self._attempted_at < interval:
                    return
                self._attempted_at = now
            self._fetch()

    def _fetch(self) -> None:
        """(With `_fetching` held.) Fetch and install the URL's keys; a failure keeps the keys held and logs one line."""
        try:
            parsed = parse_jwks(fetch_jwks(self.url or "", self.timeout))
        except (OSError, JwksError) as error:
            with self._lock:
                held = len(self._keys)
                self._failing = True
            outcome = (f"keeping the {held} keys held" if held else
                       f"no key held: signed payloads are answered 503 until it can be fetched "
                       f"(tried again at most every {NO_KEYS_RETRY:.0f} s)")
            log.warning("cannot fetch the JWKS from %s: %s; %s", self.source, one_line(str(error)) or
                        type(error).__name__, outcome)
            return
        self._install(parsed)

    def _install(self, parsed: ParsedJwks) -> None:
        with self._lock:
            before = set(self._keys)
            self._keys = dict(parsed.keys)
            self._loaded_at = self._clock.now()
            self._failing = False
            new_skips = [skip for skip in parsed.skipped if skip not in self._reported]
            self._reported.update(new_skips)
        if new_skips:
            log.warning("the JWKS at %s has keys that cannot verify %s signatures, not used: %s", self.source,
                        ALGORITHM, "; ".join(new_skips))
        if set(parsed.keys) != before:
            log.info("signing keys from %s: %s", self.source, ", ".join(_shown(kid) for kid in sorted(parsed.keys)))

    def _load_file(self) -> None:
        path = Path(self.file or "")
        where = f"JWKS_FILE {safe_text(str(path))}"
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_JWKS_BYTES + 1)
        except OSError as error:
            raise ConfigurationError(f"{where}: cannot be read: {one_line(error.strerror or str(error))}") from None
        if len(data) > MAX_JWKS_BYTES:
            raise ConfigurationError(f"{where}: larger than {MAX_JWKS_BYTES} bytes, which no JWKS is")
        try:
            parsed = parse_jwks(data)
        except JwksError as error:
            raise ConfigurationError(f"{where}: {error}") from None
        self._install(parsed)


# -- one body ------------------------------------------------------------------------------------------------------


class Verifier:
    """One request body in, the bytes to parse out: a JWT's verified payload, or (when allowed) an unsigned body.

    `keys` may be None only with `allow_unsigned`: a signed body then gives KeysUnavailable. `issuer`, when
    set, must be the token's `iss`. `now` is the wall clock (seconds since the epoch) the time claims are
    compared with, `leeway` seconds either way.
    """

    def __init__(self, keys: KeySet | None, issuer: str | None = None, allow_unsigned: bool = False,
                 leeway: float = 60.0, *, now: Callable[[], float] = time.time) -> None:
        if keys is None and not allow_unsigned:
            raise ConfigurationError("signatures are required but no JWKS is configured: set JWKS_URL or JWKS_FILE")
        self.keys = keys
        self.issuer = issuer or None
        self.allow_unsigned = allow_unsigned
        self.leeway = leeway
        self._now = now

    def verify(self, body: bytes, fetch: bool = True) -> bytes:
        """The JWT's payload bytes (exactly as signed), or `body` unchanged when unsigned and allowed.

        Raises Unverified (the sender's fault: 401) or KeysUnavailable (no key to check it with: 503), nothing else;
        with `fetch` false, KeyNotHeld instead of waiting on the network for a key not held. The receiver verifies
        on its event loop that way, and only a body naming a key not held goes to a thread, so a made-up kid
        cannot stall every other request for a fetch's timeout.
        """
        token = body.strip()
        if not _is_token(token):
            if self.allow_unsigned:
                return body
            raise Unverified("unsigned", "unsigned payload; signatures are required")
        header = _header(token)
        kid = _check_header(header)
        if self.keys is None:
            raise KeysUnavailable("a signed payload arrived but no JWKS is configured (JWKS_URL or JWKS_FILE)")
        if not fetch and not self.keys.holds(kid):
            raise KeyNotHeld(kid)
        key = self.keys.key(kid)
        header_segment, payload_segment, signature_segment = token.split(b".")  # three: _header checked
        payload = _segment(payload_segment, "payload")
        signature = _segment(signature_segment, "signature")
        if not _RS256.verify(header_segment + b"." + payload_segment, key, signature):
            raise Unverified("bad_signature", "signature does not match")
        self._check_claims(_claims(payload))
        return payload

    def _check_claims(self, claims: dict[str, Any]) -> None:
        now = self._now()
        exp = _time_claim(claims, "exp")
        if exp is not None and exp <= now - self.leeway:
            raise Unverified("expired", f"expired at {_when(exp)}; now {_when(now)}")
        nbf = _time_claim(claims, "nbf")
        if nbf is not None and nbf > now + self.leeway:
            raise Unverified("not_yet_valid", f"not valid before {_when(nbf)} (nbf); now {_when(now)}")
        iat = _time_claim(claims, "iat")
        if iat is not None and iat > now + self.leeway:
            raise Unverified("not_yet_valid", f"issued in the future, at {_when(iat)} (iat); now {_when(now)}")
        if self.issuer is not None:
            if "iss" not in claims:
                raise Unverified("issuer", f"no issuer (iss); expected {_shown(self.issuer, 120)}")
            if claims["iss"] != self.issuer:
                raise Unverified("issuer", f"issuer {_shown(claims['iss'], 120)} is not the expected "
                                           f"{_shown(self.issuer, 120)}")


def _segment(segment: bytes, name: str) -> bytes:
    """A base64url segment decoded, as strictly as PyJWT decodes one: its alphabet only (the caller's
    `_TOKEN` match leaves nothing else but `=`), at most two `=` and only at the end of a whole group of
    four, and no length base64 cannot have; Unverified("malformed") naming the segment otherwise."""
    stripped = segment.rstrip(b"=")
    padding = len(segment) - len(stripped)
    if b"=" in stripped or padding > 2 or (padding and len(segment) % 4) or len(stripped) % 4 == 1:
        raise Unverified("malformed", f"not a JWT: the {name} is not base64url")
    try:
        return base64url_decode(stripped)
    except (binascii.Error, ValueError):
        raise Unverified("malformed", f"not a JWT: the {name} is not base64url") from None


def _header(token: bytes) -> dict[str, Any]:
    """The JOSE header of a token-shaped body, or Unverified("malformed") naming what is wrong.

    The signature covers the header's segment as sent, so what is read here is what was signed.
    """
    segments = token.split(b".")
    if len(segments) != 3:
        raise Unverified("malformed", f"not a JWT: {len(segments)} segments separated by '.', expected 3")
    raw = _segment(segments[0], "header")
    try:
        header = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Unverified("malformed", "not a JWT: the header is not JSON") from None
    if not isinstance(header, dict):
        raise Unverified("malformed", "not a JWT: the header is not a JSON object")
    return header


def _check_header(header: dict[str, Any]) -> str:
    """The header's kid, once its algorithm is RS256."""
    if "alg" not in header:
        raise Unverified("algorithm", f"no algorithm (alg) in the header ({ALGORITHM} only)")
    alg = header["alg"]
    if alg != ALGORITHM:
        named = alg if isinstance(alg, str) and alg.isascii() and alg.isalnum() and len(alg) <= 16 else _shown(alg)
        raise Unverified("algorithm", f"algorithm {named} is not allowed ({ALGORITHM} only)")
    for extension in ("crit", "b64"):  # RFC 7515 4.1.11 / RFC 7797: extensions this verifier does not implement
        if extension in header:
            raise Unverified("malformed", f"not a JWT this receiver verifies: the header has {extension!r}, an "
                             "extension it does not implement")
    kid = header.get("kid")
    if kid is None:
        raise Unverified("unknown_kid", "no key id (kid) in the header")
    if not isinstance(kid, str) or not kid:
        raise Unverified("unknown_kid", f"the key id (kid) {_shown(kid)} is not a non-empty string")
    return kid


def _claims(payload: bytes) -> dict[str, Any]:
    """The signed payload as a JSON object (orjson, or the standard decoder for what orjson refuses: integers
    beyond 64 bits); Unverified("claims") when it is not one."""
    try:
        claims = orjson.loads(payload)
    except orjson.JSONDecodeError:
        try:
            claims = json.loads(payload)
        except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
            problem = "nested too deeply" if isinstance(error, RecursionError) else one_line(str(error), 120)
            raise Unverified("claims", f"the signed payload is not JSON: {problem}") from None
    if not isinstance(claims, dict):
        raise Unverified("claims", "the signed payload is not a JSON object")
    return claims


def _time_claim(claims: dict[str, Any], name: str) -> int | float | None:
    """A NumericDate claim (seconds since the epoch), None when absent; Unverified("claims") when not a number."""
    value = claims.get(name)
    if value is None:
        return None
    finite = isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
    if not finite or isinstance(value, bool):
        raise Unverified("claims", f"claim {name} is not a number of seconds: {_shown(value)}")
    return value  # an int stays one: compared exactly, however large


def _when(seconds: int | float) -> str:
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"{_shown(seconds)} s after 1970"


def _shown(value: Any, limit: int = _SHOWN) -> str:
    """A hostile value for a reason or a log line: a string quoted, shortened and escaped; anything else as JSON."""
    if isinstance(value, str):
        return "'" + safe_text(value if len(value) <= limit else value[:limit] + "...") + "'"
    try:
        text = orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):  # integers beyond 64 bits
        try:
            text = str(value)
        except ValueError:  # an integer of more than 4,300 digits
            text = type(value).__name__
    return safe_text(text if len(text) <= limit else text[:limit] + "...")
