"""Rank columns: two events for one row with the same event_time are ordered by content, not by arrival.

Before, the first event to arrive won a tie, so the tables depended on
arrival order in exactly that case. Each event now carries a rank that
depends only on the event (completion events first, then a digest of its
normalised values; see consumer/events/kind.py), stored beside the event
time it orders. Rows written before this revision have no rank (NULL) and
lose every tie, once, to an event with the same time.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SAME_TIME = "orders events with the same event_time"
RANK_COLUMNS = (
    ("courses", "course_event_rank", "orders course events with the same event_time (see How events become rows)"),
    ("courses", "progress_event_rank", "orders progress-type events with the same event_time"),
    ("course_sections", "last_event_rank", SAME_TIME),
    ("course_progress", "last_event_rank", SAME_TIME),
    ("users", "last_event_rank", SAME_TIME),
)


def upgrade() -> None:
    for table, column, comment in RANK_COLUMNS:
        op.add_column(table, sa.Column(column, sa.BigInteger(), nullable=True, comment=comment))


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite 3.35+): a batch copy of the table would break the views over it.
    for table, column, _ in reversed(RANK_COLUMNS):
        op.drop_column(table, column)
