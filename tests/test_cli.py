"""The command line as a user runs it: a separate process, from a directory of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factory import SAMPLE_EVENTS, encode, progress_event

CONSOLE_SCRIPT = Path(sys.executable).parent / "canvas-progress"


def run(*args: str, cwd: Path, stdin: bytes | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BATCH_SIZE")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "consumer", *args], cwd=cwd, input=stdin, capture_output=True, env=environment, timeout=120
    )


def test_console_script_is_installed():
    assert CONSOLE_SCRIPT.exists()
    result = subprocess.run([str(CONSOLE_SCRIPT), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "replay" in result.stdout


@pytest.mark.parametrize("command", ["migrate", "replay", "summary", "serve", "token create"])
def test_every_command_explains_itself(tmp_path, command):
    result = run(*command.split(), "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "--database-url" in result.stdout.decode()


def test_readme_first_command_on_the_embedded_default(tmp_path, sample_expectations):
    replayed = run("replay", str(SAMPLE_EVENTS), "--json", cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stderr
    summary = json.loads(replayed.stdout)
    assert summary["read"] == summary["applied"] + summary["stale_or_duplicate"] + summary["ignored"] + summary["rejected"]
    assert (summary["rejected"], summary["ignored"]) == (sample_expectations.rejected, sample_expectations.ignored)
    assert (tmp_path / "course_progress.db").exists()  # the default embedded database, in the working directory
    shown = run("summary", cwd=tmp_path)
    assert shown.returncode == 0
    lines = shown.stdout.decode().splitlines()
    assert lines[0].split() == ["course_id", "name", "students", "completed", "completion_rate"]
    assert any(line.split()[0] == "777" and line.split()[-1] == "25.0%" for line in lines[2:])  # the error body is no student


def test_replay_twice_changes_nothing_the_second_time(tmp_path):
    run("replay", str(SAMPLE_EVENTS), cwd=tmp_path)
    second = json.loads(run("replay", str(SAMPLE_EVENTS), "--json", cwd=tmp_path).stdout)
    assert second["applied"] == 0


def test_replay_reads_stdin(tmp_path):
    lines = b"\n".join(encode(progress_event(f"2019-11-01T00:00:0{n}Z", user_id=str(n))) for n in range(3))
    result = run("replay", "-", "--json", cwd=tmp_path, stdin=lines)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["applied"] == 3


def test_text_summary_lists_every_outcome(tmp_path):
    result = run("replay", str(SAMPLE_EVENTS / "course_completed.json"), cwd=tmp_path)
    out = result.stdout.decode()
    for label in ("read", "applied", "stale or duplicate", "ignored", "rejected", "events/s"):
        assert label in out


def test_missing_path_exits_2_with_one_line(tmp_path):
    result = run("replay", "no-such-dir", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.decode().strip() == "error: no such file or directory: no-such-dir"
    assert not (tmp_path / "course_progress.db").exists()  # checked before touching the database


def test_unreachable_database_exits_1_with_one_line(tmp_path):
    result = run("replay", str(SAMPLE_EVENTS), cwd=tmp_path, env={"DATABASE_URL": "postgresql://canvas:secret@127.0.0.1:1/none"})
    assert result.returncode == 1
    message = result.stderr.decode().strip()
    assert len(message.splitlines()) == 1
    assert message.startswith("error: cannot use the database at postgresql+psycopg://canvas:***@127.0.0.1:1/none")
    assert "secret" not in message


def test_no_migrate_on_an_empty_database_says_what_to_do(tmp_path):
    result = run("replay", str(SAMPLE_EVENTS), "--no-migrate", cwd=tmp_path)
    assert result.returncode == 1
    assert "run `canvas-progress migrate`" in result.stderr.decode()


def test_bad_setting_is_named(tmp_path):
    result = run("replay", str(SAMPLE_EVENTS), "--batch-size", "0", cwd=tmp_path)
    assert result.returncode == 2
    message = result.stderr.decode()
    assert message.startswith("error: invalid --batch-size (env BATCH_SIZE) 0: ") and message.count("\n") == 1


def test_replay_into_postgres(tmp_path, new_pg_database):
    url = new_pg_database()
    result = run("replay", str(SAMPLE_EVENTS), "--json", "--batch-size", "3", cwd=tmp_path, env={"DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout)
    assert (counts["read"], counts["rejected"], counts["ignored"]) == (27, 5, 1)
    shown = json.loads(run("summary", "--json", cwd=tmp_path, env={"DATABASE_URL": url}).stdout)
    assert {row["course_id"]: row["students"] for row in shown} == {565: 1, 777: 4}


def test_tokens_are_printed_once_listed_without_the_secret_and_revoked(tmp_path):
    created = run("token", "create", "--account", "79", "--account", "80", "--name", "IR office", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    token = created.stdout.decode().strip()
    assert token.startswith("cpt_") and len(token) > 40
    assert "shown only now" in created.stderr.decode()
    listed = json.loads(run("token", "list", "--json", cwd=tmp_path).stdout)
    assert [(t["id"], t["name"], t["accounts"], t["revoked_at"]) for t in listed] == [(1, "IR office", [79, 80], None)]
    assert token not in run("token", "list", cwd=tmp_path).stdout.decode()
    assert run("token", "revoke", "1", cwd=tmp_path).returncode == 0
    again = run("token", "revoke", "1", cwd=tmp_path)
    assert again.returncode == 1 and again.stderr.decode().strip() == "error: no active token with id 1"
    assert json.loads(run("token", "list", "--json", cwd=tmp_path).stdout)[0]["revoked_at"]


def test_a_token_for_a_global_account_id_is_for_the_local_id(tmp_path):
    created = run("token", "create", "--account", "20000000000079", "--account", "79", "--json", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["accounts"] == [79]
    assert [t["accounts"] for t in json.loads(run("token", "list", "--json", cwd=tmp_path).stdout)] == [[79]]


@pytest.mark.parametrize(("args", "message"), [
    (["token", "create"], "--account"),
    (["token", "create", "--account", "0"], 'argument --account: "0" is not an id'),
    (["token", "create", "--account", "20000000000000"], "its local part (the id modulo 10**13) is 0"),  # local id 0
    (["token", "create", "--account", "x"], 'argument --account: "x" is not an id'),
    (["token", "create", "--account", "²"], 'argument --account: "²" is not an id'),
    (["token", "revoke", "+1"], 'argument id: "+1" is not an id'),
    (["rejected", "show", "1_0"], 'argument id: "1_0" is not an id'),
    (["rejected", "retry", "5", " 6"], 'argument ID: " 6" is not an id'),
    (["rejected", "list", "--offset", "-1"], "argument --offset: must be at least 0 (got -1)"),
    (["rejected", "list", "--limit", "0"], "argument --limit: must be at least 1 (got 0)"),
])
def test_ids_and_counts_on_the_command_line_are_refused_in_one_line(tmp_path, args, message):
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr.decode()
