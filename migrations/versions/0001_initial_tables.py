"""Initial tables: courses, course_sections, course_progress, users, rejected_events.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "courses",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False, comment="local Canvas course id"),
        sa.Column("global_id", sa.BigInteger, comment="global id, as carried by course_created/updated"),
        sa.Column("account_id", sa.BigInteger),
        sa.Column("name", sa.Text),
        sa.Column("uuid", sa.Text),
        sa.Column("sis_source_id", sa.Text),
        sa.Column("workflow_state", sa.Text),
        sa.Column("created_at", TIME),
        sa.Column("updated_at", TIME),
        sa.Column("course_event_time", TIME, comment="event_time of the newest course_created/updated applied"),
        sa.Column("progress_event_time", TIME, comment="event_time of the newest progress-type event applied"),
    )
    op.create_table(
        "course_sections",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False, comment="local Canvas section id"),
        sa.Column("course_id", sa.BigInteger, nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("sis_source_id", sa.Text),
        sa.Column("sis_batch_id", sa.BigInteger),
        sa.Column("integration_id", sa.Text),
        sa.Column("enrollment_term_id", sa.BigInteger),
        sa.Column("nonxlist_course_id", sa.BigInteger),
        sa.Column("root_account_id", sa.BigInteger),
        sa.Column("default_section", sa.Boolean),
        sa.Column("accepting_enrollments", sa.Boolean),
        sa.Column("restrict_enrollments_to_section_dates", sa.Boolean),
        sa.Column("start_at", TIME),
        sa.Column("end_at", TIME),
        sa.Column("workflow_state", sa.Text),
        sa.Column("stuck_sis_fields", JSON),
        sa.Column("last_event_name", sa.Text, nullable=False),
        sa.Column("last_event_time", TIME, nullable=False),
    )
    op.create_index("ix_course_sections_course_id", "course_sections", ["course_id"])
    op.create_table(
        "course_progress",
        sa.Column("course_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("requirement_count", sa.Integer),
        sa.Column("requirement_completed_count", sa.Integer),
        sa.Column("next_requirement_url", sa.Text),
        sa.Column("completed_at", TIME),
        sa.Column("is_completed", sa.Boolean, nullable=False),
        sa.Column("progress_error", sa.Text),
        sa.Column("last_event_name", sa.Text, nullable=False),
        sa.Column("last_event_time", TIME, nullable=False),
    )
    op.create_index("ix_course_progress_user_id", "course_progress", ["user_id"])
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False, comment="local Canvas user id"),
        sa.Column("name", sa.Text),
        sa.Column("email", sa.Text),
        sa.Column("last_event_time", TIME, nullable=False),
    )
    op.create_table(
        "rejected_events",
        sa.Column("id", AUTO_ID, primary_key=True, autoincrement=True),
        sa.Column("received_at", TIME, nullable=False, server_default=sa.func.current_timestamp()),
        sa.Column("source", sa.Text, nullable=False, comment="SQS message id, or file:line"),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False, comment="the raw input, byte for byte"),
        sa.Column("event_name", sa.Text),
        sa.Column("receive_count", sa.Integer, comment="SQS ApproximateReceiveCount, when from SQS"),
    )
    op.create_index("ix_rejected_events_received_at", "rejected_events", ["received_at"])


def downgrade() -> None:
    for table in ("rejected_events", "users", "course_progress", "course_sections", "courses"):
        op.drop_table(table)
