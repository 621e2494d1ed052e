"""Write one batch of parsed inputs in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, text

from consumer.core import Input, Outcome, Tracked
from consumer.events.merge import newest_per_key
from consumer.events.registry import PRIMARY_KINDS
from consumer.store.quarantine_rows import store_rejections
from consumer.store.upsert import upsert_rows

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
    store_rejections(connection, items)  # one quarantine row per distinct payload
    rows = (row for _, outcome in items if isinstance(outcome, Tracked) for row in outcome.rows)
    applied: dict[type, int] = {}
    for kind, kind_rows in newest_per_key(rows).items():
        changed = upsert_rows(connection, kind, kind_rows)
        if kind in PRIMARY_KINDS:
            applied[kind] = changed
    return applied
