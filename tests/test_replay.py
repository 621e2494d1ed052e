"""Replay end to end: files through the pipeline into both databases.

Whatever the files hold, everything readable is committed: a damaged or
unreadable file is reported (one line each, counted, exit status 1 at the
end) and the run goes on with the next one.
"""

import gzip
import io
import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from consumer.replay import replay
from consumer.sources.files import DAMAGED, ReadReport
from consumer.store.engine import make_engine
from consumer.store.tables import course_progress, rejected_events
from consumer.synthetic import generate
from tests.factory import SAMPLE_EVENTS, encode, poison_bodies, progress_event
from tests.helpers import dump_tables, rejected_rows


def test_sqlite_and_postgres_end_with_identical_tables(tmp_path, sqlite_engine, pg_engine, sample_expectations):
    path = tmp_path / "generated.ndjson.gz"
    path.write_bytes(gzip.compress(b"\n".join(generate(3000, seed=7, courses=5, students=40))))
    for engine in (sqlite_engine, pg_engine):
        counts = replay([str(path), str(SAMPLE_EVENTS)], engine, batch_size=250)
        assert counts.read == 3000 + sample_expectations.read
    sqlite_tables, pg_tables = dump_tables(sqlite_engine), dump_tables(pg_engine)
    assert sum(len(rows) for rows in pg_tables.values()) > 100
    assert sqlite_tables == pg_tables


def test_generated_events_are_reproducible_and_mixed():
    first, second = list(generate(2000, seed=3)), list(generate(2000, seed=3))
    assert first == second and len(first) == 2000
    assert len(set(first)) < 2000  # duplicate deliveries
    assert any(b'"course_completed"' in e for e in first) and any(b'"course_section_' in e for e in first)


def _progress_lines(count: int, first_user: int = 0) -> bytes:
    return b"".join(encode(progress_event("2019-11-01T00:00:00Z", user_id=str(first_user + n))) + b"\n" for n in range(count))


def _progress_rows(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(course_progress)).scalar_one()


def test_a_damaged_gzip_loses_nothing_before_the_damage_nor_the_files_after_it(tmp_path, engine):
    data = tmp_path / "data"  # not tmp_path: the SQLite engine's database is there
    data.mkdir()
    whole = gzip.compress(_progress_lines(400))
    (data / "1-truncated.ndjson.gz").write_bytes(whole[: len(whole) * 3 // 4])
    (data / "2-after.ndjson").write_bytes(_progress_lines(50, first_user=10_000))
    report = ReadReport()
    counts = replay([str(data)], engine, batch_size=64, report=report)
    complete_lines = _count_complete_lines(gzip.GzipFile(fileobj=io.BytesIO(whole[: len(whole) * 3 // 4])))
    assert counts.applied == complete_lines + 50 and counts.rejected == 1  # the line cut by the damage
    assert _progress_rows(engine) == complete_lines + 50
    assert [p.kind for p in report.problems] == [DAMAGED] and report.failed


def _count_complete_lines(stream) -> int:
    lines = 0
    try:
        for line in stream:
            lines += line.endswith(b"\n")
    except EOFError:
        pass
    return lines


def test_a_value_nested_deeper_than_the_recursion_limit_is_quarantined_and_its_neighbours_applied(tmp_path, engine):
    deep = b'{"metadata": ' + b"[" * 3000 + b"]" * 3000 + b"}"
    events = [encode(progress_event("2019-11-01T00:00:00Z", user_id=str(n))) for n in range(3)]
    (tmp_path / "deep.json").write_bytes(b"[" + events[0] + b",\n" + deep + b",\n" + events[1] + b"," + events[2] + b"]")
    counts = replay([str(tmp_path / "deep.json")], engine, batch_size=10)
    assert (counts.read, counts.applied, counts.rejected) == (4, 3, 1)
    assert [row["payload"] for row in rejected_rows(engine)] == [deep]


def test_a_file_name_that_is_not_utf8_is_stored_as_text(tmp_path, engine):
    name = os.fsdecode(b"caf\xe9\x1b[0m.ndjson")
    (tmp_path / name).write_bytes(b'{"not": "an event"}\n' + encode(progress_event("2019-11-01T00:00:00Z")))
    counts = replay([str(tmp_path)], engine, batch_size=10)
    assert (counts.applied, counts.rejected) == (1, 1)
    assert [row["source"] for row in rejected_rows(engine)] == [f"{tmp_path}/caf\\xe9\\x1b[0m.ndjson:1"]


# -- the command line --------------------------------------------------------------------------------


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BATCH_SIZE")}
    return subprocess.run(
        [sys.executable, "-m", "consumer", *args], cwd=cwd, capture_output=True, env={**environment, "LOG_FORMAT": "text"}, timeout=120
    )


def test_replay_dot_does_not_read_its_own_database(tmp_path):
    (tmp_path / "events.ndjson").write_bytes(_progress_lines(200))
    for _ in range(2):
        result = cli("replay", ".", "--json", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        totals = json.loads(result.stdout)
        assert totals["read"] == 200 and totals["rejected"] == 0
    assert totals["files_skipped"] >= 1 and totals["files_unreadable"] == totals["files_damaged"] == 0
    assert b"skipped course_progress.db: an SQLite database, not events" in result.stderr
    with make_engine(f"sqlite:///{tmp_path / 'course_progress.db'}").connect() as connection:
        assert connection.execute(select(func.count()).select_from(rejected_events)).scalar_one() == 0


def test_unreadable_files_exit_1_after_everything_readable_is_applied(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.ndjson").write_bytes(_progress_lines(30))
    (data / "b-dangling.ndjson").symlink_to(tmp_path / "gone.ndjson")
    (data / "c-unreadable.ndjson").symlink_to("/proc/self/mem")  # every read fails with EIO, even for root
    whole = gzip.compress(_progress_lines(40, first_user=100))
    (data / "d-truncated.ndjson.gz").write_bytes(whole[:-20])
    (data / "e.ndjson").write_bytes(_progress_lines(20, first_user=1000))
    (data / "f.zip").write_bytes(b"PK\x03\x04" + bytes(40))
    result = cli("replay", "data", "--json", cwd=tmp_path)
    assert result.returncode == 1
    totals = json.loads(result.stdout)
    before_damage = _count_complete_lines(gzip.GzipFile(fileobj=io.BytesIO(whole[:-20])))
    assert totals["applied"] == 30 + before_damage + 20 and (totals["files_unreadable"], totals["files_damaged"]) == (3, 1)
    stderr = result.stderr.decode().splitlines()
    assert b"Traceback" not in result.stderr
    assert sum("b-dangling.ndjson" in line for line in stderr) == 1 and sum("c-unreadable.ndjson" in line for line in stderr) == 1
    assert sum("d-truncated.ndjson.gz" in line and "stops at byte" in line for line in stderr) == 1
    assert sum("f.zip" in line and "zip archive" in line for line in stderr) == 1
    assert stderr[-1].startswith("error: 4 files could not be read whole")
    with make_engine(f"sqlite:///{tmp_path / 'course_progress.db'}").connect() as connection:
        assert connection.execute(select(func.count()).select_from(course_progress)).scalar_one() == totals["applied"]


def test_text_summary_counts_the_files_that_could_not_be_read(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "events.ndjson").write_bytes(_progress_lines(3))
    (data / "gone.ndjson").symlink_to(tmp_path / "nowhere")
    (data / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    result = cli("replay", str(data), cwd=tmp_path)
    out = result.stdout.decode()
    assert result.returncode == 1
    assert any(line.split()[:3] == ["files", "skipped", "(not"] and line.split()[-1] == "1" for line in out.splitlines())
    assert any(line.split()[:3] == ["files", "not", "read"] and line.split()[-1] == "1" for line in out.splitlines())


def test_control_characters_in_file_names_do_not_reach_the_terminal(tmp_path):
    evil = tmp_path / "evil\x1b]0;owned\x07\x1b[2J.ndjson"
    evil.write_bytes(b"not json\n")
    (tmp_path / "x\x1b[31m.bin").write_bytes(b"\x00\x01")
    result = cli("replay", str(tmp_path), "--database-url", f"sqlite:///{tmp_path / 'x.sqlite'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert b"\x1b" not in result.stderr and b"\x07" not in result.stderr
    assert b"evil\\x1b]0;owned\\x07\\x1b[2J.ndjson:1" in result.stderr  # the rejected line, named safely


def test_lines_that_once_raised_inside_parsing_are_quarantined_and_the_rest_of_the_file_applied(tmp_path):
    """Issue 10: event_name 5, a field nested 300 deep, stuck_sis_fields nested 1000 deep. Each once made
    `replay` print a traceback, lose its batch and never read the rest of the file."""
    valid = [encode(progress_event("2019-11-01T00:00:00Z", user_id=str(n))) for n in range(50)]
    poison = [body.encode() for body in poison_bodies()]
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"\n".join(valid[:20] + poison + valid[20:]) + b"\n")
    database = f"sqlite:///{tmp_path / 'db.sqlite'}"
    run = subprocess.run([sys.executable, "-m", "consumer", "replay", str(path), "--json", "--batch-size", "10",
                          "--database-url", database, "--log-level", "ERROR"], capture_output=True, timeout=120)
    assert run.returncode == 0 and b"Traceback" not in run.stderr, run.stderr[-2000:]
    totals = json.loads(run.stdout)
    assert (totals["read"], totals["applied"], totals["rejected"]) == (53, 50, 3)
    assert sorted(row["source"] for row in rejected_rows(make_engine(database))) == [f"{path}:21", f"{path}:22", f"{path}:23"]
