"""The per-course counters' triggers compute the progress buckets in BIGINT (Postgres).

Counts go up to 2**31 - 1; the triggers of migration 0004 multiplied them by
4 in `integer`, so a progress event with a count from 2**29 up was
quarantined on Postgres ("integer out of range") while SQLite applied it.
0004 now makes the fixed functions; this revision replaces them in databases
made before. SQLite's integers are 64-bit: nothing to do there.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

import importlib.util
from pathlib import Path

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _functions() -> list[str]:
    """0004's trigger functions, as CREATE OR REPLACE (the triggers themselves stay)."""
    # By path, beside this file: `consumer.migrations` is not importable when the scripts are run from a
    # checkout whose `consumer/` shadows the installed package (alembic itself loads them by path).
    spec = importlib.util.spec_from_file_location("progress_stats_0004", Path(__file__).with_name("0004_progress_stats.py"))
    stats = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stats)
    return [statement.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
            for statement in stats._postgres_triggers() if statement.startswith("CREATE FUNCTION")]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _functions():
            op.execute(statement)


def downgrade() -> None:
    pass  # the functions of 0004 as it is now are correct for 0008 too: nothing to undo
