"""Signed Live Events: what a request body yields (the signed bytes, exactly) and every way one is refused.

The keys are real 2,048-bit RSA keys made here, the JWKS is served over real
HTTP on loopback (tests/jwks_keys.py), and the tokens are signed by PyJWT the
way Canvas signs them. The key set's sense of time (TTL, refetch limits) is a
fake clock moved by the tests; the time claims are checked against a pinned
wall clock where a reason quotes the time.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import jwt
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumer.core import ConfigurationError, Tracked
from consumer.events.parse import parse_event
from consumer.sources.signatures import (
    KINDS,
    MAX_JWKS_BYTES,
    KeyNotHeld,
    KeySet,
    KeysUnavailable,
    Unverified,
    Verifier,
    looks_like_jwt,
    parse_jwks,
)
from tests.factory import course_event, progress_event
from tests.helpers import budget
from tests.jwks_keys import (
    CANVAS_ISSUER,
    JwksServer,
    SigningKey,
    canvas_claims,
    forge_hs256,
    jwks,
    new_ec_key,
    new_key,
    raw_token,
    segments,
    sign,
)
from tests.ports import free_port
from tests.worker.fake_clock import FakeClock

EVENT = course_event("2026-11-30T10:00:00Z")
NOW = datetime(2026, 11, 30, 10, 5, tzinfo=UTC).timestamp()  # the pinned wall clock of the time-claim tests
LOGGER = "consumer.sources.signatures"


@dataclass(frozen=True)
class Keys:
    a: SigningKey  # published from the start
    b: SigningKey  # published from the start
    c: SigningKey  # published later (a rotation), or never
    ec: SigningKey  # P-256: a key type Canvas does not use
    weak: SigningKey  # RSA, 1,024 bits


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(new_key("kid-a"), new_key("kid-b"), new_key("kid-c"), new_ec_key("kid-ec"), new_key("kid-weak", 1024))


@pytest.fixture
def server(keys: Keys):
    with JwksServer(jwks(keys.a, keys.b)) as running:
        yield running


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def keyset(server: JwksServer, clock: FakeClock):
    key_set = KeySet(url=server.url, clock=clock)
    key_set.start()
    yield key_set
    key_set.close()


@pytest.fixture
def verifier(keyset: KeySet) -> Verifier:
    return Verifier(keyset)


@pytest.fixture(scope="module")
def file_keys(keys: Keys, tmp_path_factory: pytest.TempPathFactory) -> KeySet:
    """Keys a and b from a JWKS file: no network, for the properties."""
    path = tmp_path_factory.mktemp("jwks") / "jwks.json"
    path.write_bytes(orjson.dumps(jwks(keys.a, keys.b)))
    key_set = KeySet(file=str(path))
    key_set.start()
    return key_set


def refused(verifier: Verifier, body: bytes) -> Unverified:
    with pytest.raises(Unverified) as caught:
        verifier.verify(body)
    error = caught.value
    assert error.kind in KINDS
    assert "\n" not in error.reason and error.reason.isprintable() and len(error.reason) <= 300
    return error


def wait_until(condition, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == LOGGER and record.levelno == logging.WARNING]


# -- what a verified request yields ---------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["a", "b"])
def test_a_token_signed_with_either_published_key_yields_the_signed_payload_bytes(
        which: str, keys: Keys, verifier: Verifier, server: JwksServer) -> None:
    key = getattr(keys, which)
    token = sign(canvas_claims(EVENT), key, key.kid)
    payload = verifier.verify(token)
    assert payload == segments(token)[1]
    assert orjson.loads(payload)["metadata"] == EVENT["metadata"]
    assert server.requests == 1  # the keys fetched at start; none since


@pytest.mark.parametrize("event", [EVENT, progress_event("2026-11-30T10:00:00Z")], ids=["course", "progress"])
def test_the_pipeline_parses_the_signed_payload_with_its_extra_claims(event: dict, keys: Keys, verifier: Verifier) -> None:
    claims = canvas_claims(event)
    assert {"iss", "iat", "exp", "jti"} <= claims.keys()
    outcome = parse_event(verifier.verify(sign(claims, keys.a, keys.a.kid)))
    assert isinstance(outcome, Tracked)
    assert outcome.event_name == event["metadata"]["event_name"]


def test_the_payload_is_returned_byte_for_byte_as_signed_not_re_encoded(keys: Keys, verifier: Verifier) -> None:
    payload = b'{ "metadata" : {"event_name": "course_updated"},\n "body": {"id": 21070000000000565, "x": 1.50} }'
    assert verifier.verify(sign(payload, keys.a, keys.a.kid)) == payload


def test_whitespace_around_a_token_is_tolerated(keys: Keys, verifier: Verifier) -> None:
    token = sign(canvas_claims(EVENT), keys.a, keys.a.kid)
    assert verifier.verify(b"  " + token + b"\r\n") == segments(token)[1]


# -- unsigned bodies --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [orjson.dumps(EVENT), b"", b"hello", b"\xff\xfe{}"])
def test_a_body_that_is_not_a_jwt_is_refused_when_signatures_are_required(body: bytes, verifier: Verifier) -> None:
    error = refused(verifier, body)
    assert (error.kind, error.reason) == ("unsigned", "unsigned payload; signatures are required")


@pytest.mark.parametrize("body", [orjson.dumps(EVENT), b" " + orjson.dumps(EVENT) + b"\n", b"", b"\xff{"])
def test_with_unsigned_allowed_a_body_that_is_not_a_jwt_passes_unchanged(body: bytes, keyset: KeySet) -> None:
    assert Verifier(keyset, allow_unsigned=True).verify(body) == body


def test_with_unsigned_allowed_a_jwt_is_still_verified(keys: Keys, keyset: KeySet) -> None:
    verifier = Verifier(keyset, allow_unsigned=True)
    token = sign(canvas_claims(EVENT), keys.a, keys.a.kid)
    assert verifier.verify(token) == segments(token)[1]
    header, payload, signature = token.split(b".")
    assert refused(verifier, b".".join([header, payload, signature[:-4] + b"AAAA"])).kind == "bad_signature"
    assert refused(verifier, sign(canvas_claims(EVENT), keys.c, keys.a.kid)).kind == "bad_signature"


def test_without_a_key_set_unsigned_bodies_pass_and_a_jwt_cannot_be_verified(keys: Keys) -> None:
    verifier = Verifier(None, allow_unsigned=True)
    assert verifier.verify(orjson.dumps(EVENT)) == orjson.dumps(EVENT)
    with pytest.raises(KeysUnavailable, match="no JWKS is configured"):
        verifier.verify(sign(canvas_claims(EVENT), keys.a, keys.a.kid))


def test_signatures_required_without_a_key_set_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="JWKS_URL or JWKS_FILE"):
        Verifier(None)


def test_a_jwt_is_told_from_json() -> None:
    assert looks_like_jwt(b"eyJh.eyJi.c2ln") and looks_like_jwt(b" a.b\n")
    assert not looks_like_jwt(b'{"metadata": {}}') and not looks_like_jwt(b"abc") and not looks_like_jwt(b"")


# -- algorithms ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS384", "RS512", "PS256", "PS384", "PS512"])
def test_other_rsa_algorithms_are_refused_even_with_the_right_key(alg: str, keys: Keys, verifier: Verifier) -> None:
    error = refused(verifier, sign(canvas_claims(EVENT), keys.a, keys.a.kid, alg=alg))
    assert (error.kind, error.reason) == ("algorithm", f"algorithm {alg} is not allowed (RS256 only)")


def test_alg_none_is_refused(keys: Keys, verifier: Verifier) -> None:
    token = sign(canvas_claims(EVENT), None, keys.a.kid, alg="none")
    assert token.endswith(b".")  # no signature at all
    error = refused(verifier, token)
    assert (error.kind, error.reason) == ("algorithm", "algorithm none is not allowed (RS256 only)")


@pytest.mark.parametrize("kid", ["kid-a", "kid-c", None])
def test_hs256_signed_with_the_public_key_as_secret_is_refused(kid: str | None, keys: Keys, verifier: Verifier) -> None:
    """The algorithm-confusion attack: a verifier that let the header choose HS256 would check this HMAC with
    key a's PEM as its secret, and accept it."""
    for secret in (keys.a.public_pem, keys.a.public_pem.strip(), orjson.dumps(keys.a.public_jwk())):
        error = refused(verifier, forge_hs256(canvas_claims(EVENT), secret, kid))
        assert (error.kind, error.reason) == ("algorithm", "algorithm HS256 is not allowed (RS256 only)")


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_algorithms_are_refused(alg: str, keys: Keys, verifier: Verifier) -> None:
    token = sign(canvas_claims(EVENT), SigningKey("x", b"a shared secret of at least 64 bytes" * 2), keys.a.kid, alg=alg)
    assert refused(verifier, token).kind == "algorithm"


def test_es256_is_refused(keys: Keys, verifier: Verifier) -> None:
    error = refused(verifier, sign(canvas_claims(EVENT), keys.ec, keys.a.kid, alg="ES256"))
    assert (error.kind, error.reason) == ("algorithm", "algorithm ES256 is not allowed (RS256 only)")


@pytest.mark.parametrize("header, reason", [
    ({"typ": "JWT", "kid": "kid-a"}, "no algorithm (alg) in the header (RS256 only)"),
    ({"alg": "rs256", "kid": "kid-a"}, "algorithm rs256 is not allowed (RS256 only)"),
    ({"alg": "", "kid": "kid-a"}, "algorithm '' is not allowed (RS256 only)"),
    ({"alg": ["RS256"], "kid": "kid-a"}, 'algorithm ["RS256"] is not allowed (RS256 only)'),
    ({"alg": None, "kid": "kid-a"}, "algorithm null is not allowed (RS256 only)"),
    ({"alg": "RS256\u202e\x1b[31m", "kid": "kid-a"}, "algorithm 'RS256\\u202e\\u001b[31m' is not allowed (RS256 only)"),
])
def test_a_header_without_rs256_is_refused_naming_the_algorithm(header: dict, reason: str, keys: Keys,
                                                                verifier: Verifier) -> None:
    token = sign(canvas_claims(EVENT), keys.a, None)
    _, payload, signature = token.split(b".")
    error = refused(verifier, raw_token(header, b"", b"").split(b".")[0] + b"." + payload + b"." + signature)
    assert (error.kind, error.reason) == ("algorithm", reason)


# -- key ids and key rotation ----------------------------------------------------------------------------------------


def test_a_token_without_a_kid_is_refused(keys: Keys, verifier: Verifier) -> None:
    error = refused(verifier, sign(canvas_claims(EVENT), keys.a, None))
    assert (error.kind, error.reason) == ("unknown_kid", "no key id (kid) in the header")


@pytest.mark.parametrize("kid", [5, "", ["kid-a"]])
def test_a_kid_that_is_not_a_non_empty_string_is_refused(kid, keys: Keys, verifier: Verifier) -> None:
    _, payload, signature = sign(canvas_claims(EVENT), keys.a, None).split(b".")
    header = raw_token({"alg": "RS256", "kid": kid}, b"", b"").split(b".")[0]
    error = refused(verifier, b".".join([header, payload, signature]))
    assert error.kind == "unknown_kid" and error.reason.startswith("the key id (kid) ")


def test_an_unknown_kid_fetches_the_jwks_again_at_most_once_a_minute(keys: Keys, verifier: Verifier,
                                                                     server: JwksServer, clock: FakeClock) -> None:
    token = sign(canvas_claims(EVENT), keys.c, keys.c.kid)
    assert server.requests == 1
    error = refused(verifier, token)  # the keys were fetched at start, less than a minute ago
    assert (error.kind, error.reason) == ("unknown_kid", "unknown key id 'kid-c' (the JWKS holds 2 keys)")
    assert server.requests == 1
    clock.advance(60)
    assert refused(verifier, token).kind == "unknown_kid"
    assert server.requests == 2
    for _ in range(3):
        assert refused(verifier, token).kind == "unknown_kid"
    clock.advance(59.9)
    assert refused(verifier, token).kind == "unknown_kid"
    assert server.requests == 2  # not twice within a minute
    clock.advance(0.1)
    refused(verifier, token)
    assert server.requests == 3


def test_only_a_signed_body_naming_a_key_not_held_may_wait_on_the_network(keys: Keys, verifier: Verifier,
                                                                         server: JwksServer) -> None:
    """verify(fetch=False) is what the receiver runs on its event loop: it never waits on the network."""
    held = sign(canvas_claims(EVENT), keys.a, keys.a.kid)
    assert verifier.verify(held, fetch=False) == segments(held)[1]
    with pytest.raises(KeyNotHeld):
        verifier.verify(sign(canvas_claims(EVENT), keys.c, keys.c.kid), fetch=False)
    with pytest.raises(Unverified):  # unsigned, or malformed: refused without a fetch
        verifier.verify(b'{"metadata": {}, "body": {}}', fetch=False)
    with pytest.raises(Unverified):
        verifier.verify(b"a.b.c", fetch=False)
    assert server.requests == 1  # nothing was fetched


def test_a_hostile_kid_is_shortened_and_escaped_in_the_reason(keys: Keys, verifier: Verifier) -> None:
    kid = "\x1b]0;owned\x07" + "k" * 500 + "\n\u2028"
    error = refused(verifier, sign(canvas_claims(EVENT), keys.a, kid))
    assert error.kind == "unknown_kid"
    assert error.reason.startswith("unknown key id '\\u001b]0;owned\\u0007kkk")
    assert "..." in error.reason and len(error.reason) < 120


def test_a_rotated_in_key_is_accepted_after_one_refetch(keys: Keys, verifier: Verifier, keyset: KeySet,
                                                        server: JwksServer, clock: FakeClock) -> None:
    server.serve(jwks(keys.b, keys.c))  # Canvas's monthly rotation: a drops out, c comes in
    clock.advance(60)
    token = sign(canvas_claims(EVENT), keys.c, keys.c.kid)
    assert verifier.verify(token) == segments(token)[1]
    assert server.requests == 2
    assert keyset.kids() == ["kid-b", "kid-c"]
    assert verifier.verify(sign(canvas_claims(EVENT), keys.b, keys.b.kid))
    assert refused(verifier, sign(canvas_claims(EVENT), keys.a, keys.a.kid)).kind == "unknown_kid"
    assert server.requests == 2


def test_a_new_kid_while_the_jwks_cannot_be_fetched_is_keys_unavailable_not_the_senders_fault(
        keys: Keys, verifier: Verifier, server: JwksServer, clock: FakeClock) -> None:
    """Canvas rotated (kid-c) but its JWKS is down: answered 503 so Canvas delivers again, not 401 (dropped)."""
    token = sign(canvas_claims(EVENT), keys.c, keys.c.kid)
    server.serve(b"upstream down", status=503)
    clock.advance(60)
    with pytest.raises(KeysUnavailable, match="key id 'kid-c' is not among the 2 keys held, and the JWKS at"):
        verifier.verify(token)
    assert server.requests == 2
    assert verifier.verify(sign(canvas_claims(EVENT), keys.a, keys.a.kid))  # the keys held still work
    server.serve(jwks(keys.b, keys.c))
    with pytest.raises(KeysUnavailable):
        verifier.verify(token)  # tried less than a minute ago
    clock.advance(60)
    assert verifier.verify(token) == segments(token)[1]
    assert server.requests == 3
    clock.advance(60)
    assert refused(verifier, sign(canvas_claims(EVENT), keys.a, keys.a.kid)).kind == "unknown_kid"  # fetched fine


@pytest.mark.parametrize("interval", [60.0, 0.0])
def test_concurrent_requests_for_a_new_kid_share_one_fetch(interval: float, keys: Keys, server: JwksServer,
                                                          clock: FakeClock) -> None:
    """Requests that arrive while the fetch runs wait for it and find the key: none fetches again, whatever
    the refetch interval."""
    key_set = KeySet(url=server.url, refetch_interval=interval, clock=clock)
    key_set.start()
    verifier = Verifier(key_set)
    server.serve(jwks(keys.a, keys.b, keys.c))
    clock.advance(60)
    token = sign(canvas_claims(EVENT), keys.c, keys.c.kid)
    known = sign(canvas_claims(EVENT), keys.a, keys.a.kid)
    results: list[bytes | BaseException] = []

    def request() -> None:
        try:
            results.append(verifier.verify(token))
        except BaseException as error:  # kept: compared below
            results.append(error)

    server.hold()
    threads = [threading.Thread(target=request) for _ in range(6)]
    for thread in threads:
        thread.start()
    server.wait_for_requests(2)
    # While the fetch for kid-c hangs, a request whose key is held is answered at once.
    started = time.monotonic()
    assert verifier.verify(known) == segments(known)[1]
    assert time.monotonic() - started < 1.0
    server.release()
    for thread in threads:
        thread.join(10)
    assert results == [segments(token)[1]] * 6
    assert server.requests == 2
    key_set.close()


# -- the key set's cache -------------------------------------------------------------------------------------------


def test_past_the_ttl_the_keys_held_keep_working_while_one_background_fetch_runs(
        keys: Keys, server: JwksServer, clock: FakeClock) -> None:
    key_set = KeySet(url=server.url, ttl=3600, clock=clock)
    key_set.start()
    try:
        verifier = Verifier(key_set)
        token = sign(canvas_claims(EVENT), keys.a, keys.a.kid)
        clock.advance(3599)
        verifier.verify(token)
        assert server.requests == 1  # within the TTL: no fetch
        server.serve(jwks(keys.a, keys.c))
        server.hold()
        clock.advance(1)
        started = time.monotonic()
        for _ in range(20):
            assert verifier.verify(token) == segments(token)[1]
        assert time.monotonic() - started < 1.0  # never waited on the hanging server
        server.wait_for_requests(2)
        assert server.requests == 2  # one background fetch, not one per request
        clock.advance(60)
        assert verifier.verify(token)
        assert server.requests == 2  # nor a second one while the first hangs, however long
        assert key_set.kids() == ["kid-a", "kid-b"]
        server.release()
        wait_until(lambda: key_set.kids() == ["kid-a", "kid-c"], "the background fetch to install the new keys")
        assert verifier.verify(sign(canvas_claims(EVENT), keys.c, keys.c.kid))
        assert server.requests == 2
        clock.advance(3599)
        verifier.verify(token)
        assert server.requests == 2  # a fresh TTL from the background fetch
        clock.advance(1)
        verifier.verify(token)
        server.wait_for_requests(3)
    finally:
        key_set.close()


def test_a_failed_refresh_keeps_the_keys_and_logs_one_warning(keys: Keys, server: JwksServer, clock: FakeClock,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    key_set = KeySet(url=server.url, ttl=3600, clock=clock)
    key_set.start()
    caplog.set_level(logging.INFO, LOGGER)
    try:
        verifier = Verifier(key_set)
        token = sign(canvas_claims(EVENT), keys.a, keys.a.kid)
        server.serve(b"<html>bad gateway</html>", status=502)
        clock.advance(3600)
        assert verifier.verify(token)
        wait_until(lambda: warnings_of(caplog), "the failed refresh's warning")
        assert warnings_of(caplog) == [f"cannot fetch the JWKS from {server.url}: HTTP 502; keeping the 2 keys held"]
        for _ in range(5):
            assert verifier.verify(token)  # still stale, but the last attempt was under a minute ago
        assert server.requests == 2
        wait_until(lambda: not any(thread.name == "jwks-refresh" for thread in threading.enumerate()),
                   "the failed refresh to end")
        clock.advance(60)
        verifier.verify(token)
        server.wait_for_requests(3)  # the next background attempt, a minute later
        wait_until(lambda: len(warnings_of(caplog)) == 2, "the second failure's warning")
        assert key_set.kids() == ["kid-a", "kid-b"]
    finally:
        key_set.close()


def test_a_url_that_is_down_at_start_gives_keys_unavailable_then_recovers(keys: Keys, clock: FakeClock,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    server = JwksServer(jwks(keys.a), port=free_port())  # not started: connections are refused
    key_set = KeySet(url=server.url, clock=clock)
    key_set.start()  # does not raise
    try:
        [warning] = warnings_of(caplog)
        assert warning.startswith(f"cannot fetch the JWKS from {server.url}: ")
        assert "no key held: signed payloads are answered 503" in warning
        assert key_set.kids() == []
        verifier = Verifier(key_set)
        token = sign(canvas_claims(EVENT), keys.a, keys.a.kid)
        with pytest.raises(KeysUnavailable, match="could not be fetched"):
            verifier.verify(token)  # not the sender's fault: not Unverified
        server.start()
        with pytest.raises(KeysUnavailable):
            verifier.verify(token)  # tried less than 5 s ago
        assert server.requests == 0
        clock.advance(5)
        assert verifier.verify(token) == segments(token)[1]
        assert server.requests == 1
        assert key_set.kids() == ["kid-a"]
    finally:
        key_set.close()
        server.stop()


@pytest.mark.parametrize("answer, status, problem", [
    (b"not json", 200, "not JSON"),
    (b'{"keys": "none"}', 200, 'not a JWKS: expected a JSON object with a "keys" list'),
    (b'{"keys": []}', 200, "no usable RSA signing key"),
    (b"x" * (MAX_JWKS_BYTES + 1), 200, f"the response is larger than {MAX_JWKS_BYTES} bytes"),
    (b"", 404, "HTTP 404"),
])
def test_a_jwks_url_that_answers_something_unusable_gives_no_keys(answer: bytes, status: int, problem: str,
                                                                  clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    with JwksServer(answer) as server:
        server.serve(answer, status=status)
        key_set = KeySet(url=server.url, clock=clock)
        key_set.start()
        [warning] = warnings_of(caplog)
        assert problem in warning
        with pytest.raises(KeysUnavailable):
            key_set.key("kid-a")


def test_a_jwks_server_that_does_not_answer_in_time_is_given_up_on(server: JwksServer, clock: FakeClock,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    server.hold()
    key_set = KeySet(url=server.url, timeout=0.3, clock=clock)
    started = time.monotonic()
    key_set.start()
    assert time.monotonic() - started < 3
    [warning] = warnings_of(caplog)
    assert "timed out" in warning
    assert key_set.kids() == []


def test_a_redirect_to_another_scheme_is_not_followed(clock: FakeClock, caplog: pytest.LogCaptureFixture,
                                                      tmp_path: Path, keys: Keys) -> None:
    secret = tmp_path / "jwks.json"
    secret.write_bytes(orjson.dumps(jwks(keys.a)))
    with JwksServer(b"") as server:
        server.serve(b"", status=302, headers={"Location": secret.as_uri()})
        key_set = KeySet(url=server.url, clock=clock)
        key_set.start()
        assert key_set.kids() == []
        [warning] = warnings_of(caplog)
        assert "HTTP 302" in warning


def test_unusable_keys_are_skipped_and_logged_once(keys: Keys, clock: FakeClock,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    entries = [
        keys.a.public_jwk(),
        keys.ec.public_jwk(),
        {"kty": "oct", "kid": "kid-oct", "k": "c2VjcmV0"},
        keys.b.public_jwk(use="enc"),
        keys.c.public_jwk(alg="RS512"),
        keys.weak.public_jwk(),
        keys.c.public_jwk(kid=None),
        keys.b.public_jwk(kid="kid-a"),
        {"kty": "RSA", "kid": "kid-broken", "n": "!!!", "e": 3},
        "not an object",
    ]
    with JwksServer({"keys": entries}) as server:
        key_set = KeySet(url=server.url, clock=clock)
        key_set.start()
        try:
            assert key_set.kids() == ["kid-a"]
            [warning] = warnings_of(caplog)
            for named in ["'kid-ec': type 'EC', not RSA", "'kid-oct': type 'oct', not RSA", "'kid-b': use 'enc', not sig",
                          "'kid-c': algorithm 'RS512', not RS256", "'kid-weak': RSA key of 1024 bits, under 2048",
                          "key #7: no kid", "'kid-a': a second key with this kid", "'kid-broken'", "key #10: not a JSON object"]:
                assert named in warning
            verifier = Verifier(key_set)
            clock.advance(60)
            error = refused(verifier, sign(canvas_claims(EVENT), keys.b, keys.b.kid))
            assert error.kind == "unknown_kid"
            assert server.requests == 2
            assert len(warnings_of(caplog)) == 1  # the same skipped keys are not logged again
            # The duplicate kid-a (key b's numbers) was skipped: only key a's own signature verifies.
            assert refused(verifier, sign(canvas_claims(EVENT), keys.b, keys.a.kid)).kind == "bad_signature"
            assert verifier.verify(sign(canvas_claims(EVENT), keys.a, keys.a.kid))
        finally:
            key_set.close()


def test_private_members_in_a_jwks_give_only_the_public_key(keys: Keys) -> None:
    private = jwt.algorithms.RSAAlgorithm.to_jwk(keys.a.private, as_dict=True)
    parsed = parse_jwks(orjson.dumps({"keys": [{**private, "kid": "kid-a"}]}))
    assert parsed.keys["kid-a"].public_numbers() == keys.a.public_key.public_numbers()


def test_once_closed_the_key_set_fetches_nothing_and_keeps_serving_its_keys(keys: Keys, keyset: KeySet,
                                                                           server: JwksServer, clock: FakeClock) -> None:
    keyset.close()
    clock.advance(7200)
    verifier = Verifier(keyset)
    assert verifier.verify(sign(canvas_claims(EVENT), keys.a, keys.a.kid))
    assert refused(verifier, sign(canvas_claims(EVENT), keys.c, keys.c.kid)).kind == "unknown_kid"
    assert server.requests == 1
    assert not any(thread.name == "jwks-refresh" for thread in threading.enumerate())


def test_logs_name_the_jwks_url_without_its_credentials_or_query(clock: FakeClock,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    key_set = KeySet(url=f"http://user:hunter2@127.0.0.1:{port}/jwks?signature=s3cr3t", clock=clock)
    key_set.start()
    [warning] = warnings_of(caplog)
    assert warning.startswith(f"cannot fetch the JWKS from http://127.0.0.1:{port}/jwks: ")
    assert "hunter2" not in warning and "s3cr3t" not in warning
    with pytest.raises(KeysUnavailable) as caught:
        key_set.key("kid-a")
    assert "hunter2" not in str(caught.value) and "s3cr3t" not in str(caught.value)


# -- the JWKS file and the settings ---------------------------------------------------------------------------------


def test_a_jwks_file_is_read_at_start_and_never_fetched_again(keys: Keys, tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "jwks.json"
    path.write_bytes(orjson.dumps(jwks(keys.a, keys.b)))
    key_set = KeySet(file=str(path), ttl=60, clock=clock)
    key_set.start()
    path.unlink()
    verifier = Verifier(key_set)
    clock.advance(100_000)
    token = sign(canvas_claims(EVENT), keys.b, keys.b.kid)
    assert verifier.verify(token) == segments(token)[1]
    assert refused(verifier, sign(canvas_claims(EVENT), keys.c, keys.c.kid)).kind == "unknown_kid"
    key_set.close()


@pytest.mark.parametrize("content, problem", [
    (b"{not json", "not JSON: "),
    (b'[{"kty": "RSA"}]', 'not a JWKS: expected a JSON object with a "keys" list'),
    (b'{"keys": []}', "no usable RSA signing key"),
    (b'{"keys": [{"kty": "oct", "kid": "k1", "k": "c2VjcmV0"}]}', "no usable RSA signing key (key 'k1': type 'oct', not RSA)"),
    (b" " * (MAX_JWKS_BYTES + 1), f"larger than {MAX_JWKS_BYTES} bytes"),
    (None, "cannot be read: No such file or directory"),
])
def test_a_bad_jwks_file_is_a_configuration_error_naming_the_file_and_the_problem(
        content: bytes | None, problem: str, tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigurationError) as caught:
        KeySet(file=str(path)).start()
    message = str(caught.value)
    assert message.startswith(f"JWKS_FILE {path}: ")
    assert problem in message
    assert "\n" not in message


@pytest.mark.parametrize("arguments, problem", [
    ({"url": "file:///etc/passwd"}, "JWKS_URL 'file:///etc/passwd' is not an http:// or https:// URL"),
    ({"url": "ftp://example.com/jwks"}, "is not an http:// or https:// URL"),
    ({"url": "https:///jwks"}, "is not an http:// or https:// URL"),
    ({"url": "https://example.com:99999/jwks"}, "JWKS_URL 'https://example.com:99999/jwks' has an invalid port"),
    ({}, "no JWKS to verify signatures with: set JWKS_URL or JWKS_FILE"),
    ({"url": "https://example.com/jwks", "file": "jwks.json"}, "JWKS_URL and JWKS_FILE are both set"),
])
def test_a_key_source_that_cannot_work_is_a_configuration_error(arguments: dict, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        KeySet(**arguments)


# -- time claims and the issuer -------------------------------------------------------------------------------------


def pinned(key_set: KeySet, **options) -> Verifier:
    return Verifier(key_set, now=lambda: NOW, **options)


@pytest.mark.parametrize("claims, kind, reason", [
    ({"exp": NOW - 300}, "expired", "expired at 2026-11-30T10:00:00Z; now 2026-11-30T10:05:00Z"),
    ({"exp": NOW - 60}, "expired", "expired at 2026-11-30T10:04:00Z; now 2026-11-30T10:05:00Z"),
    ({"nbf": NOW + 61}, "not_yet_valid", "not valid before 2026-11-30T10:06:01Z (nbf); now 2026-11-30T10:05:00Z"),
    ({"iat": NOW + 3600}, "not_yet_valid", "issued in the future, at 2026-11-30T11:05:00Z (iat); now 2026-11-30T10:05:00Z"),
    ({"exp": "tomorrow"}, "claims", "claim exp is not a number of seconds: 'tomorrow'"),
    ({"iat": True}, "claims", "claim iat is not a number of seconds: true"),
    ({"nbf": [1]}, "claims", "claim nbf is not a number of seconds: [1]"),
])
def test_time_claims_outside_the_leeway_are_refused(claims: dict, kind: str, reason: str, keys: Keys,
                                                    file_keys: KeySet) -> None:
    error = refused(pinned(file_keys), sign({**EVENT, **claims}, keys.a, keys.a.kid))
    assert (error.kind, error.reason) == (kind, reason)


@pytest.mark.parametrize("claims", [
    {"exp": NOW - 59}, {"exp": NOW + 1}, {"nbf": NOW + 60}, {"iat": NOW + 60}, {"iat": NOW - 86400 * 365},
    {"exp": NOW - 30, "nbf": NOW + 30, "iat": NOW + 30}, {"exp": NOW + 0.5}, {"exp": 10**30}, {},
])
def test_time_claims_within_the_leeway_or_absent_are_accepted(claims: dict, keys: Keys, file_keys: KeySet) -> None:
    token = sign({**EVENT, **claims}, keys.a, keys.a.kid)
    assert pinned(file_keys).verify(token) == segments(token)[1]


def test_time_claims_are_checked_against_the_real_clock_by_default(keys: Keys, file_keys: KeySet) -> None:
    now = time.time()
    assert Verifier(file_keys).verify(sign({**EVENT, "exp": now + 120, "iat": now}, keys.a, keys.a.kid))
    assert refused(Verifier(file_keys), sign({**EVENT, "exp": now - 120}, keys.a, keys.a.kid)).kind == "expired"
    assert Verifier(file_keys, leeway=300).verify(sign({**EVENT, "exp": now - 120}, keys.a, keys.a.kid))


@pytest.mark.parametrize("issuer, kind, reason", [
    ("https://evil.example", "issuer",
     f"issuer 'https://evil.example' is not the expected '{CANVAS_ISSUER}'"),
    (None, "issuer", f"no issuer (iss); expected '{CANVAS_ISSUER}'"),
    (42, "issuer", f"issuer 42 is not the expected '{CANVAS_ISSUER}'"),
    ("https://live-events.canvas.instructure.com\n\x1b[2J", "issuer",
     f"issuer 'https://live-events.canvas.instructure.com\\u000a\\u001b[2J' is not the expected '{CANVAS_ISSUER}'"),
])
def test_a_configured_issuer_must_be_the_tokens(issuer, kind: str, reason: str, keys: Keys, file_keys: KeySet) -> None:
    claims = {**EVENT, **({} if issuer is None else {"iss": issuer})}
    error = refused(Verifier(file_keys, issuer=CANVAS_ISSUER), sign(claims, keys.a, keys.a.kid))
    assert (error.kind, error.reason) == (kind, reason)


def test_the_issuer_is_not_checked_unless_configured(keys: Keys, file_keys: KeySet) -> None:
    for claims in ({**EVENT, "iss": "https://anyone.example"}, EVENT):
        assert Verifier(file_keys).verify(sign(claims, keys.a, keys.a.kid))
    assert Verifier(file_keys, issuer=CANVAS_ISSUER).verify(sign(canvas_claims(EVENT), keys.a, keys.a.kid))


# -- tampering and malformed tokens ----------------------------------------------------------------------------------


def _flip(segment: bytes, index: int) -> bytes:
    """`segment` with the base64url character at `index` changed (still valid base64url: not at the end)."""
    replacement = b"B" if segment[index:index + 1] != b"B" else b"C"
    return segment[:index] + replacement + segment[index + 1:]


def test_a_payload_changed_after_signing_is_refused(keys: Keys, verifier: Verifier) -> None:
    header, payload, signature = sign(canvas_claims(EVENT), keys.a, keys.a.kid).split(b".")
    for index in (0, len(payload) // 2, len(payload) - 2):
        error = refused(verifier, b".".join([header, _flip(payload, index), signature]))
        assert (error.kind, error.reason) == ("bad_signature", "signature does not match")
    other = orjson.dumps({**canvas_claims(EVENT), "body": {**EVENT["body"], "name": "Changed"}})
    assert refused(verifier, b".".join([header, raw_token({}, other, b"").split(b".")[1], signature])).kind == "bad_signature"


def test_a_changed_signature_or_header_is_refused(keys: Keys, verifier: Verifier) -> None:
    header, payload, signature = sign(canvas_claims(EVENT), keys.a, keys.a.kid).split(b".")
    assert refused(verifier, b".".join([header, payload, _flip(signature, 10)])).kind == "bad_signature"
    assert refused(verifier, b".".join([header, payload, signature[:-8]])).kind in {"bad_signature", "malformed"}
    other_kid = sign(canvas_claims(EVENT), keys.a, keys.b.kid).split(b".")[0]  # same key, header names kid-b
    assert refused(verifier, b".".join([other_kid, payload, signature])).kind == "bad_signature"
    assert refused(verifier, b".".join([header, payload, b""])).kind == "bad_signature"


@pytest.mark.parametrize("body, reason", [
    (b"abc.def", "not a JWT: 2 segments separated by '.', expected 3"),
    (b"a.b.c.d", "not a JWT: 4 segments separated by '.', expected 3"),
    (b"..", "not a JWT: the header is not JSON"),
    (b"A.eyJ9.c2ln", "not a JWT: the header is not base64url"),
    (b"bm90IGpzb24.e30.c2ln", "not a JWT: the header is not JSON"),  # "not json"
    (b"WzFd.e30.c2ln", "not a JWT: the header is not a JSON object"),  # [1]
])
def test_a_body_shaped_like_a_jwt_but_not_one_is_refused(body: bytes, reason: str, verifier: Verifier) -> None:
    error = refused(verifier, body)
    assert (error.kind, error.reason) == ("malformed", reason)


def test_bad_base64_in_the_payload_or_signature_is_refused(keys: Keys, verifier: Verifier) -> None:
    header, payload, signature = sign(canvas_claims(EVENT), keys.a, keys.a.kid).split(b".")
    for body in (b".".join([header, b"A", signature]), b".".join([header, payload, b"A"])):
        error = refused(verifier, body)
        assert error.kind == "malformed" and error.reason.startswith("not a JWT: ")


@pytest.mark.parametrize("payload, reason", [
    (b"not json", "the signed payload is not JSON: "),
    (b"[1, 2]", "the signed payload is not a JSON object"),
    (b"\xff\xfe", "the signed payload is not JSON: "),
])
def test_a_validly_signed_payload_that_is_not_a_json_object_is_refused(payload: bytes, reason: str, keys: Keys,
                                                                       verifier: Verifier) -> None:
    error = refused(verifier, sign(payload, keys.a, keys.a.kid))
    assert error.kind == "claims" and error.reason.startswith(reason)


def test_a_signed_payload_with_integers_beyond_64_bits_is_still_returned(keys: Keys, verifier: Verifier) -> None:
    payload = b'{"metadata": {}, "body": {"id": 123456789012345678901234567890}, "exp": 1e400}'
    assert refused(verifier, sign(payload, keys.a, keys.a.kid)).kind == "claims"  # exp: infinity
    payload = b'{"metadata": {}, "body": {"id": 123456789012345678901234567890}}'
    assert verifier.verify(sign(payload, keys.a, keys.a.kid)) == payload


@pytest.mark.parametrize("headers", [{"crit": ["exp"], "exp": 1}, {"b64": False, "crit": ["b64"]}, {"crit": "b64"}])
def test_critical_header_extensions_are_refused(headers: dict, keys: Keys, verifier: Verifier) -> None:
    if headers.get("b64") is False:  # a detached payload: the payload segment is empty
        header = raw_token({"alg": "RS256", "kid": keys.a.kid, **headers}, b"", b"").split(b".")[0]
        token = header + b".." + sign(b"{}", keys.a, keys.a.kid).split(b".")[2]
    else:
        token = sign(canvas_claims(EVENT), keys.a, keys.a.kid, headers=headers)
    assert refused(verifier, token).kind == "malformed"


def test_an_unknown_refusal_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown refusal kind"):
        Unverified("whatever", "x")


# -- properties ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def valid_token(keys: Keys) -> bytes:
    return sign(canvas_claims(EVENT, now=time.time(), lifetime=86400), keys.a, keys.a.kid)


@given(data=st.data())
@budget(300)
def test_a_mutated_token_is_refused_or_yields_exactly_the_signed_payload(data: st.DataObject, valid_token: bytes,
                                                                        file_keys: KeySet) -> None:
    """Whatever is changed (a byte anywhere, bytes cut off the end or the start), no other bytes come out."""
    token = valid_token
    signed = segments(token)[1]
    mutation = data.draw(st.sampled_from(["flip", "truncate", "cut_start", "insert"]))
    if mutation == "flip":
        index = data.draw(st.integers(0, len(token) - 1))
        byte = data.draw(st.integers(0, 255).filter(lambda value: value != token[index]))
        body = token[:index] + bytes([byte]) + token[index + 1:]
    elif mutation == "truncate":
        body = token[:data.draw(st.integers(0, len(token) - 1))]
    elif mutation == "cut_start":
        body = token[data.draw(st.integers(1, len(token))):]
    else:
        index = data.draw(st.integers(0, len(token)))
        body = token[:index] + data.draw(st.binary(min_size=1, max_size=4)) + token[index:]
    for verifier in (Verifier(file_keys), Verifier(file_keys, allow_unsigned=True)):
        try:
            result = verifier.verify(body)
        except Unverified as error:
            assert error.kind in KINDS and "\n" not in error.reason
            continue
        if result != signed:  # allowed only for an unsigned body passed through, when that is allowed
            assert verifier.allow_unsigned and result is body and not looks_like_jwt(body)


def _json(integers: st.SearchStrategy[int]) -> st.SearchStrategy:
    return st.recursive(
        st.none() | st.booleans() | integers | st.floats(allow_nan=False) | st.text(max_size=20),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
        max_leaves=12,
    )


_JSON = _json(st.integers(-(2**63), 2**63 - 1))  # what orjson encodes
_SEGMENT = st.binary(max_size=60).map(lambda raw: raw_token(b"", raw, b"").split(b".")[1])
_HEADER = st.one_of(
    st.fixed_dictionaries({"alg": st.sampled_from(["RS256", "HS256", "none"]) | _JSON,
                           "kid": st.sampled_from(["kid-a", "kid-b", "kid-z"]) | _JSON}, optional={"crit": _JSON, "b64": _JSON}),
    _JSON,
).map(lambda header: raw_token(orjson.dumps(header), b"", b"").split(b".")[0])
_TOKENISH = st.tuples(_HEADER | _SEGMENT, _SEGMENT, _SEGMENT).map(b".".join)
_BODIES = st.one_of(st.binary(max_size=200), _TOKENISH, st.text(alphabet="AZaz09-_.=", max_size=80).map(str.encode))


@given(body=_BODIES)
@budget(500)
def test_any_body_is_verified_or_refused_and_nothing_else_is_raised(body: bytes, file_keys: KeySet) -> None:
    for verifier in (Verifier(file_keys), Verifier(file_keys, allow_unsigned=True), Verifier(None, allow_unsigned=True)):
        try:
            verifier.verify(body)
        except (Unverified, KeysUnavailable):
            pass


@given(claims=st.dictionaries(st.sampled_from(["exp", "nbf", "iat", "iss", "metadata", "body", "x"]),
                              _json(st.integers()) | st.sampled_from([NOW, NOW + 120, NOW - 120, CANVAS_ISSUER])))
@budget(100)
def test_any_validly_signed_claims_are_returned_exactly_or_refused_for_a_claim(claims: dict, keys: Keys,
                                                                                file_keys: KeySet) -> None:
    token = sign(json.dumps(claims).encode(), keys.a, keys.a.kid)  # json: integers of any size, NaN never drawn
    try:
        assert pinned(file_keys, issuer=CANVAS_ISSUER).verify(token) == segments(token)[1]
    except Unverified as error:
        assert error.kind in {"expired", "not_yet_valid", "issuer", "claims"}
