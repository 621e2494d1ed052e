"""BI views (course and account completion, progress distribution, data freshness) and their indexes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Students with an error body (course not module based, or not a student) are
# not "tracked" for completion: they have no requirements to complete.
COURSE_COMPLETION = """
CREATE VIEW course_completion AS
SELECT c.id AS course_id,
       c.name AS course_name,
       c.account_id,
       c.sis_source_id,
       c.workflow_state,
       COUNT(p.user_id) AS students,
       COALESCE(SUM(CASE WHEN p.is_completed THEN 1 ELSE 0 END), 0) AS completed,
       CASE WHEN COUNT(p.user_id) = 0 THEN NULL
            ELSE CAST(SUM(CASE WHEN p.is_completed THEN 1 ELSE 0 END) AS REAL) / COUNT(p.user_id) END AS completion_rate,
       AVG(CASE WHEN p.requirement_count > 0
                THEN CAST(p.requirement_completed_count AS REAL) / p.requirement_count END) AS mean_share_done,
       MAX(p.last_event_time) AS last_activity
FROM courses c
LEFT JOIN course_progress p ON p.course_id = c.id AND p.progress_error IS NULL
GROUP BY c.id, c.name, c.account_id, c.sis_source_id, c.workflow_state
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

PROGRESS_DISTRIBUTION = """
CREATE VIEW progress_distribution AS
SELECT course_id,
       CASE WHEN progress_error IS NOT NULL THEN 'error'
            WHEN is_completed THEN 'completed'
            WHEN requirement_count IS NULL OR requirement_count = 0 THEN 'no requirements'
            WHEN requirement_completed_count * 4 < requirement_count THEN '0-24%'
            WHEN requirement_completed_count * 2 < requirement_count THEN '25-49%'
            WHEN requirement_completed_count * 4 < requirement_count * 3 THEN '50-74%'
            ELSE '75-100%' END AS bucket,
       COUNT(*) AS students
FROM course_progress
GROUP BY 1, 2
"""

FRESHNESS_PARTS = [
    ("courses", "MAX(CASE WHEN course_event_time IS NULL OR progress_event_time > course_event_time THEN progress_event_time ELSE course_event_time END)"),
    ("course_sections", "MAX(last_event_time)"),
    ("course_progress", "MAX(last_event_time)"),
    ("users", "MAX(last_event_time)"),
]


def _freshness(dialect: str) -> str:
    lag = {
        "postgresql": "EXTRACT(EPOCH FROM (now() - newest_event_time))",
        "sqlite": "(julianday('now') - julianday(newest_event_time)) * 86400.0",
    }[dialect]
    union = "\nUNION ALL\n".join(f"SELECT '{table}' AS table_name, {newest} AS newest_event_time FROM {table}" for table, newest in FRESHNESS_PARTS)
    return f"CREATE VIEW data_freshness AS\nSELECT table_name, newest_event_time, {lag} AS lag_seconds\nFROM ({union}) AS newest"


def upgrade() -> None:
    op.create_index("ix_courses_account_id", "courses", ["account_id"])
    op.create_index("ix_course_progress_last_event_time", "course_progress", ["last_event_time"])
    op.create_index("ix_course_sections_last_event_time", "course_sections", ["last_event_time"])
    op.create_index("ix_users_last_event_time", "users", ["last_event_time"])
    op.execute(COURSE_COMPLETION)
    op.execute(ACCOUNT_COMPLETION)
    op.execute(PROGRESS_DISTRIBUTION)
    op.execute(_freshness(op.get_bind().dialect.name))


def downgrade() -> None:
    for view in ("data_freshness", "progress_distribution", "account_completion", "course_completion"):
        op.execute(f"DROP VIEW {view}")
    for index, table in (("ix_users_last_event_time", "users"), ("ix_course_sections_last_event_time", "course_sections"),
                         ("ix_course_progress_last_event_time", "course_progress"), ("ix_courses_account_id", "courses")):
        op.drop_index(index, table_name=table)
