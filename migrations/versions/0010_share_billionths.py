"""The per-course counters sum shares done in billionths (an integer), so no order of events changes them.

`course_progress_stats.share_sum` (migration 0004) was a float: each
progress row's share done, a 32-bit REAL on Postgres, added and taken away
by the triggers as rows changed. A sum of floats depends on the order of its
terms, so the same events in another order (shuffled archives, several SQS
workers, replay's worker processes) left counters and `course_completion.
mean_share_done` that differed in their last bits, against the rule that
any order gives the same tables. The daily figures (0008) already sum
shares as integer billionths: each row's share done is
`requirement_completed_count * 10^9 / requirement_count` in integer
division, and the counters now do the same, so the mean is exact to 10^-9
and the same for any order.

The column becomes BIGINT and is recomputed from `course_progress`; the
trigger functions (Postgres) or triggers (SQLite) and `course_completion`
are replaced. On Postgres the views are replaced in place (CREATE OR
REPLACE), so what was granted on them (`bi-role`) stays, and writers wait
for the migration (the table is locked as 0004 did).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

SHARE_UNIT = 1_000_000_000
COMMENT = "shares done, in billionths"


def _stats_0004():
    """Migration 0004 as a module (loaded by path, as 0009 does), for its triggers and views."""
    spec = importlib.util.spec_from_file_location("progress_stats_0004", Path(__file__).with_name("0004_progress_stats.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def share_billionths(t: str) -> str:
    """A row's share done in billionths (NULL: no share), as consumer/store/daily.py computes it: capped at 1
    (a completed count above the requirement count is done, no more), in integer division. Uncapped, a few
    students at 2**31 - 1 of 1 would overflow a BIGINT sum; capped, a course would need 9 billion students."""
    done = t + ".requirement_completed_count"
    total = t + ".requirement_count"
    return (f"CASE WHEN {t}.progress_error IS NULL AND {total} > 0 AND {done} IS NOT NULL "
            f"THEN CAST(CASE WHEN {done} < {total} THEN {done} ELSE {total} END AS BIGINT) * {SHARE_UNIT} / {total} END")


def _stats(billionths: bool):
    """0004's module with the share of this revision (billionths) or its own (a REAL)."""
    stats = _stats_0004()
    if billionths:
        stats.share = share_billionths  # contributions() looks `share` up when called
    return stats


def _mean(dialect: str, billionths: bool) -> str:
    if not billionths:
        return "s.share_sum / s.share_count"
    real = "double precision" if dialect == "postgresql" else "REAL"
    return f"CAST(s.share_sum AS {real}) / (CAST(s.share_count AS {real}) * {SHARE_UNIT})"


def _course_completion(stats, dialect: str, billionths: bool | None) -> str:
    """0004's view with the mean of this revision, of 0004, or (None) none, as the same column type."""
    old = "CASE WHEN COALESCE(s.share_count, 0) = 0 THEN NULL ELSE s.share_sum / s.share_count END AS mean_share_done"
    assert old in stats.COURSE_COMPLETION, "migration 0004's course_completion is not the one this revision replaces"
    mean = ("CAST(NULL AS double precision) AS mean_share_done" if billionths is None else
            f"CASE WHEN COALESCE(s.share_count, 0) = 0 THEN NULL ELSE {_mean(dialect, billionths)} END AS mean_share_done")
    view = stats.COURSE_COMPLETION.replace(old, mean)
    return view.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1) if dialect == "postgresql" else view


def _recompute(stats) -> str:
    """share_sum of every course from its progress rows, by `stats`'s share."""
    share = stats.share("p")
    return (f"UPDATE course_progress_stats SET share_sum = COALESCE((SELECT SUM({share}) FROM course_progress p "
            "WHERE p.course_id = course_progress_stats.course_id), 0)")


def _change(billionths: bool) -> None:
    """Move the counters to billionths (True) or back to 0004's float (False)."""
    dialect = op.get_bind().dialect.name
    stats = _stats(billionths)
    new_type, old_type = (sa.BigInteger(), sa.Float()) if billionths else (sa.Float(), sa.BigInteger())
    if dialect == "postgresql":
        op.execute("LOCK TABLE course_progress IN SHARE ROW EXCLUSIVE MODE")
        op.execute(_course_completion(stats, dialect, None))  # the view lets go of share_sum, keeping its grants
        op.execute("ALTER TABLE course_progress_stats ALTER COLUMN share_sum DROP DEFAULT")
        op.execute(f"ALTER TABLE course_progress_stats ALTER COLUMN share_sum TYPE {'BIGINT' if billionths else 'DOUBLE PRECISION'} USING 0")
        op.execute("ALTER TABLE course_progress_stats ALTER COLUMN share_sum SET DEFAULT 0")
        op.execute(f"COMMENT ON COLUMN course_progress_stats.share_sum IS {repr(COMMENT) if billionths else 'NULL'}")
        op.execute(_recompute(stats))
        for statement in stats._postgres_triggers():
            if statement.startswith("CREATE FUNCTION"):  # the triggers stay; their functions are replaced
                op.execute(statement.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
        op.execute(_course_completion(stats, dialect, billionths))
        return
    # SQLite: a column's type changes by copying the table (batch mode), whose final rename checks every view
    # and trigger naming it; so they go first and come back after. All of it in one transaction taken before
    # the first change: Python's sqlite3 would run each DDL statement on its own, so a writer could commit
    # rows between the triggers' removal and their return (counted nowhere), and a failure half-way would leave
    # the views and triggers gone. BEGIN IMMEDIATE makes writers wait, and a failure rolls everything back.
    driver = op.get_bind().connection.driver_connection
    if not driver.in_transaction:
        driver.execute("BEGIN IMMEDIATE")
    for view in stats.OLD_VIEWS:
        op.execute(f"DROP VIEW {view}")
    for name in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER course_progress_stats_{name}")
    with op.batch_alter_table("course_progress_stats") as batch:
        batch.alter_column("share_sum", type_=new_type, existing_type=old_type, existing_nullable=False,
                           server_default="0", existing_server_default="0")
    op.execute(_recompute(stats))
    for statement in stats._sqlite_triggers():
        op.execute(statement)
    op.execute(_course_completion(stats, dialect, billionths))
    op.execute(stats.ACCOUNT_COMPLETION)
    op.execute(stats.PROGRESS_DISTRIBUTION)


def upgrade() -> None:
    _change(billionths=True)


def downgrade() -> None:
    _change(billionths=False)
