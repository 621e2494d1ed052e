"""benchmarks/cli.py: `python -m benchmarks` explains itself, takes its database from --database-url only (never
DATABASE_URL, which names production in a worker's environment) and its queue from --queue-url only; the
benchmarks are not part of the product (neither the wheel nor `canvas-progress` carries them)."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.benchmarks.tables import SECRET, row_counts, with_password
from tests.helpers import AWS_TEST_ENV

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("command", ["replay", "receive", "bi", "trend"])
def test_each_benchmark_explains_itself(run, command):
    code, out, _ = run(command, "--help")
    assert code == 0
    assert "--database-url" in out and "DATABASE_URL" in out and "scratch" in out


def test_the_benchmarks_are_not_in_the_product():
    """Not in the wheel (pyproject's package list), not importable from consumer, not a canvas-progress command."""
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert packages and all(name == "consumer" or name.startswith("consumer.") for name in packages)
    assert not any(name == "benchmarks" or name.startswith(("benchmarks.", "consumer.bench")) for name in packages)
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "consumer").rglob("__init__.py")}
    assert on_disk <= set(packages)  # every package of the product still ships
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("consumer.bench")
    result = subprocess.run([sys.executable, "-m", "consumer", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "replay" in result.stdout and "bench" not in result.stdout
    for command in ("bench", "bench-bi"):
        result = subprocess.run([sys.executable, "-m", "consumer", command], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and "invalid choice" in result.stderr


@pytest.mark.parametrize("command", [["replay", "--events", "100", "--naive-events", "10"], ["bi", "--progress-rows", "1000"],
                                     ["trend", "--history-rows", "1000"]])
def test_a_benchmark_never_takes_its_database_from_database_url(run, command, database_with_rows):
    database, before = database_with_rows
    code, _, stderr = run(*command, env={"DATABASE_URL": with_password(database)})
    assert code == 2, stderr[-3000:]
    assert stderr.count("\n") == 1 and stderr.startswith("error: ")
    assert "--database-url" in stderr and "DATABASE_URL" in stderr
    assert SECRET not in stderr
    assert row_counts(database) == before


def test_replay_sqs_never_purges_the_queue_of_sqs_queue_url(run, make_queue, sqs_client, sqs_endpoint, new_pg_database):
    queue_url, _ = make_queue()
    code, _, stderr = run("replay", "--events", "100", "--sqs", "--database-url", new_pg_database(),
                          env={**AWS_TEST_ENV, "SQS_QUEUE_URL": queue_url, "AWS_ENDPOINT_URL_SQS": sqs_endpoint})
    assert code == 2 and "--queue-url" in stderr, stderr[-3000:]
