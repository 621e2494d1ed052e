"""`receive` when things go wrong: the database goes away and comes back, the process is killed or stopped
mid-request, the spool fills, a second receiver wants the spool, the keys cannot be fetched.

The database is taken away with a TCP proxy in front of the shared Postgres
(tests/tcp_proxy.py): cut, every connection drops and every new one is reset.
The promise under test is the data contract's: a 200 means the event is
committed or fsync'd in the spool, so after any of these every event that got
a 200 is in the tables, exactly as replaying those events stores them.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import orjson
import pytest
from sqlalchemy import text

from consumer.store.engine import make_engine
from tests.factory import progress_event
from tests.helpers import dump_tables, wait_until
from tests.jwks_keys import CANVAS_ISSUER, JwksServer, jwks
from tests.ports import free_port
from tests.receiver.server import Answer, Receiver
from tests.tcp_proxy import TcpProxy


@pytest.fixture
def proxy(postgres_server_url: str):
    with TcpProxy.for_url(postgres_server_url) as running:
        yield running


def unique(n: int, padding: int = 0) -> dict:
    """An event whose rows (its course, its student, their progress) no other event of these tests touches, so
    whether it was stored can be read from the tables; `padding` bytes of an unknown field make it large."""
    event = progress_event(f"2026-11-03T10:{n // 60 % 60:02d}:{n % 60:02d}.000Z", course_id=str(5000 + n),
                           user_id=str(70000 + n), done=n % 7, total=6 + n % 3, user_name=f"Student {n}")
    if padding:
        event["body"]["notes"] = "n" * padding
    return event


def statuses(answers: list[Answer]) -> list[tuple[int | None, str | None]]:
    return sorted({(a.status, a.json.get("status") if a.status == 200 else a.error) for a in answers}, key=str)


def ready(receiver: Receiver) -> dict:
    answer = receiver.readyz()
    assert answer.status in (200, 503), f"{answer}; the receiver's log ends:\n{receiver.log_text()[-3000:]}"
    return answer.json


def wait_drained(receiver: Receiver, what: str) -> None:
    """Wait (60 s at most) until the spool is empty and events go straight to the database again."""

    def drained() -> bool:
        state = ready(receiver)
        return state["spool_records"] == 0 and state["database"] == "ok"

    try:
        wait_until(drained, 60, what)
    except AssertionError as error:
        raise AssertionError(f"{error}; /readyz: {receiver.readyz().body!r}; the log ends:\n{receiver.log_text()[-3000:]}") from None


def progress_keys(database: str) -> set[tuple[int, int]]:
    engine = make_engine(database)
    try:
        with engine.connect() as connection:
            return {tuple(row) for row in connection.execute(text("SELECT course_id, user_id FROM course_progress"))}
    finally:
        engine.dispose()


def tables_of(database: str) -> dict:
    engine = make_engine(database)
    try:
        return dump_tables(engine)
    finally:
        engine.dispose()


def key_of(event: dict) -> tuple[int, int]:
    return int(event["body"]["course"]["id"]), int(event["body"]["user"]["id"])


def test_events_are_spooled_while_the_database_is_away_and_drained_when_it_returns(proxy, database, receivers, canvas,
                                                                                    replayed):
    receiver = receivers(proxy.url(database))
    before = [canvas.sign(unique(n), key=n % 2) for n in range(20)]
    assert statuses(receiver.post_all([s.token for s in before])) == [(200, "committed")]
    proxy.cut()
    during = [canvas.sign(unique(n), key=n % 2) for n in range(20, 120)]
    assert statuses(receiver.post_all([s.token for s in during], threads=8)) == [(200, "spooled")]
    state = ready(receiver)
    assert (state["status"], state["database"], state["spool_records"]) == ("ok", "spooling", len(during))
    assert state["spool_bytes"] > 0 and state["spool_oldest_age_seconds"] >= 0
    assert receiver.metric("canvas_spool_records") == len(during)
    assert receiver.metric("canvas_receiver_database_ok") == 0
    assert receiver.metric("canvas_spool_appended_total") == len(during)
    assert len(progress_keys(database)) == len(before)  # nothing of them reached the database (read directly)
    proxy.restore()
    wait_drained(receiver, "the spool to drain once the database is back")
    assert receiver.metric("canvas_spool_drained_total") == len(during)
    assert receiver.metric("canvas_spool_records") == 0 and receiver.metric("canvas_receiver_database_ok") == 1
    after = [canvas.sign(unique(n)) for n in range(120, 130)]
    assert statuses(receiver.post_all([s.token for s in after])) == [(200, "committed")]
    assert tables_of(database) == replayed([s.payload for s in before + during + after]).tables
    code, log = receiver.stop()
    assert code == 0, log[-3000:]


def test_a_receiver_started_while_the_database_is_away_spools_then_migrates_and_drains(proxy, new_pg_database, receivers,
                                                                                        canvas, replayed):
    database = new_pg_database()  # empty: not even migrated
    proxy.cut()
    receiver = receivers(proxy.url(database))
    state = ready(receiver)
    assert (state["status"], state["database"]) == ("ok", "spooling")
    assert any("cannot be prepared yet" in line.get("message", "") for line in receiver.log_lines())
    events = [canvas.sign(unique(n), key=n % 2) for n in range(30)]
    assert statuses(receiver.post_all([s.token for s in events])) == [(200, "spooled")]
    proxy.restore()
    wait_drained(receiver, "the database to be migrated and the spool drained")
    assert tables_of(database) == replayed([s.payload for s in events]).tables
    code, log = receiver.stop()
    assert code == 0, log[-3000:]


def test_kill_9_while_the_spool_holds_events_loses_none_that_got_200(proxy, database, receivers, canvas, replayed,
                                                                     tmp_path: Path):
    spool = tmp_path / "spool"
    receiver = receivers(proxy.url(database), spool_dir=spool)
    proxy.cut()
    held = [(unique(n), canvas.sign(unique(n), key=n % 2)) for n in range(100)]
    assert statuses(receiver.post_all([s.token for _, s in held])) == [(200, "spooled")]
    # More senders; SIGKILL as the 50th of these is answered, others in flight (a torn append is possible).
    more = [(unique(n), canvas.sign(unique(n), key=n % 2)) for n in range(100, 400)]
    answered = 0
    lock = threading.Lock()

    def kill_at_50(index: int, answer: Answer) -> None:
        nonlocal answered
        with lock:
            answered += answer.status == 200
            if answered == 50:
                receiver.process.kill()

    answers = receiver.post_all([s.token for _, s in more], threads=4, on_answer=kill_at_50)
    assert receiver.process.wait(10) == -signal.SIGKILL
    got_200 = held + [pair for pair, answer in zip(more, answers, strict=True) if answer.status == 200]
    unanswered = [pair for pair, answer in zip(more, answers, strict=True) if answer.status is None]
    assert len(got_200) >= 150 and unanswered  # killed mid-stream
    assert all(a.status in (200, None) for a in answers)
    proxy.restore()
    again = receivers(proxy.url(database), spool_dir=spool, name="restarted")
    wait_drained(again, "the restarted receiver to drain the spool")
    present = progress_keys(database)
    assert all(key_of(event) in present for event, _ in got_200)  # nothing that got a 200 is lost
    # The tables are exactly those of the events that got a 200, plus the ones spooled just before the kill
    # whose 200 never left: nothing else, nothing half-applied.
    spooled_unanswered = [pair for pair in unanswered if key_of(pair[0]) in present]
    stored = got_200 + spooled_unanswered
    print(f"{len(got_200)} answered 200, {len(unanswered)} not answered, of which {len(spooled_unanswered)} were spooled")
    assert tables_of(database) == replayed([s.payload for _, s in stored]).tables
    assert again.metric("canvas_spool_drained_total") == len(stored)
    code, log = again.stop()
    assert code == 0, log[-3000:]
    assert f"the spool holds {len(stored)} events from before" in log


def test_a_full_spool_answers_503_with_retry_after_and_loses_nothing_that_got_200(proxy, database, receivers, canvas,
                                                                                 replayed):
    receiver = receivers(proxy.url(database), "--spool-max-bytes", str(1 << 20))
    proxy.cut()
    accepted, refused = [], []
    for n in range(40):  # 150 KB events: seven or so fill 1 MiB
        signed = canvas.sign(unique(n, padding=150_000))
        answer = receiver.post(signed.token)
        if answer.status == 200:
            assert answer.json["status"] == "spooled" and not refused  # nothing is taken once full (no room freed)
            accepted.append(signed)
        else:
            assert answer.status == 503, (answer.status, answer.body)
            assert answer.headers["retry-after"] == "60" and "spool is full" in answer.json["error"]
            refused.append(signed)
            if len(refused) == 3:
                break
    assert len(accepted) >= 4 and len(refused) == 3
    print(f"{len(accepted)} events of 150 KB fit a spool of 1 MiB")
    assert receiver.metric("canvas_receiver_refused_total", reason="spool_full") == 3
    assert receiver.metric("canvas_receiver_requests_total", outcome="unavailable") == 3
    assert ready(receiver)["spool_records"] == len(accepted)
    proxy.restore()
    wait_drained(receiver, "the full spool to drain")
    late = canvas.sign(unique(100, padding=150_000))
    assert statuses([receiver.post(late.token)]) == [(200, "committed")]
    assert tables_of(database) == replayed([s.payload for s in accepted + [late]]).tables
    code, log = receiver.stop()
    assert code == 0, log[-3000:]


def test_a_database_that_stops_answering_does_not_hold_requests_past_canvas_s_15_s(proxy, database, receivers, canvas,
                                                                                   replayed):
    """A database that neither answers nor refuses (a partition, a failover, a lock held for long): the events
    must still be made durable, in the spool, within the 15 s Canvas waits for an answer; else Canvas retries
    and, after three retries, drops them: the loss the spool exists to prevent."""
    receiver = receivers(proxy.url(database))
    before = canvas.sign(unique(1))
    assert statuses([receiver.post(before.token)]) == [(200, "committed")]
    proxy.hang()
    during = [canvas.sign(unique(n)) for n in range(2, 7)]
    started = time.monotonic()
    answers = receiver.post_all([s.token for s in during], threads=5, timeout=15)
    print(f"answered in {time.monotonic() - started:.1f} s: {statuses(answers)}")
    assert statuses(answers) == [(200, "spooled")]
    proxy.restore()
    wait_drained(receiver, "the spool to drain once the database answers again")
    assert tables_of(database) == replayed([s.payload for s in [before, *during]]).tables


def _server_sockets(port: int) -> list[tuple[str, int]]:
    """(TCP state, bytes not yet read) of each socket on 127.0.0.1:`port` (IPv4), from /proc/net/tcp."""
    found = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, queues = fields[1], fields[3], fields[4]
        if int(local.split(":")[1], 16) == port:
            found.append((state, int(queues.split(":")[1], 16)))
    return found


def test_sigterm_answers_every_request_in_flight_and_exits_0(database, receivers, canvas, replayed):
    receiver = receivers(database)
    events = [canvas.sign(unique(n), key=n % 2) for n in range(20)]
    locker = make_engine(database)
    blocker = locker.connect()
    blocker.execute(text("LOCK TABLE course_progress IN ACCESS EXCLUSIVE MODE"))  # the first commit waits on it
    answers: list[Answer | None] = [None] * len(events)
    sent = threading.Semaphore(0)

    def send(index: int) -> None:
        connection = receiver.connection(timeout=60)
        try:
            connection.putrequest("POST", "/live-events")
            connection.putheader("Content-Length", str(len(events[index].token)))
            connection.endheaders(events[index].token)
            sent.release()
            response = connection.getresponse()
            answers[index] = Answer(response.status, dict(response.getheaders()), response.read())
        except OSError as error:
            answers[index] = Answer(None, error=f"{type(error).__name__}: {error}")
        finally:
            connection.close()

    senders = [threading.Thread(target=send, args=(n,)) for n in range(len(events))]
    try:
        for sender in senders:
            sender.start()
        for _ in senders:
            assert sent.acquire(timeout=10)

        def all_read() -> bool:  # every request accepted and read by the server (nothing left unread on its sockets)
            established = [unread for state, unread in _server_sockets(receiver.port) if state == "01"]
            return len(established) == len(events) and not any(established)

        wait_until(all_read, 10, "the server to read every request")
        receiver.process.send_signal(signal.SIGTERM)
        wait_until(lambda: not any(state == "0A" for state, _ in _server_sockets(receiver.port)), 10,
                   "the receiver to stop listening")
        late = receiver.post(canvas.sign(unique(99)).token, timeout=5)
        assert late.status is None and late.error.startswith("ConnectionRefusedError"), late  # a clean refusal
        assert all(answer is None for answer in answers)  # still waiting on the commit
    finally:
        blocker.rollback()
        blocker.close()
        locker.dispose()
    for sender in senders:
        sender.join(30)
    assert [(a.status, orjson.loads(a.body)["status"]) for a in answers] == [(200, "committed")] * len(events)
    assert receiver.process.wait(30) == 0
    assert [line for line in receiver.log_lines() if line.get("level") in ("ERROR", "CRITICAL")] == []
    assert tables_of(database) == replayed([s.payload for s in events]).tables


def test_signed_events_get_503_while_no_key_can_be_fetched_and_200_once_it_can(database, receivers, canvas,
                                                                               tmp_path: Path):
    server = JwksServer(jwks(*canvas.keys), port=free_port())  # not started: the URL refuses connections
    receiver = Receiver(database, tmp_path / "spool-keys", tmp_path / "keys.log", "--jwks-url", server.url,
                        "--issuer", CANVAS_ISSUER)
    try:
        receiver.start()
        signed = canvas.sign(unique(1))
        answer = receiver.post(signed.token)
        assert answer.status == 503 and answer.headers["retry-after"] == "60", (answer.status, answer.body)
        assert "keys" in answer.json["error"]
        assert progress_keys(database) == set()
        server.start()
        started = time.monotonic()
        wait_until(lambda: receiver.post(signed.token).status == 200, 20, "the keys to be fetched on a later request")
        print(f"keys fetched {time.monotonic() - started:.1f} s after the JWKS came up")
        assert progress_keys(database) == {key_of(unique(1))}
        code, log = receiver.stop()
        assert code == 0, log[-3000:]
    finally:
        receiver.kill()
        server.stop()
