"""The tables BI queries (CONTRACT section 3). Column names follow Canvas Data 2.

No foreign keys: events for one entity routinely arrive before the events
that create another.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    func,
)

from consumer.store.types import AutoId, StoredJSON, UTCDateTime

metadata = MetaData()

courses = Table(
    "courses",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False, comment="local Canvas course id"),
    Column("global_id", BigInteger, comment="global id, as carried by course_created/updated"),
    Column("account_id", BigInteger),
    Column("name", Text),
    Column("uuid", Text),
    Column("sis_source_id", Text),
    Column("workflow_state", Text),
    Column("created_at", UTCDateTime),
    Column("updated_at", UTCDateTime),
    Column("course_event_time", UTCDateTime, comment="event_time of the newest course_created/updated applied"),
    Column("progress_event_time", UTCDateTime, comment="event_time of the newest progress-type event applied"),
    Column("course_event_rank", BigInteger, comment="orders course events with the same event_time (see How events become rows)"),
    Column("progress_event_rank", BigInteger, comment="orders progress-type events with the same event_time"),
    Index("ix_courses_account_id", "account_id"),
)

course_sections = Table(
    "course_sections",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False, comment="local Canvas section id"),
    Column("course_id", BigInteger, nullable=False),
    Column("name", Text),
    Column("sis_source_id", Text),
    Column("sis_batch_id", BigInteger),
    Column("integration_id", Text),
    Column("enrollment_term_id", BigInteger),
    Column("nonxlist_course_id", BigInteger),
    Column("root_account_id", BigInteger),
    Column("default_section", Boolean),
    Column("accepting_enrollments", Boolean),
    Column("restrict_enrollments_to_section_dates", Boolean),
    Column("start_at", UTCDateTime),
    Column("end_at", UTCDateTime),
    Column("workflow_state", Text),
    Column("stuck_sis_fields", StoredJSON),
    Column("last_event_name", Text, nullable=False),
    Column("last_event_time", UTCDateTime, nullable=False),
    Column("last_event_rank", BigInteger, comment="orders events with the same event_time"),
    Index("ix_course_sections_course_id", "course_id"),
    Index("ix_course_sections_last_event_time", "last_event_time"),
)

course_progress = Table(
    "course_progress",
    metadata,
    Column("course_id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("requirement_count", Integer),
    Column("requirement_completed_count", Integer),
    Column("next_requirement_url", Text),
    Column("completed_at", UTCDateTime),
    Column("is_completed", Boolean, nullable=False),
    Column("progress_error", Text),
    Column("last_event_name", Text, nullable=False),
    Column("last_event_time", UTCDateTime, nullable=False),
    Column("last_event_rank", BigInteger, comment="orders events with the same event_time"),
    Index("ix_course_progress_user_id", "user_id"),
    Index("ix_course_progress_last_event_time", "last_event_time"),
)

# Per-course counters behind the dashboard views, kept by triggers on course_progress (migration 0004).
course_progress_stats = Table(
    "course_progress_stats",
    metadata,
    Column("course_id", BigInteger, primary_key=True, autoincrement=False),
    Column("students", BigInteger, nullable=False, server_default="0"),  # rows without an error body
    # Integer billionths (migration 0010), as the daily figures: a float sum would depend on the events' order.
    Column("share_sum", BigInteger, nullable=False, server_default="0", comment="shares done, in billionths"),
    Column("share_count", BigInteger, nullable=False, server_default="0"),
    Column("errors", BigInteger, nullable=False, server_default="0"),
    Column("completed", BigInteger, nullable=False, server_default="0"),
    Column("no_requirements", BigInteger, nullable=False, server_default="0"),
    Column("bucket_0_24", BigInteger, nullable=False, server_default="0"),
    Column("bucket_25_49", BigInteger, nullable=False, server_default="0"),
    Column("bucket_50_74", BigInteger, nullable=False, server_default="0"),
    Column("bucket_75_100", BigInteger, nullable=False, server_default="0"),
    Column("last_activity", UTCDateTime),
)

# Every distinct progress-type event (migration 0008): the history BI charts progress over time from.
course_progress_history = Table(
    "course_progress_history",
    metadata,
    Column("course_id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("event_time", UTCDateTime, primary_key=True),
    Column("event_name", Text, nullable=False),
    Column("requirement_count", Integer),
    Column("requirement_completed_count", Integer),
    Column("completed_at", UTCDateTime),
    Column("is_completed", Boolean, nullable=False, comment="true exactly for course_completed"),
    Column("progress_error", Text, comment="NULL unless the event carried an error body"),
    Column("event_rank", BigInteger, nullable=False, comment="orders two different events with the same key"),
    comment="one row per distinct course_progress / course_completed event, in any arrival order",
)

# What each course's daily figures change by on each UTC day, kept with the history (store/daily.py);
# the view course_progress_daily adds them up into one row per course per day.
course_progress_daily_changes = Table(
    "course_progress_daily_changes",
    metadata,
    Column("course_id", BigInteger, primary_key=True, autoincrement=False),
    Column("day", Date, primary_key=True, comment="a UTC calendar day with at least one progress event of the course"),
    Column("students", BigInteger, nullable=False, server_default="0"),
    Column("completed", BigInteger, nullable=False, server_default="0"),
    Column("share_sum", BigInteger, nullable=False, server_default="0", comment="shares done, in billionths"),
    Column("share_count", BigInteger, nullable=False, server_default="0"),
)

# Reference data the migrations fill and nothing else writes: kept apart from `metadata`, whose tables
# hold what the tracker writes (and what tests and benchmarks empty). Alembic compares both.
reference_metadata = MetaData()

# Every day from 1900-01-01 to 2199-12-31 (migration 0008): gap-free joins for charts; SQLite's daily view
# fills the days between changes with it.
calendar_days = Table(
    "calendar_days",
    reference_metadata,
    Column("day", Date, primary_key=True),
    comment="every day from 1900-01-01 to 2199-12-31: gap-free joins for charts (and SQLite's daily view)",
    sqlite_with_rowid=False,
)

# Settings the BI views read (one row): how many days without progress make a student stalled.
bi_settings = Table(
    "bi_settings",
    reference_metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("stalled_after_days", Integer, nullable=False, server_default="14"),
    CheckConstraint("id = 1", name="ck_bi_settings_one_row"),
    CheckConstraint("stalled_after_days >= 0", name="ck_bi_settings_stalled_after_days"),
)

users = Table(
    "users",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False, comment="local Canvas user id"),
    Column("name", Text),
    Column("email", Text),
    Column("last_event_time", UTCDateTime, nullable=False),
    Column("last_event_rank", BigInteger, comment="orders events with the same event_time"),
    Index("ix_users_last_event_time", "last_event_time"),
)


def _payload_sha256(context) -> bytes:  # SQLAlchemy's default execution context
    return hashlib.sha256(context.get_current_parameters()["payload"]).digest()


def _first_source(context) -> str:
    return context.get_current_parameters()["source"]


# The quarantine: one row per distinct payload (migration 0005), written by store/quarantine_rows.py.
# The Python defaults only serve hand-written inserts (tests, scripts); the writer sets every column.
rejected_events = Table(
    "rejected_events",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("received_at", UTCDateTime, nullable=False, server_default=func.current_timestamp(), comment="first time this payload was seen"),
    Column("source", Text, nullable=False, comment="where it was seen last: SQS message id, or file:line"),
    Column("reason", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False, comment="the raw input, byte for byte"),
    Column("event_name", Text),
    Column("receive_count", Integer, comment="SQS ApproximateReceiveCount, when from SQS"),
    Column("payload_sha256", LargeBinary, nullable=False, default=_payload_sha256, comment="SHA-256 of payload: one row per distinct payload"),
    Column("first_source", Text, nullable=False, default=_first_source, comment="where it was first seen"),
    Column("last_seen_at", UTCDateTime, nullable=False, server_default=func.current_timestamp(), comment="last time this payload was seen"),
    Column("times_seen", Integer, nullable=False, server_default="1", comment="deliveries of this payload"),
    Index("ix_rejected_events_received_at", "received_at"),
    Index("ix_rejected_events_last_seen_at", "last_seen_at"),
    Index("ux_rejected_events_payload_sha256", "payload_sha256", unique=True),
    CheckConstraint("times_seen >= 1", name="ck_rejected_events_times_seen"),
)

# --- The Reports API (issue 5): tokens, report jobs and their files ---------

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("token_hash", Text, nullable=False, unique=True, comment="SHA-256 hex of the token; the token itself is never stored"),
    Column("name", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
)

api_token_accounts = Table(
    "api_token_accounts",
    metadata,
    Column("token_id", BigInteger, ForeignKey("api_tokens.id", ondelete="CASCADE"), primary_key=True, autoincrement=False),
    Column("account_id", BigInteger, primary_key=True, autoincrement=False),
)

# One row per report job. It is also the job's Progress object (same id): the
# report status maps to the Progress workflow_state (see consumer/reports/jobs.py).
reports = Table(
    "reports",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("report", Text, nullable=False, comment="report type, e.g. course_progress_csv"),
    Column("account_id", BigInteger, nullable=False, comment="the account the report belongs to"),
    Column("course_id", BigInteger, comment="set for course reports, NULL for account reports"),
    Column("token_id", BigInteger, nullable=False, comment="the API token that started it (the Progress user_id)"),
    Column("parameters", StoredJSON, nullable=False),
    Column("status", Text, nullable=False, comment="created, running, complete, error, aborted or deleted"),
    Column("message", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("ended_at", UTCDateTime),
    Column("heartbeat_at", UTCDateTime, comment="refreshed while running; a stale one means its server died"),
    Column("current_line", Integer, nullable=False, default=0),
    Column("progress", Integer, nullable=False, default=0),
    Column("file_name", Text),
    Column("file_size", BigInteger),
    Index("ix_reports_account_report", "account_id", "report"),
    Index("ix_reports_course_report", "course_id", "report"),
    Index("ix_reports_status", "status"),
    Index("ix_reports_account_started", "account_id", "started_at"),  # whose turn it is (jobs.claim)
    Index("ix_reports_account_status", "account_id", "status"),  # the per-account job limit (jobs.create)
)

report_file_chunks = Table(
    "report_file_chunks",
    metadata,
    Column("report_id", BigInteger, ForeignKey("reports.id", ondelete="CASCADE"), primary_key=True, autoincrement=False),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("data", LargeBinary, nullable=False),
)

# Tables that hold tracked state (everything but the quarantine).
STATE_TABLES = (courses, course_sections, course_progress, users, course_progress_history)

# Views created by migrations 0002 and 0008 for BI dashboards (see docs/bi.md).
BI_VIEWS = ("course_completion", "account_completion", "progress_distribution", "data_freshness",
            "course_progress_daily", "stalled_students")

# The course_progress_daily view as a selectable (created by migration 0008).
course_progress_daily = Table(
    "course_progress_daily",
    MetaData(),
    Column("course_id", BigInteger),
    Column("day", Date),
    Column("students", BigInteger),
    Column("completed", BigInteger),
    Column("mean_share_done", Float),
)

# The stalled_students view as a selectable (created by migration 0008).
stalled_students = Table(
    "stalled_students",
    MetaData(),
    Column("course_id", BigInteger),
    Column("course_name", Text),
    Column("account_id", BigInteger),
    Column("course_sis_source_id", Text),
    Column("course_workflow_state", Text),
    Column("user_id", BigInteger),
    Column("user_name", Text),
    Column("requirement_count", Integer),
    Column("requirement_completed_count", Integer),
    Column("last_activity", UTCDateTime),
    Column("days_inactive", Integer),
    Column("stalled_after_days", Integer),
)

# The course_completion view as a selectable (its own MetaData: migrations create it, not create_all).
course_completion = Table(
    "course_completion",
    MetaData(),
    Column("course_id", BigInteger),
    Column("course_name", Text),
    Column("account_id", BigInteger),
    Column("sis_source_id", Text),
    Column("workflow_state", Text),
    Column("students", BigInteger),
    Column("completed", BigInteger),
    Column("completion_rate", Float),
    Column("mean_share_done", Float),
    Column("last_activity", UTCDateTime),
)
