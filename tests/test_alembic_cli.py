"""Alembic's own command line works from the project root (alembic.ini), on the same DATABASE_URL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from consumer.store.engine import make_engine
from consumer.store.migrate import current_revision, head_revision

ROOT = Path(__file__).resolve().parents[1]


def test_alembic_upgrade_head_from_the_root_migrates_database_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'alembic.db'}"
    alembic = [sys.executable, "-m", "alembic"]
    env = {**os.environ, "DATABASE_URL": url}
    done = subprocess.run([*alembic, "upgrade", "head"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with make_engine(url).connect() as connection:
        assert current_revision(connection) == head_revision()
    shown = subprocess.run([*alembic, "current"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and f"{head_revision()} (head)" in shown.stdout, shown.stdout + shown.stderr
