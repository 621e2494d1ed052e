"""`receive` as Canvas meets it: real processes, real HTTP on loopback, real Postgres (and SQLite), signed payloads.

One receiver per database for the whole module (a process start is a second
or two): Postgres, verifying against the JWKS served over HTTP with an
issuer required; SQLite, with unsigned payloads allowed and the JWKS read
from a file. Each test empties the receiver's tables first (the receiver is
idle between tests), and compares what the receiver stored with what
replaying the same payloads produces. What goes wrong with the database,
the spool and the process is in test_receive_faults.py.
"""

from __future__ import annotations

import http.client
import random
import socket
import time
from collections.abc import Iterator, Sequence

import orjson
import pytest
from jwt.utils import base64url_encode

from consumer.synthetic import generate
from tests.factory import encode, progress_event, sample_inputs
from tests.helpers import cli, dump_tables, rejected_rows, wait_until
from tests.jwks_keys import CANVAS_ISSUER, canvas_claims, forge_hs256, segments, sign
from tests.ports import free_port
from tests.receiver.server import Answer, Receiver

MIB = 1 << 20


@pytest.fixture(scope="module")
def receiver(new_pg_database, canvas, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    """On an empty Postgres database (the receiver migrates it), keys from the JWKS URL, Canvas's issuer required."""
    folder = tmp_path_factory.mktemp("receiver")
    with Receiver(new_pg_database(), folder / "spool", folder / "receiver.log",
                  "--jwks-url", canvas.server.url, "--issuer", CANVAS_ISSUER).running() as server:
        yield server


@pytest.fixture(scope="module")
def unsigned_receiver(canvas, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    """On SQLite, unsigned payloads allowed, the JWKS from a file, no issuer required."""
    folder = tmp_path_factory.mktemp("unsigned-receiver")
    with Receiver(f"sqlite:///{folder / 'course_progress.db'}", folder / "spool", folder / "receiver.log",
                  "--allow-unsigned", "--jwks-file", str(canvas.file)).running() as server:
        yield server


@pytest.fixture
def store(receiver: Receiver, emptied):
    """The Postgres receiver's database, emptied."""
    return emptied(receiver.database_url)


def committed(answers: list[Answer]) -> None:
    """Every answer is 200 "committed", with its request id in the body and the X-Request-Id header, all distinct."""
    problems = [(n, a.status, a.error, a.body[:200]) for n, a in enumerate(answers)
                if a.status != 200 or a.json["status"] != "committed"]
    assert not problems, problems[:5]
    ids = [a.request_id for a in answers]
    assert [a.headers["x-request-id"] for a in answers] == ids
    assert len(set(ids)) == len(ids)


def quarantined(answers: list[Answer], payloads: list[bytes], replayed_rejected: list[dict]) -> set[tuple[str, bytes]]:
    """The (source, payload) pairs the receiver should have quarantined: the inputs the replay quarantined (it
    names the N-th input "test:N"), under the request ids of the POSTs that carried them."""
    numbers = [int(row["source"].removeprefix("test:")) - 1 for row in replayed_rejected]
    return {(f"https:{answers[n].request_id}", payloads[n]) for n in numbers}


def test_events_signed_with_either_published_key_are_committed_as_a_replay_stores_them(
        receiver, store, canvas, replayed, sample_expectations):
    events = [orjson.loads(item) for item in sample_inputs() if item.startswith(b"{") and _is_json(item)]
    signed = [canvas.sign(event, key=n % 2) for n, event in enumerate(events)]  # both kids, interleaved
    assert {orjson.loads(segments(s.token)[0])["kid"] for s in signed} == {key.kid for key in canvas.keys}
    answers = receiver.post_all([s.token for s in signed], threads=4)
    committed(answers)
    payloads = [s.payload for s in signed]
    expected = replayed(payloads)
    tables = dump_tables(store)
    assert tables == expected.tables
    assert {name: len(rows) for name, rows in tables.items()} == {name: sample_expectations.rows[name] for name in tables}
    rejected = {(row["source"], bytes(row["payload"])) for row in rejected_rows(store)}
    assert rejected == quarantined(answers, payloads, expected.rejected)
    assert len(rejected) == len(expected.rejected) > 0  # the sample's bad events, quarantined under their request ids


def _is_json(item: bytes) -> bool:
    try:
        return isinstance(orjson.loads(item), dict)
    except orjson.JSONDecodeError:
        return False


def _tamper(token: bytes) -> bytes:
    """The token with its payload replaced after signing (the header and signature kept)."""
    header, payload, signature = token.split(b".")
    claims = orjson.loads(segments(token)[1])
    claims["body"]["progress"]["requirement_completed_count"] = 6
    return b".".join([header, base64url_encode(orjson.dumps(claims)), signature])


EVENT = progress_event("2026-11-02T10:00:00.000Z", course_id="901", user_id="77")
REFUSALS = {
    # name: (body from the Canvas fixture, the reason's kind)
    "unsigned": (lambda canvas: encode(EVENT), "unsigned"),
    "unknown kid": (lambda canvas: sign(canvas_claims(EVENT), canvas.unpublished, canvas.unpublished.kid), "unknown_kid"),
    "signed by the other key than its kid": (
        lambda canvas: sign(canvas_claims(EVENT), canvas.keys[1], canvas.keys[0].kid), "bad_signature"),
    "expired": (lambda canvas: canvas.sign(EVENT, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600).token, "expired"),
    "alg none": (lambda canvas: sign(canvas_claims(EVENT), None, canvas.keys[0].kid, alg="none"), "algorithm"),
    "HS256 keyed with the public key": (
        lambda canvas: forge_hs256(canvas_claims(EVENT), canvas.keys[0].public_pem, canvas.keys[0].kid), "algorithm"),
    "payload tampered after signing": (lambda canvas: _tamper(canvas.sign(EVENT).token), "bad_signature"),
    "wrong issuer": (lambda canvas: canvas.sign(EVENT, issuer="https://live-events.attacker.example").token, "issuer"),
    "no issuer": (lambda canvas: canvas.sign(EVENT, issuer=None).token, "issuer"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_unverified_payloads_get_401_are_not_stored_and_are_logged_and_counted(receiver, store, canvas, case):
    make_body, kind = REFUSALS[case]
    counted = receiver.metric("canvas_receiver_unverified_total", reason=kind)
    answer = receiver.post(make_body(canvas))
    assert answer.status == 401, (answer.status, answer.body)
    assert answer.json["error"].startswith("not accepted: ") and answer.headers["x-request-id"] == answer.request_id
    assert dump_tables(store) == {name: [] for name in dump_tables(store)}
    assert rejected_rows(store) == []
    lines = []

    def logged() -> bool:
        lines[:] = [line for line in receiver.log_lines() if line.get("request_id") == answer.request_id]
        return bool(lines)

    wait_until(logged, 10, "the refusal's log line")
    assert len(lines) == 1, lines
    assert lines[0]["reason"] == kind and lines[0]["remote"] == "127.0.0.1"
    assert "127.0.0.1" in lines[0]["message"] and answer.json["error"].removeprefix("not accepted: ") in lines[0]["message"]
    assert receiver.metric("canvas_receiver_unverified_total", reason=kind) == counted + 1
    # The same event, signed as Canvas signs it, is stored: the refusal was about the signature alone.
    committed([receiver.post(canvas.sign(EVENT).token)])
    assert len(dump_tables(store)["course_progress"]) == 1


def test_a_valid_signature_on_garbage_claims_is_answered_200_and_quarantined_under_the_request_id(receiver, store, canvas):
    bad_count = progress_event("2026-11-02T10:00:00Z", course_id="902")
    bad_count["body"]["progress"]["requirement_count"] = "six"
    no_event = {"hello": "world", "metadata": [1, 2]}
    signed = [canvas.sign(bad_count), canvas.sign(no_event), canvas.sign(EVENT)]
    answers = [receiver.post(s.token) for s in signed]
    committed(answers)
    rows = {row["source"]: row for row in rejected_rows(store)}
    assert set(rows) == {f"https:{answers[0].request_id}", f"https:{answers[1].request_id}"}
    for answer, s in zip(answers[:2], signed[:2], strict=True):
        row = rows[f"https:{answer.request_id}"]
        assert bytes(row["payload"]) == s.payload  # the signed bytes, exactly
        assert row["reason"]
    assert "requirement_count" in rows[f"https:{answers[0].request_id}"]["reason"]
    assert len(dump_tables(store)["course_progress"]) == 1  # its good neighbour


def _raw(port: int, head: bytes, chunks: Sequence[bytes] = (), timeout: float = 10) -> tuple[int, bytes, float]:
    """Send a request's head, then `chunks` (as raw bytes on the wire), then read the answer on the same socket:
    (status, body, seconds from the last byte sent to the answer). Nothing is sent past what the server is
    expected to read, so its answer cannot be lost to a reset."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        for chunk in chunks:
            sock.sendall(chunk)
        sent = time.monotonic()
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = response.read()
        return response.status, body, time.monotonic() - sent


def _head(**headers: str) -> bytes:
    lines = ["POST /live-events HTTP/1.1", "Host: 127.0.0.1", *(f"{name.replace('_', '-')}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _exactly_one_mib(canvas, event: dict) -> bytes:
    """`event` signed as a JWT of exactly 1 MiB: an unknown claim pads the payload, an unknown header member the
    header (a base64url length cannot be every number: the header covers the lengths the payload cannot)."""
    claims = canvas_claims(event)
    key = canvas.keys[0]
    base = len(sign({**claims, "padding": ""}, key, key.kid))
    estimate = (MIB - base) * 3 // 4
    for extra in range(4):
        for padding in range(estimate - 24, estimate + 24):
            token = sign({**claims, "padding": "x" * padding}, key, key.kid, headers={"pad": "y" * extra})
            if len(token) == MIB:
                return token
    raise AssertionError("no padding gives a token of exactly 1 MiB")


def test_bodies_over_1_mib_get_413_at_once_and_exactly_1_mib_is_taken(receiver, store, canvas):
    refused = receiver.metric("canvas_receiver_requests_total", outcome="too_large")
    for declared in (MIB + 1, 10 * 1024**3):  # the headers alone: nothing of the body is sent
        status, body, seconds = _raw(receiver.port, _head(Content_Type="application/jwt", Content_Length=str(declared)))
        assert status == 413 and b"larger than 1048576 bytes" in body
        assert seconds < 2  # answered from the header, not after waiting for the body (the body timeout is 30 s)
    # Chunked, no length declared: refused at the chunk that crosses 1 MiB (the sender sends no more than that).
    chunks = [b"%x\r\n%s\r\n" % (len(piece), piece) for piece in [b"a" * 65536] * 16 + [b"b"]]
    status, body, seconds = _raw(receiver.port, _head(Transfer_Encoding="chunked"), chunks)
    assert status == 413 and b"larger than 1048576 bytes" in body and seconds < 2
    assert receiver.get("/healthz").status == 200
    token = _exactly_one_mib(canvas, EVENT)
    committed([receiver.post(token)])
    assert len(dump_tables(store)["course_progress"]) == 1
    # A chunked body of exactly 1 MiB is taken too.
    other = progress_event("2026-11-02T10:00:00.000Z", course_id="903", user_id="78")
    token = _exactly_one_mib(canvas, other)
    pieces = [token[n:n + 65536] for n in range(0, len(token), 65536)]
    chunked = [b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces] + [b"0\r\n\r\n"]
    status, body, _ = _raw(receiver.port, _head(Transfer_Encoding="chunked"), chunked)
    assert status == 200 and orjson.loads(body)["status"] == "committed", body
    assert len(dump_tables(store)["course_progress"]) == 2
    assert receiver.metric("canvas_receiver_requests_total", outcome="too_large") == refused + 3


def test_concurrent_senders_with_duplicates_in_any_order_are_all_committed_in_groups(receiver, store, canvas, replayed):
    events = [orjson.loads(item) for item in generate(800, seed=13, courses=12, students=150)]
    signed = [canvas.sign(event, key=n % 2) for n, event in enumerate(events)]
    rng = random.Random(5)
    sends = signed + rng.sample(signed, len(signed))  # every event delivered twice (and generate() has duplicates)
    rng.shuffle(sends)
    before = receiver.metrics()
    answers = receiver.post_all([s.token for s in sends], threads=32)  # 32 senders x 50 events
    committed(answers)
    after = receiver.metrics()
    assert dump_tables(store) == replayed([s.payload for s in sends]).tables

    def delta(name: str) -> float:
        key = (name, frozenset())
        return after[key] - before.get(key, 0.0)

    assert delta("canvas_receiver_group_size_sum") == len(sends)  # every event committed in some group
    groups = delta("canvas_receiver_group_size_count")
    assert 0 < groups < len(sends)  # ... and groups of more than one formed under load
    print(f"{len(sends)} events in {groups:.0f} group commits")


def test_unsigned_payloads_are_taken_when_allowed_and_signed_ones_still_verified_on_sqlite(
        unsigned_receiver, emptied, canvas, replayed, sample_expectations):
    engine = emptied(unsigned_receiver.database_url)
    inputs = sample_inputs()  # as sent: JSON files, NDJSON lines, a line that is not UTF-8, lines that are not JSON
    signed = [canvas.sign(progress_event(f"2026-11-0{n}T10:00:00Z", course_id="904", user_id=str(n)), key=n % 2)
              for n in range(1, 4)]
    bodies = inputs + [s.token for s in signed]
    answers = [unsigned_receiver.post(body) for body in bodies]
    committed(answers)
    payloads = inputs + [s.payload for s in signed]
    expected = replayed(payloads, sqlite=True)
    assert dump_tables(engine) == expected.tables
    rejected = {(row["source"], bytes(row["payload"])) for row in rejected_rows(engine)}
    assert rejected == quarantined(answers, payloads, expected.rejected)
    assert len(expected.rejected) == sample_expectations.rejected
    tampered = _tamper(canvas.sign(EVENT).token)
    answer = unsigned_receiver.post(tampered)
    assert answer.status == 401 and "signature" in answer.json["error"]
    assert dump_tables(engine) == expected.tables


def test_a_second_receiver_on_the_same_spool_directory_exits_2_naming_it(receiver, store, canvas):
    result = cli("receive", "--port", str(free_port()), "--spool-dir", str(receiver.spool_dir),
                 "--jwks-url", canvas.server.url, env={**receiver.env}, timeout=60)
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    naming = [line for line in stderr.splitlines() if str(receiver.spool_dir) in line]
    assert len(naming) == 1 and naming[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    committed([receiver.post(canvas.sign(EVENT).token)])  # the first receiver still has its spool and works
    assert len(dump_tables(store)["course_progress"]) == 1


def test_health_readiness_metrics_and_wrong_methods_or_paths(receiver):
    health = receiver.get("/healthz")
    assert (health.status, health.json) == (200, {"status": "ok"})
    ready = receiver.readyz()
    assert ready.status == 200
    assert ready.json == {"status": "ok", "database": "ok", "spool_records": 0, "spool_bytes": 0,
                          "spool_oldest_age_seconds": None}
    metrics = receiver.get("/metrics")
    assert metrics.status == 200 and metrics.headers["content-type"].startswith("text/plain")
    for name in (b"canvas_receiver_requests_total", b"canvas_spool_records", b"canvas_receiver_database_ok 1.0"):
        assert name in metrics.body
    wrong_method = receiver.get("/live-events")
    assert wrong_method.status == 405 and wrong_method.headers["allow"] == "POST"
    assert receiver.request("PUT", "/live-events", b"{}").status == 405
    assert receiver.request("POST", "/healthz", b"{}").status == 405
    assert receiver.get("/events").status == 404
    assert receiver.request("POST", "/live-events/", encode(EVENT)).status == 401  # the same route: unsigned refused
