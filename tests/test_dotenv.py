"""A `.env` file in the working directory sets the settings, as pydantic-settings users expect; the
environment wins over it, flags over both; a bad one is one line, exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from consumer.config import Settings


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("BATCH_SIZE", "LOG_FORMAT", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_dotenv_sets_settings_and_the_environment_wins(in_tmp, monkeypatch):
    (in_tmp / ".env").write_text("BATCH_SIZE=77\nLOG_FORMAT=text\nAWS_REGION=eu-west-1  # not ours: ignored\n")
    settings = Settings()
    assert (settings.batch_size, settings.log_format) == (77, "text")
    monkeypatch.setenv("BATCH_SIZE", "5")
    assert Settings().batch_size == 5


def run(cwd, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("BATCH_SIZE", "DATABASE_URL")}
    return subprocess.run([sys.executable, "-m", "consumer", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_flags_win_over_dotenv_and_it_names_the_database(in_tmp):
    (in_tmp / ".env").write_text(f"DATABASE_URL=sqlite:///{in_tmp / 'from-dotenv.db'}\nBATCH_SIZE=3\n")
    done = run(in_tmp, "migrate")
    assert done.returncode == 0, done.stderr
    assert (in_tmp / "from-dotenv.db").exists() and not (in_tmp / "course_progress.db").exists()
    done = run(in_tmp, "migrate", "--database-url", f"sqlite:///{in_tmp / 'from-flag.db'}")
    assert done.returncode == 0 and (in_tmp / "from-flag.db").exists(), done.stderr


@pytest.mark.parametrize(("content", "expected"), [
    (b"BATCH_SIZE=abc\n", "invalid BATCH_SIZE (--batch-size) 'abc'"),
    (b"BATCH_SIZE=\xff\xfe\n", "cannot read .env in "),
])
def test_a_bad_dotenv_is_one_line_and_exit_2(in_tmp, content, expected):
    (in_tmp / ".env").write_bytes(content)
    done = run(in_tmp, "summary")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and expected in done.stderr and done.stderr.count("\n") == 1, done.stderr
