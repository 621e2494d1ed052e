"""Write one batch of parsed inputs in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, insert, text

from consumer.events.merge import newest_per_key
from consumer.events.parse import Outcome, Rejected, Tracked
from consumer.events.rows import CourseRow, ProgressRow, SectionRow
from consumer.sources import Input
from consumer.store.tables import rejected_events
from consumer.store.upsert import upsert_rows

# The row that stands for the event itself; the others are side facts
# (the student, what a progress event says about its course).
PRIMARY_KINDS = (CourseRow, SectionRow, ProgressRow)

# Batches from concurrent workers take turns on Postgres. Every progress
# event touches its course's row, so concurrent writers would queue on those
# hot rows anyway; and the courses table is written by two statements per
# batch, whose row locks in two passes let concurrent batches deadlock.
# Parsing and SQS traffic stay parallel; only the short commit is serialised.
_WRITE_LOCK_KEY = 7_340_215_906_114


def write_batch(connection: Connection, items: Sequence[tuple[Input, Outcome]]) -> dict[type, int]:
    """Store rejections and merge tracked rows; returns, per primary row kind, how many events changed a row."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _WRITE_LOCK_KEY})
    rejected = [
        {
            "source": item.source,
            "reason": outcome.reason,
            "payload": item.payload,
            "event_name": outcome.event_name,
            "receive_count": item.receive_count,
        }
        for item, outcome in items
        if isinstance(outcome, Rejected)
    ]
    if rejected:
        connection.execute(insert(rejected_events), rejected)
    rows = (row for _, outcome in items if isinstance(outcome, Tracked) for row in outcome.rows)
    applied: dict[type, int] = {}
    for kind, kind_rows in newest_per_key(rows).items():
        changed = upsert_rows(connection, kind, kind_rows)
        if kind in PRIMARY_KINDS:
            applied[kind] = changed
    return applied
