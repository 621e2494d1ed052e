"""Nothing is lost: every bad input kind lands in rejected_events with its reason and raw bytes."""

import hashlib
import json
import os
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from consumer.core import DatabaseUnavailable, Input
from consumer.pipeline import Pipeline
from consumer.store.engine import make_engine
from tests.factory import course_event, encode, payload, progress_event, section_event
from tests.helpers import apply_events, dump_tables, refuse_user_666, rejected_rows, undo_refusal

BAD_INPUTS = [
    (b'{"metadata": {"event_name": "course_progress", "event_time": "2019-11-01T00:00:00Z"}, "body": {"progress": {', "invalid JSON"),
    (b'{"metadata": {"event_name": "course_progress"}, "body": {"user": {"name": "\xff\xfe"}}}', "invalid JSON"),
    (payload("caliper-envelope"), "Caliper envelope"),
    (payload("sns-message-not-json"), "SNS notification field Message"),
    (b"[]", "expected a JSON object"),
    (encode(course_event("noon-ish")), "metadata.event_time"),
    (encode(course_event("2019-11-01T00:00:00Z", course_id=21070000000000565.0)), "body.course_id"),
    (encode(section_event("2019-11-01T00:00:00Z", start_at="first day of term")), "body.start_at"),
    (encode(progress_event("2019-11-01T00:00:00Z", user_id="not-a-number")), "body.user.id"),
    (encode(progress_event("2019-11-01T00:00:00Z", course_name="nul\u0000byte")), "body.course.name"),
    (encode(progress_event("2019-11-01T00:00:00Z", total=2**40)), "body.progress.requirement_count"),
    (encode(progress_event("2019-11-01T00:00:00Z", done=-1)), "body.progress.requirement_completed_count"),
]


def test_each_bad_input_is_stored_with_reason_and_exact_bytes(engine):
    good = progress_event("2019-11-01T00:00:00Z")
    payloads = [payload for payload, _ in BAD_INPUTS]
    counts = apply_events(engine, [*payloads, good])
    assert (counts.read, counts.rejected, counts.applied) == (len(BAD_INPUTS) + 1, len(BAD_INPUTS), 1)
    stored = rejected_rows(engine)
    assert [row["payload"] for row in stored] == payloads
    for row, (_, reason) in zip(stored, BAD_INPUTS, strict=True):
        assert reason in row["reason"]
        assert row["source"].startswith("test:")
        assert row["received_at"] is not None
    assert len(dump_tables(engine)["course_progress"]) == 1


def test_rejected_event_name_is_recorded_when_known(engine):
    apply_events(engine, [encode(progress_event("2019-11-01T00:00:00Z", user_id="x"))])
    assert rejected_rows(engine)[0]["event_name"] == "course_progress"


def test_a_row_the_database_refuses_is_isolated_and_the_rest_committed(engine):
    refuse_user_666(engine)
    poison = progress_event("2019-11-01T00:00:00Z", user_id="666")
    events = [progress_event("2019-11-01T00:00:00Z", user_id=str(n)) for n in range(1, 8)]
    events.insert(4, poison)
    try:
        counts = apply_events(engine, events)
    finally:
        undo_refusal(engine)
    assert (counts.applied, counts.rejected) == (7, 1)
    (stored,) = rejected_rows(engine)
    assert stored["reason"].startswith("the database refused this event:")
    assert json.loads(stored["payload"])["body"]["user"]["id"] == "666"
    assert len(dump_tables(engine)["course_progress"]) == 7


def test_unreachable_database_raises_and_commits_nothing():
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(DatabaseUnavailable):
        Pipeline(engine).process([Input("test:1", encode(progress_event("2019-11-01T00:00:00Z")))])


def test_statement_failing_for_everything_is_not_bisected_into_rejections(pg_engine):
    # A dropped table is the database's fault, not the events': nothing may be quarantined.
    with pg_engine.begin() as connection:
        connection.execute(text("ALTER TABLE users RENAME TO users_away"))
    try:
        with pytest.raises(DatabaseUnavailable, match='users'):
            apply_events(pg_engine, [progress_event("2019-11-01T00:00:00Z")])
    finally:
        with pg_engine.begin() as connection:
            connection.execute(text("ALTER TABLE users_away RENAME TO users"))
    assert rejected_rows(pg_engine) == []


# --- One quarantine row per distinct payload (issue 10 item 5) -----------------------------------------------------------


def test_the_same_bad_input_in_one_batch_is_one_row_seen_n_times(engine):
    bad = b'{"metadata": {"event_name": "course_progress"'
    counts = apply_events(engine, [bad, progress_event("2019-11-01T00:00:00Z"), bad, b"[]", bad, bad], batch_size=1000)
    assert (counts.read, counts.rejected, counts.applied) == (6, 5, 1)  # every delivery is still counted as rejected
    stored = rejected_rows(engine)
    assert [row["payload"] for row in stored] == [bad, b"[]"]
    assert [row["times_seen"] for row in stored] == [4, 1]
    assert (stored[0]["first_source"], stored[0]["source"]) == ("test:1", "test:6")


def test_the_same_bad_input_across_batches_is_one_row_seen_n_times(engine):
    bad = encode(progress_event("2019-11-01T00:00:00Z", user_id="not-a-number"))
    apply_events(engine, [bad] * 5, batch_size=1)
    apply_events(engine, [bad] * 3, batch_size=2)
    (stored,) = rejected_rows(engine)
    assert stored["times_seen"] == 8
    assert stored["payload"] == bad and stored["event_name"] == "course_progress"
    assert stored["received_at"] <= stored["last_seen_at"]


def test_a_redelivery_updates_when_where_and_why_but_keeps_the_first_sighting(engine):
    """received_at and first_source stay; last_seen_at, times_seen, source, receive_count and reason follow the newest."""
    from datetime import datetime, timezone

    from sqlalchemy import insert

    from consumer.store.tables import rejected_events

    bad = encode(progress_event("2019-11-01T00:00:00Z", user_id="x"))
    long_ago = datetime(2024, 1, 1, tzinfo=timezone.utc)
    with engine.begin() as connection:  # stored a while ago by an older version, with its reason
        connection.execute(insert(rejected_events).values(source="msg-1", reason="an old reason", payload=bad, receive_count=1,
                                                          received_at=long_ago, last_seen_at=long_ago))
    (first,) = rejected_rows(engine)
    Pipeline(engine).process([Input("msg-2", bad, receive_count=3)])
    (stored,) = rejected_rows(engine)
    assert (stored["id"], stored["received_at"], stored["first_source"]) == (first["id"], long_ago, "msg-1")
    assert (stored["source"], stored["receive_count"], stored["times_seen"]) == ("msg-2", 3, 2)
    assert stored["reason"].startswith("body.user.id:")  # the current code's reason
    assert stored["last_seen_at"] > long_ago


def test_different_bytes_are_different_inputs(engine):
    """Identity is the bytes: the same JSON spelled differently is another input."""
    apply_events(engine, [b'{"metadata": {}}', b'{"metadata":{}}', b'{"metadata": {}}\r', b"\xff", b"\xfe"])
    assert [row["times_seen"] for row in rejected_rows(engine)] == [1, 1, 1, 1, 1]


def test_a_refused_event_delivered_twice_in_a_batch_is_one_row(engine):
    refuse_user_666(engine)
    poison = progress_event("2019-11-01T00:00:00Z", user_id="666")
    events = [progress_event("2019-11-01T00:00:00Z", user_id=str(n)) for n in range(1, 6)]
    try:
        counts = apply_events(engine, [poison, *events, poison])
    finally:
        undo_refusal(engine)
    assert (counts.applied, counts.rejected) == (5, 2)
    (stored,) = rejected_rows(engine)
    assert stored["times_seen"] == 2 and stored["reason"].startswith("the database refused this event:")


def test_sqlite_writes_a_large_batch_in_several_statements(sqlite_engine, monkeypatch):
    from consumer.store import quarantine_rows

    monkeypatch.setattr(quarantine_rows, "_sqlite_rows_per_statement", lambda connection: 3)
    payloads = [b"{bad %d" % n for n in range(10)]
    apply_events(sqlite_engine, [*payloads, *payloads[:4]], batch_size=1000)
    stored = rejected_rows(sqlite_engine)
    assert [row["payload"] for row in stored] == payloads
    assert [row["times_seen"] for row in stored] == [2] * 4 + [1] * 6


def test_replaying_the_same_bad_file_twice_keeps_one_row_per_input(engine, tmp_path):
    """The Why case: 3,000 bad lines replayed twice stored 6,000 rows; status and retry --all counted them twice."""
    url = engine.url.render_as_string(hide_password=False)
    lines = [encode(progress_event("2019-11-01T00:00:00Z", user_id=f"bad-{n}")) for n in range(3000)]
    path = tmp_path / "bad.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    for _ in range(2):
        replayed = cli("replay", str(path), "--json", "--database-url", url)
        assert replayed.returncode == 0, replayed.stderr[-2000:]
        assert json.loads(replayed.stdout)["rejected"] == 3000
    stored = rejected_rows(engine)
    assert len(stored) == 3000
    assert {row["times_seen"] for row in stored} == {2}
    assert [row["first_source"] for row in stored] == [f"{path}:{n}" for n in range(1, 3001)]
    status = cli("status", "--json", "--database-url", url)
    report = json.loads(status.stdout)
    assert (report["rejected"], report["rejected_deliveries"]) == (3000, 6000), status.stderr[-2000:]
    retried = cli("rejected", "retry", "--all", "--json", "--database-url", url)
    assert json.loads(retried.stdout) == {"retried": 3000, "applied": 0, "still_rejected": 3000, "missing": 0}


def cli(*args: str):
    import subprocess
    import sys

    env = {name: value for name, value in os.environ.items() if name not in ("SQS_QUEUE_URL", "DATABASE_URL")}
    return subprocess.run([sys.executable, "-m", "consumer", *args], capture_output=True, env=env, timeout=300)


_BAD_POOL = st.lists(st.binary(max_size=12).map(lambda tail: b"not json " + tail), min_size=1, max_size=6, unique=True)


@settings(max_examples=40, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_the_quarantine_holds_exactly_the_distinct_bad_payloads(engine, data):
    """For any multiset of bad payloads, delivered in any batches: one row each, times_seen its multiplicity."""
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM rejected_events"))
    pool = data.draw(_BAD_POOL, label="pool")
    delivered = data.draw(st.lists(st.sampled_from(pool), max_size=30), label="delivered")
    batch_size = data.draw(st.integers(1, 8), label="batch_size")
    apply_events(engine, delivered, batch_size=batch_size)
    stored = rejected_rows(engine)
    expected = Counter(delivered)
    assert {row["payload"]: row["times_seen"] for row in stored} == dict(expected)
    assert len(stored) == len(expected)
    for row in stored:
        sources = [f"test:{n}" for n, payload in enumerate(delivered, 1) if payload == row["payload"]]
        assert (row["first_source"], row["source"]) == (sources[0], sources[-1])
        assert row["payload_sha256"] == hashlib.sha256(row["payload"]).digest()
