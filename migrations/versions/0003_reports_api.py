"""Reports API: API tokens and the accounts they may see, report jobs, report files.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", AUTO_ID, primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.Text, nullable=False, unique=True,
                  comment="SHA-256 hex of the token; the token itself is never stored"),
        sa.Column("name", sa.Text),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("revoked_at", TIME),
    )
    op.create_table(
        "api_token_accounts",
        sa.Column("token_id", sa.BigInteger, sa.ForeignKey("api_tokens.id", ondelete="CASCADE"), primary_key=True,
                  autoincrement=False),
        sa.Column("account_id", sa.BigInteger, primary_key=True, autoincrement=False),
    )
    op.create_table(
        "reports",
        sa.Column("id", AUTO_ID, primary_key=True, autoincrement=True),
        sa.Column("report", sa.Text, nullable=False, comment="report type, e.g. course_progress_csv"),
        sa.Column("account_id", sa.BigInteger, nullable=False, comment="the account the report belongs to"),
        sa.Column("course_id", sa.BigInteger, comment="set for course reports, NULL for account reports"),
        sa.Column("token_id", sa.BigInteger, nullable=False, comment="the API token that started it (the Progress user_id)"),
        sa.Column("parameters", JSON, nullable=False),
        sa.Column("status", sa.Text, nullable=False, comment="created, running, complete, error, aborted or deleted"),
        sa.Column("message", sa.Text),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("started_at", TIME),
        sa.Column("ended_at", TIME),
        sa.Column("heartbeat_at", TIME, comment="refreshed while running; a stale one means its server died"),
        sa.Column("current_line", sa.Integer, nullable=False),
        sa.Column("progress", sa.Integer, nullable=False),
        sa.Column("file_name", sa.Text),
        sa.Column("file_size", sa.BigInteger),
    )
    op.create_index("ix_reports_account_report", "reports", ["account_id", "report"])
    op.create_index("ix_reports_course_report", "reports", ["course_id", "report"])
    op.create_index("ix_reports_status", "reports", ["status"])
    op.create_table(
        "report_file_chunks",
        sa.Column("report_id", sa.BigInteger, sa.ForeignKey("reports.id", ondelete="CASCADE"), primary_key=True,
                  autoincrement=False),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("report_file_chunks")
    op.drop_table("reports")
    op.drop_table("api_token_accounts")
    op.drop_table("api_tokens")
