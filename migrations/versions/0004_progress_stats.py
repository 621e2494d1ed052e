"""Per-course progress counters kept by triggers, so the dashboard views stay fast at any size.

The views of 0002 aggregated `course_progress` on every query: 120 ms for one
account and 300 ms for all of them at 1,000,000 rows. `course_progress_stats`
holds, per course, the counts those views need; triggers on `course_progress`
add each change's delta in the writing transaction (on Postgres once per
statement, from its transition tables; on SQLite once per row). The views
now read the counters, and their figures are the same as before, with one
deliberate change: `last_activity` is the newest progress event of any kind,
error bodies included (a maximum cannot be maintained by deltas otherwise).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)

# The bucket of one progress row: the CASE of 0002's progress_distribution, unchanged.
BUCKETS = (
    ("error", "errors"),
    ("completed", "completed"),
    ("no requirements", "no_requirements"),
    ("0-24%", "bucket_0_24"),
    ("25-49%", "bucket_25_49"),
    ("50-74%", "bucket_50_74"),
    ("75-100%", "bucket_75_100"),
)


def bucket(t: str) -> str:
    # In BIGINT: counts go up to 2**31 - 1, and four times one overflows Postgres's integer
    # (the event would be quarantined as "integer out of range"; migration 0009 fixes databases made before).
    done = f"CAST({t}.requirement_completed_count AS BIGINT)"
    total = f"CAST({t}.requirement_count AS BIGINT)"
    return (
        f"CASE WHEN {t}.progress_error IS NOT NULL THEN 'error'"
        f" WHEN {t}.is_completed THEN 'completed'"
        f" WHEN {t}.requirement_count IS NULL OR {t}.requirement_count = 0 THEN 'no requirements'"
        f" WHEN {done} * 4 < {total} THEN '0-24%'"
        f" WHEN {done} * 2 < {total} THEN '25-49%'"
        f" WHEN {done} * 4 < {total} * 3 THEN '50-74%'"
        " ELSE '75-100%' END"
    )


def share(t: str) -> str:
    return (f"CASE WHEN {t}.progress_error IS NULL AND {t}.requirement_count > 0 "
            f"THEN CAST({t}.requirement_completed_count AS REAL) / {t}.requirement_count END")


def contributions(t: str) -> dict[str, str]:
    """Each counter's value for one row of table alias `t`."""
    values = {column: f"CASE WHEN ({bucket(t)}) = '{name}' THEN 1 ELSE 0 END" for name, column in BUCKETS}
    values["students"] = f"CASE WHEN {t}.progress_error IS NULL THEN 1 ELSE 0 END"
    values["share_sum"] = f"COALESCE({share(t)}, 0)"
    values["share_count"] = f"CASE WHEN ({share(t)}) IS NULL THEN 0 ELSE 1 END"
    return values


COUNTERS = ["students", "share_sum", "share_count", *(column for _, column in BUCKETS)]

COURSE_COMPLETION = """
CREATE VIEW course_completion AS
SELECT c.id AS course_id,
       c.name AS course_name,
       c.account_id,
       c.sis_source_id,
       c.workflow_state,
       COALESCE(s.students, 0) AS students,
       COALESCE(s.completed, 0) AS completed,
       CASE WHEN COALESCE(s.students, 0) = 0 THEN NULL ELSE CAST(s.completed AS REAL) / s.students END AS completion_rate,
       CASE WHEN COALESCE(s.share_count, 0) = 0 THEN NULL ELSE s.share_sum / s.share_count END AS mean_share_done,
       s.last_activity
FROM courses c
LEFT JOIN course_progress_stats s ON s.course_id = c.id
"""

ACCOUNT_COMPLETION = """
CREATE VIEW account_completion AS
SELECT account_id,
       COUNT(*) AS courses,
       SUM(students) AS students,
       SUM(completed) AS completed,
       CASE WHEN SUM(students) = 0 THEN NULL ELSE CAST(SUM(completed) AS REAL) / SUM(students) END AS completion_rate,
       MAX(last_activity) AS last_activity
FROM course_completion
GROUP BY account_id
"""

PROGRESS_DISTRIBUTION = "CREATE VIEW progress_distribution AS\n" + "\nUNION ALL\n".join(
    f"SELECT course_id, '{name}' AS bucket, {column} AS students FROM course_progress_stats WHERE {column} > 0"
    for name, column in BUCKETS
)

OLD_VIEWS = ("account_completion", "progress_distribution", "course_completion")


def _postgres_triggers() -> list[str]:
    def delta(sign: int, table: str) -> str:
        """Each row's contribution, added (new rows) or taken away (old rows)."""
        parts = ", ".join(f"{sign} * ({expression}) AS {column}" for column, expression in contributions("t").items())
        return f"SELECT t.course_id, {parts}, t.last_event_time AS newest, {sign} AS sign FROM {table} t"

    sums = ", ".join(f"SUM({column})" for column in COUNTERS)
    assign = ", ".join(f"{column} = s.{column} + EXCLUDED.{column}" for column in COUNTERS)
    columns = ", ".join(COUNTERS)

    def apply(source: str) -> str:
        # ORDER BY course_id: concurrent writers lock counter rows in the same order (no deadlock).
        return (
            f"INSERT INTO course_progress_stats AS s (course_id, {columns}, last_activity) "
            f"SELECT course_id, {sums}, MAX(CASE WHEN sign > 0 THEN newest END) FROM ({source}) AS d "
            f"GROUP BY course_id ORDER BY course_id "
            f"ON CONFLICT (course_id) DO UPDATE SET {assign}, "
            "last_activity = GREATEST(s.last_activity, EXCLUDED.last_activity)"
        )

    inserted = apply(delta(1, "new_rows"))
    updated = apply(delta(1, "new_rows") + " UNION ALL " + delta(-1, "old_rows"))
    deleted = apply(delta(-1, "old_rows"))
    statements = []
    for name, body, event, referencing in (
        ("insert", inserted, "INSERT", "REFERENCING NEW TABLE AS new_rows"),
        ("update", updated, "UPDATE", "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"),
        ("delete", deleted, "DELETE", "REFERENCING OLD TABLE AS old_rows"),
    ):
        statements.append(
            f"CREATE FUNCTION course_progress_stats_{name}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN {body}; RETURN NULL; END $$"
        )
        statements.append(
            f"CREATE TRIGGER course_progress_stats_{name} AFTER {event} ON course_progress {referencing} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION course_progress_stats_{name}()"
        )
    statements.append(
        "CREATE FUNCTION course_progress_stats_truncate() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN DELETE FROM course_progress_stats; RETURN NULL; END $$"
    )
    statements.append(
        "CREATE TRIGGER course_progress_stats_truncate AFTER TRUNCATE ON course_progress "
        "FOR EACH STATEMENT EXECUTE FUNCTION course_progress_stats_truncate()"
    )
    return statements


def _sqlite_triggers() -> list[str]:
    def add(sign: str, alias: str) -> str:
        values = contributions(alias)
        assign = ", ".join(f"{column} = {column} {sign} ({values[column]})" for column in COUNTERS)
        newest = (f", last_activity = CASE WHEN last_activity IS NULL OR last_activity < {alias}.last_event_time "
                  f"THEN {alias}.last_event_time ELSE last_activity END") if sign == "+" else ""
        return (
            # Not INSERT OR IGNORE: in a trigger the outer statement's conflict policy overrides it.
            f"INSERT INTO course_progress_stats (course_id) SELECT {alias}.course_id WHERE NOT EXISTS "
            f"(SELECT 1 FROM course_progress_stats WHERE course_id = {alias}.course_id); "
            f"UPDATE course_progress_stats SET {assign}{newest} WHERE course_id = {alias}.course_id;"
        )

    return [
        f"CREATE TRIGGER course_progress_stats_insert AFTER INSERT ON course_progress BEGIN {add('+', 'NEW')} END",
        f"CREATE TRIGGER course_progress_stats_update AFTER UPDATE ON course_progress BEGIN {add('-', 'OLD')} {add('+', 'NEW')} END",
        f"CREATE TRIGGER course_progress_stats_delete AFTER DELETE ON course_progress BEGIN {add('-', 'OLD')} END",
    ]


def upgrade() -> None:
    op.create_table(
        "course_progress_stats",
        sa.Column("course_id", sa.BigInteger, primary_key=True, autoincrement=False),
        *(sa.Column(column, sa.BigInteger, nullable=False, server_default="0") for column in COUNTERS if column != "share_sum"),
        sa.Column("share_sum", sa.Float, nullable=False, server_default="0"),
        sa.Column("last_activity", TIME),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        # Writers wait until the counters and their triggers are in place: a row committed between
        # the backfill's snapshot and the triggers would otherwise be counted by neither.
        op.execute("LOCK TABLE course_progress IN SHARE ROW EXCLUSIVE MODE")
    for view in OLD_VIEWS:
        op.execute(f"DROP VIEW {view}")
    # Backfill from the rows already there, then keep up by trigger.
    counters = contributions("p")
    sums = ", ".join(f"SUM({expression})" for expression in counters.values())
    op.execute(
        f"INSERT INTO course_progress_stats (course_id, {', '.join(counters)}, last_activity) "
        f"SELECT p.course_id, {sums}, MAX(p.last_event_time) FROM course_progress p GROUP BY p.course_id"
    )
    for statement in _postgres_triggers() if dialect == "postgresql" else _sqlite_triggers():
        op.execute(statement)
    op.execute(COURSE_COMPLETION)
    op.execute(ACCOUNT_COMPLETION)
    op.execute(PROGRESS_DISTRIBUTION)


def downgrade() -> None:
    from importlib import import_module

    previous = import_module("consumer.migrations.versions.0002_bi_views")
    dialect = op.get_bind().dialect.name
    for view in OLD_VIEWS:
        op.execute(f"DROP VIEW {view}")
    for name in ("insert", "update", "delete", "truncate"):
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS course_progress_stats_{name} ON course_progress")
            op.execute(f"DROP FUNCTION IF EXISTS course_progress_stats_{name}()")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS course_progress_stats_{name}")
    op.drop_table("course_progress_stats")
    op.execute(previous.COURSE_COMPLETION)
    op.execute(previous.ACCOUNT_COMPLETION)
    op.execute(previous.PROGRESS_DISTRIBUTION)
