"""rejected list / show / retry: a fixed input leaves the quarantine without loss."""

import json
import subprocess
import sys

from sqlalchemy import insert, select

from consumer.quarantine import retry
from consumer.store.tables import course_progress, rejected_events
from tests.factory import encode, progress_event
from tests.helpers import apply_events, rejected_rows
from tests.test_rejections import refuse_user_666, undo_refusal


def test_retry_after_a_fix_applies_and_removes_in_one_go(engine):
    refuse_user_666(engine)
    apply_events(engine, [progress_event("2019-11-01T00:00:00Z", user_id="666"), b"{broken"])
    assert len(rejected_rows(engine)) == 2
    undo_refusal(engine)  # the fix
    result = retry(engine, None)
    assert (result.retried, result.applied, result.still_rejected) == (2, 1, 1)
    remaining = rejected_rows(engine)
    assert [row["payload"] for row in remaining] == [b"{broken"]
    with engine.connect() as connection:
        assert connection.execute(select(course_progress.c.user_id)).scalars().all() == [666]


def test_retry_of_an_input_an_older_version_rejected(engine):
    with engine.begin() as connection:
        connection.execute(insert(rejected_events).values(source="old:1", reason="an old bug", payload=encode(progress_event("2019-11-01T00:00:00Z"))))
    result = retry(engine, None)
    assert (result.applied, result.still_rejected) == (1, 0)
    assert rejected_rows(engine) == []


def test_retry_keeps_what_still_fails_with_a_fresh_reason(engine):
    with engine.begin() as connection:
        connection.execute(insert(rejected_events).values(source="old:2", reason="stale reason", payload=b'{"metadata": {}}'))
    result = retry(engine, [1, 999])
    assert (result.retried, result.still_rejected, result.missing) == (1, 1, 1)
    assert rejected_rows(engine)[0]["reason"].startswith("metadata.event_name: required field is missing")


def test_rejected_commands(tmp_path, sqlite_url):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "consumer", *args, "--database-url", sqlite_url], capture_output=True, cwd=tmp_path)

    payload = b'{"metadata": {"event_name": "course_progress", "event_time": "2019-11-01T00:00:00Z"}, "body": {"user": {"name": "\xff"}}}'
    (tmp_path / "bad.ndjson").write_bytes(payload + b"\n")
    assert run("replay", str(tmp_path / "bad.ndjson")).returncode == 0
    listed = json.loads(run("rejected", "list", "--json").stdout)
    assert [row["source"] for row in listed] == [f"{tmp_path / 'bad.ndjson'}:1"]
    assert run("rejected", "show", "1", "--raw").stdout == payload  # byte for byte, invalid UTF-8 included
    assert b"reason" in run("rejected", "show", "1").stdout
    missing = run("rejected", "show", "42")
    assert missing.returncode == 1 and missing.stderr.decode().strip() == "error: no rejected input with id 42"
    assert run("rejected", "retry").returncode == 2
    retried = json.loads(run("rejected", "retry", "--all", "--json").stdout)
    assert retried == {"retried": 1, "applied": 0, "still_rejected": 1, "missing": 0}
