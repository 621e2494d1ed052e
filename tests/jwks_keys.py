"""Signing keys, a JWKS served over real HTTP on loopback, and tokens signed the way Canvas signs Live Events.

For the tests of signed HTTPS delivery (consumer.sources.signatures, the receiver). Canvas signs each event
as a compact JWT, RS256, whose header `kid` names a key of the JWKS it publishes; these helpers play Canvas:

    key = new_key("2026-11")                             # 2048-bit RSA: ~0.1-0.5 s, make them once per module
    with JwksServer(jwks(key)) as server:                # http://127.0.0.1:PORT/jwks, in a thread
        body = sign(canvas_claims(event), key, key.kid)  # the POST body: a compact JWT (bytes)
        ...
        server.serve(jwks(key, next_key))                # a rotation: what the next GET answers
        server.requests                                  # GETs received so far (to assert refetch limits)

Forgeries, for the refusals: `sign(claims, None, kid, alg="none")`; `sign(claims, key, kid, alg="RS384")`
(any algorithm PyJWT signs with, given a matching key: `new_ec_key` for ES256); `forge_hs256` (HMAC-SHA256
with the public key's PEM as the secret: the algorithm-confusion attack, which PyJWT refuses to sign);
`raw_token` for any header, payload and signature bytes at all.
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.utils import base64url_decode, base64url_encode

from tests.ports import free_port

CANVAS_ISSUER = "https://live-events.canvas.instructure.com"


@dataclass(frozen=True)
class SigningKey:
    """A private key and the kid Canvas would publish its public half under."""

    kid: str
    private: Any  # rsa.RSAPrivateKey (RS*, PS*) or ec.EllipticCurvePrivateKey (ES256 forgeries)

    @property
    def public_key(self) -> Any:
        return self.private.public_key()

    @property
    def public_pem(self) -> bytes:
        return self.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def public_jwk(self, **members: Any) -> dict[str, Any]:
        """The JWKS entry: kty, n, e (or crv, x, y), kid, use "sig", alg. `members` override; None removes one."""
        if isinstance(self.private, rsa.RSAPrivateKey):
            entry = jwt.algorithms.RSAAlgorithm.to_jwk(self.public_key, as_dict=True)
            entry.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        else:
            entry = jwt.algorithms.ECAlgorithm.to_jwk(self.public_key, as_dict=True)
            entry.update({"kid": self.kid, "use": "sig", "alg": "ES256"})
        entry.update(members)
        return {name: value for name, value in entry.items() if value is not None}


def new_key(kid: str, bits: int = 2048) -> SigningKey:
    """A fresh RSA key. Slow at 2,048 bits (a tenth of a second or more): make them once per module."""
    return SigningKey(kid, rsa.generate_private_key(public_exponent=65537, key_size=bits))


def new_ec_key(kid: str) -> SigningKey:
    """A fresh P-256 key (ES256): a key type Canvas does not use, for the refusals."""
    return SigningKey(kid, ec.generate_private_key(ec.SECP256R1()))


def jwks(*keys: SigningKey | dict[str, Any]) -> dict[str, Any]:
    """A JWKS document: each key's public entry, or a raw entry (dict) as given."""
    return {"keys": [key.public_jwk() if isinstance(key, SigningKey) else key for key in keys]}


def canvas_claims(event: dict[str, Any], issuer: str | None = CANVAS_ISSUER, now: float | None = None,
                  lifetime: int = 3600) -> dict[str, Any]:
    """The claims of a signed Live Event: the event's `metadata` and `body`, plus iss, iat, exp and jti."""
    issued = int(time.time() if now is None else now)
    claims = {**event, "iat": issued, "exp": issued + lifetime, "jti": uuid.uuid4().hex}
    if issuer is not None:
        claims["iss"] = issuer
    return claims


def sign(claims: dict[str, Any] | bytes, key: SigningKey | None, kid: str | None, alg: str = "RS256",
         headers: dict[str, Any] | None = None) -> bytes:
    """A compact JWT of `claims` (a dict, or the exact payload bytes) signed by PyJWT with `alg`.

    `kid` None: no kid in the header. `key` None only for alg "none". `headers` adds header members. A dict is
    encoded as PyJWT encodes claims (compact JSON), without its checks of them: any claim can be signed.
    """
    header = {**({"kid": kid} if kid is not None else {}), **(headers or {})}
    payload = claims if isinstance(claims, bytes) else json.dumps(claims, separators=(",", ":")).encode()
    token = jwt.api_jws.encode(payload, None if key is None else key.private, algorithm=alg, headers=header)
    return token.encode("ascii")


def forge_hs256(claims: dict[str, Any], secret: bytes, kid: str | None) -> bytes:
    """HS256 with `secret` (say a public key's PEM): the algorithm-confusion forgery, which a verifier that lets
    the token choose its algorithm would accept as signed by that public key."""
    header = {"alg": "HS256", "typ": "JWT", **({"kid": kid} if kid is not None else {})}
    signing_input = b".".join([base64url_encode(orjson.dumps(header)), base64url_encode(orjson.dumps(claims))])
    return signing_input + b"." + base64url_encode(hmac.new(secret, signing_input, hashlib.sha256).digest())


def raw_token(header: dict[str, Any] | bytes, payload: bytes, signature: bytes) -> bytes:
    """Three base64url segments of whatever is given (a header dict is JSON-encoded): malformed tokens."""
    head = orjson.dumps(header) if isinstance(header, dict) else header
    return b".".join(base64url_encode(part) for part in (head, payload, signature))


def segments(token: bytes) -> tuple[bytes, bytes, bytes]:
    """A compact JWT's (header, payload, signature), base64url-decoded: `payload` is the JSON that was signed."""
    header, payload, signature = token.split(b".")
    return base64url_decode(header), base64url_decode(payload), base64url_decode(signature)


@dataclass
class _Answer:
    body: bytes
    status: int
    headers: dict[str, str]


class JwksServer:
    """A JWKS at http://127.0.0.1:PORT/jwks, served by a thread of this process, under the test's control.

    - `serve(document, status=200)`: what the next GETs answer (a rotation, a failure, a non-JSON body);
    - `requests`, `wait_for_requests(n)`: GETs received so far (counted on arrival, before any hold);
    - `hold()` / `release()`: while held, a GET is counted but answered only on release (a slow server);
    - `port` given and not started yet: the URL is known and refuses connections (a server that is down).
    """

    def __init__(self, document: dict[str, Any] | bytes, *, port: int | None = None, path: str = "/jwks") -> None:
        self.port = port or free_port()
        self.path = path
        self._answer = _Answer(b"", 200, {})
        self.serve(document)
        self._count = 0
        self._changed = threading.Condition()
        self._open = threading.Event()
        self._open.set()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    @property
    def requests(self) -> int:
        with self._changed:
            return self._count

    def serve(self, document: dict[str, Any] | bytes, status: int = 200, headers: dict[str, str] | None = None) -> None:
        """Answer the next GETs with `document` (a dict as JSON, bytes as they are) and `status`."""
        body = document if isinstance(document, bytes) else orjson.dumps(document)
        self._answer = _Answer(body, status, {"Content-Type": "application/json", **(headers or {})})

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> None:
        """Return once `count` GETs have been received; AssertionError after `timeout` seconds."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._count >= count, timeout):
                raise AssertionError(f"the JWKS server received {self._count} requests, not {count}, in {timeout} s")

    def start(self) -> JwksServer:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with owner._changed:
                    owner._count += 1
                    owner._changed.notify_all()
                owner._open.wait(30)
                answer = owner._answer if self.path == owner.path else _Answer(b"not found", 404, {})
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"jwks-server-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> JwksServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
