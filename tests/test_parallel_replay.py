"""Replay on worker processes (consumer/parallel.py, REPLAY_PROCESSES): the same tables as one process.

Batches commit in any order there, so the property is the contract's own: any split of the events, applied in
any order, leaves the same tables, the history, the daily figures, the counters and the quarantine included.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from consumer.core import DatabaseUnavailable, Input
from consumer.parallel import WorkerSetup, process_batches
from consumer.store.engine import make_engine
from consumer.synthetic import generate
from tests.helpers import cli

# Every table the tracker writes, and the columns that say when or in which order a row was written rather
# than what it holds (the quarantine's id is its insertion order).
TABLES = ("courses", "course_sections", "course_progress", "users", "course_progress_history",
          "course_progress_daily_changes", "course_progress_stats", "rejected_events")
WRITE_TIMES = {"received_at", "last_seen_at"}
WRITE_ORDER = {"rejected_events": {"id"}}


def corpus(path: Path, events: int, seed: int) -> Path:
    """Synthetic events (duplicates, untracked, every kind), a few broken lines, shuffled."""
    lines = list(generate(events, seed))
    lines += [b'{"metadata": {"event_name": "course_progress"}, "body": 5}', b'{"not": "an event"}', b"[1, 2"]
    random.Random(seed).shuffle(lines)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def contents(url: str) -> dict[str, list[tuple]]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            found = {}
            for table in TABLES:
                left_out = WRITE_TIMES | WRITE_ORDER.get(table, set())
                columns = [c for c in connection.execute(text(f"SELECT * FROM {table} LIMIT 0")).keys() if c not in left_out]
                found[table] = sorted(tuple(row)
                                      for row in connection.execute(text(f"SELECT {', '.join(columns)} FROM {table}")))
            return found
    finally:
        engine.dispose()


def replay(url: str, path: Path, *flags: str) -> dict:
    result = cli("replay", str(path), "--json", *flags, env={**os.environ, "DATABASE_URL": url, "LOG_FORMAT": "json"})
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    return json.loads(result.stdout)


@pytest.mark.parametrize("seed", [1, 2])
def test_worker_processes_leave_the_same_tables_as_one_process(new_pg_database, tmp_path, seed):
    path = corpus(tmp_path / "events.ndjson", 4000, seed)
    one, several = new_pg_database(), new_pg_database()
    alone = replay(one, path, "--processes", "1", "--batch-size", "150")
    split = replay(several, path, "--processes", "3", "--batch-size", "150")
    # What was read, ignored and rejected does not depend on the order; applied and stale do (an older event
    # committed after a newer one is stale, not applied), but not their sum.
    for name in ("read", "ignored", "rejected"):
        assert split[name] == alone[name], name
    assert split["applied"] + split["stale_or_duplicate"] == alone["applied"] + alone["stale_or_duplicate"]
    assert alone["rejected"] >= 3
    assert contents(several) == contents(one)


def test_sqlite_replays_in_one_process_whatever_the_setting(tmp_path):
    path = corpus(tmp_path / "events.ndjson", 600, 3)
    first, second = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    alone = replay(first, path, "--processes", "1", "--batch-size", "50")
    counts = replay(second, path, "--processes", "4", "--batch-size", "50")
    timing = ("seconds", "events_per_second")
    assert {k: v for k, v in counts.items() if k not in timing} == {k: v for k, v in alone.items() if k not in timing}
    assert contents(second) == contents(first)


def test_a_database_worker_processes_cannot_reach_stops_the_run_with_database_unavailable():
    setup = WorkerSetup("postgresql+psycopg://postgres@127.0.0.1:1/nothing?connect_timeout=2", True, True)
    batches = [[Input(f"x:{n}", b'{"metadata": {"event_name": "nope"}}')] for n in range(6)]
    with pytest.raises(DatabaseUnavailable):
        process_batches(batches, setup, 2)


def test_processes_default_to_one_per_core_at_most_four():
    from consumer.commands.replay import replay_processes
    from consumer.config import Settings

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert replay_processes(Settings(replay_processes=0)) == max(1, min(4, cores))
    assert replay_processes(Settings(replay_processes=3)) == 3


def test_a_small_local_input_replays_in_one_process_unless_told_otherwise(tmp_path):
    """Starting workers costs about 0.3 s: below SMALL_INPUT_BYTES of local files the default is one process;
    anything whose size is not known up front (a directory, S3, standard input) or larger gets the workers, and
    an explicit REPLAY_PROCESSES always stands."""
    from consumer.commands.replay import SMALL_INPUT_BYTES, replay_processes
    from consumer.config import Settings

    workers = replay_processes(Settings(replay_processes=0))
    small, large, gz = tmp_path / "small.ndjson", tmp_path / "large.ndjson", tmp_path / "events.ndjson.gz"
    small.write_bytes(b"{}\n")
    with open(large, "wb") as sparse:
        sparse.truncate(SMALL_INPUT_BYTES)
    with open(gz, "wb") as sparse:  # a gzip file holds about 8 times its size
        sparse.truncate(SMALL_INPUT_BYTES // 4)
    auto = Settings(replay_processes=0)
    assert replay_processes(auto, [str(small)]) == 1
    assert replay_processes(auto, [str(small), str(small)]) == 1
    assert replay_processes(auto, [str(large)]) == workers
    assert replay_processes(auto, [str(small), str(gz)]) == workers
    assert replay_processes(auto, [str(small), str(tmp_path)]) == workers
    assert replay_processes(auto, [str(small), "-"]) == workers
    assert replay_processes(auto, [str(small), "s3://bucket/prefix/"]) == workers
    assert replay_processes(Settings(replay_processes=2), [str(small)]) == 2


def _children(pid: int) -> set[int]:
    try:
        return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except OSError:
        return set()


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_worker_processes_end_with_the_reading_process(new_pg_database, tmp_path, how):
    """No orphan goes on writing once the process that started it is gone (killed, or stopped by SIGTERM)."""
    path = corpus(tmp_path / "events.ndjson", 30_000, 4)
    process = _start_replay(new_pg_database(), path, "--batch-size", "500")
    workers = _workers_of(process)
    process.send_signal(how)
    process.communicate(timeout=30)
    _none_outlive(workers, "worker processes outlived the reading process")

def test_a_worker_process_that_dies_stops_the_run_with_one_line(new_pg_database, tmp_path):
    """A worker killed mid-run (the OOM killer, an operator) ends the run: exit 1, one line saying what happened
    and that replay can be run again; no traceback, and the other worker does not go on alone."""
    path = corpus(tmp_path / "events.ndjson", 60_000, 5)
    process = _start_replay(new_pg_database(), path, "--batch-size", "500")
    workers = _workers_of(process)
    os.kill(min(workers), signal.SIGKILL)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1, stderr.decode()[-2000:]
    errors = [line for line in stderr.decode().splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "worker process ended abruptly" in errors[0] and "run it again" in errors[0], stderr.decode()[-2000:]
    assert "Traceback" not in stderr.decode()
    _none_outlive(workers, "a worker process outlived the run")

@pytest.mark.parametrize(("cpu_max", "limit"), [
    ("max 100000\n", None), ("100000 100000\n", 1), ("150000 100000\n", 2), ("50000 100000\n", 1),
    ("800000 100000\n", 8), ("", None), ("garbage\n", None), ("0 0\n", None),
])
def test_the_default_counts_a_containers_cpu_limit(tmp_path, cpu_max, limit):
    """In a container limited to 1.5 CPUs on a 64-core node, the default is 2 workers, not 4: the cgroup's
    cpu.max quota (rounded up) bounds the affinity mask; no readable limit leaves the mask as it is."""
    from consumer.commands.replay import usable_cores

    cores = len(os.sched_getaffinity(0))
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    assert usable_cores(str(path)) == (cores if limit is None else min(cores, limit))
    assert usable_cores(str(tmp_path / "absent")) == cores


def _start_replay(url: str, path: Path, *flags: str, prefix: tuple[str, ...] = ()) -> subprocess.Popen:
    return subprocess.Popen([*prefix, sys.executable, "-m", "consumer", "replay", str(path), "--processes", "2", *flags],
                            env={**os.environ, "DATABASE_URL": url, "LOG_FORMAT": "json"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def _workers_of(process: subprocess.Popen, count: int = 2) -> set[int]:
    workers: set[int] = set()
    deadline = time.monotonic() + 60
    while len(workers) < count and time.monotonic() < deadline and process.poll() is None:
        workers = {pid for pid in _children(process.pid)
                   if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()} if _alive(process.pid) else set()
        time.sleep(0.01)
    assert len(workers) == count, "the worker processes did not start"
    return workers


def _ended_cleanly(process: subprocess.Popen, workers: set[int]) -> str:
    """Exit 130 with the one line `interrupted` (no traceback, no multiprocessing warning), no worker left."""
    try:
        _, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail("replay did not end within 30 s of the interruption")
    text = stderr.decode()
    assert process.returncode == 130, text[-2000:]
    assert [line for line in text.splitlines() if not line.startswith("{")] == ["interrupted"], text[-2000:]
    _none_outlive(workers, "a worker process outlived the run")
    return text


def _none_outlive(workers: set[int], message: str) -> None:
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if _alive(pid)], message


@pytest.mark.parametrize("when", [0.0, 1.0])
def test_ctrl_c_at_any_time_ends_the_run_with_one_line(new_pg_database, tmp_path, when):
    """Ctrl-C reaches the whole process group: while the workers are still starting (before they have set their
    own signal handling) or while they write, the run ends as `interrupted`, never with a worker's traceback."""
    path = corpus(tmp_path / "events.ndjson", 60_000, 6)
    process = _start_replay(new_pg_database(), path, "--batch-size", "500")
    workers = _workers_of(process)
    time.sleep(when)
    os.killpg(process.pid, signal.SIGINT)
    _ended_cleanly(process, workers)


def test_a_second_ctrl_c_stops_the_workers_at_once(new_pg_database, tmp_path):
    """The first Ctrl-C lets the batches in flight finish; a second one, while they do, must not leave the run
    hanging on workers that will never be given work again (it did)."""
    path = corpus(tmp_path / "events.ndjson", 100_000, 7)
    process = _start_replay(new_pg_database(), path, "--batch-size", "5000")
    workers = _workers_of(process)
    time.sleep(1.5)
    os.killpg(process.pid, signal.SIGINT)
    time.sleep(0.1)
    os.killpg(process.pid, signal.SIGINT)
    _ended_cleanly(process, workers)


def test_sigterm_ends_the_run_as_ctrl_c_does(new_pg_database, tmp_path):
    """An orchestrator's SIGTERM to the reading process: the batches in flight finish and the run ends cleanly
    (not killed mid-way, which left multiprocessing's warnings about leaked semaphores on stderr)."""
    path = corpus(tmp_path / "events.ndjson", 60_000, 8)
    process = _start_replay(new_pg_database(), path, "--batch-size", "500")
    workers = _workers_of(process)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    _ended_cleanly(process, workers)


def test_replay_runs_as_pid_1_as_in_a_container(new_pg_database, tmp_path):
    """In a container the command is PID 1 (exec-form ENTRYPOINT): its workers' parent is PID 1, which is not the
    sign of an orphan there (every worker quit at start, and the run failed)."""
    path = corpus(tmp_path / "events.ndjson", 3_000, 9)
    url = new_pg_database()
    user_namespace = () if os.geteuid() == 0 else ("--user", "--map-root-user")
    result = subprocess.run(["unshare", *user_namespace, "--pid", "--fork", "--mount-proc", sys.executable, "-c",
                             "import os, sys; from consumer.cli import main; assert os.getpid() == 1; sys.exit(main())",
                             "replay", str(path), "--processes", "2", "--batch-size", "500", "--json"],
                            env={**os.environ, "DATABASE_URL": url, "LOG_FORMAT": "json"}, capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    one_process = new_pg_database()
    assert json.loads(result.stdout)["read"] == replay(one_process, path, "--processes", "1")["read"]
    assert contents(url) == contents(one_process)
