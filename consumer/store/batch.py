"""Write one batch in the caller's transaction: the rows and the quarantine rows it is given.

What to write is the pipeline's decision (`consumer/pipeline.py`: the newest
row per key, one `Rejection` per rejected input, and what counts as applied);
this module only writes it, and says how many rows each kind changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import Connection, text

from consumer.events.progress import HistoryRow
from consumer.store.daily import merge_staged_history, write_history
from consumer.store.quarantine_rows import Rejection, store_rejections
from consumer.store.upsert import merge_staged, stage_rows, upsert_rows

# Batches from concurrent workers take turns on Postgres. Every progress
# event touches its course's row, so concurrent writers would queue on those
# hot rows anyway; and the courses table is written by two statements per
# batch, whose row locks in two passes let concurrent batches deadlock.
# Parsing and SQS traffic stay parallel; only the short commit is serialised.
_WRITE_LOCK_KEY = 7_340_215_906_114
# Waiting for that turn is by design, however long the other writer's commit takes: a `lock_timeout` set on the
# database or role (to stop DDL queueing, say) must not cancel it, so it is lifted for the wait only and then
# back to what the session had (DEFAULT: the role's, the database's or the server's). One round trip.
_TAKE_TURN = text(f"SET LOCAL lock_timeout = 0; SELECT pg_advisory_xact_lock({_WRITE_LOCK_KEY}); SET LOCAL lock_timeout = DEFAULT")


def write_batch(connection: Connection, rows_by_kind: Mapping[type, Sequence[tuple]],
                rejections: Sequence[Rejection] = ()) -> dict[type, int]:
    """Store `rejections` in the quarantine and merge `rows_by_kind`; returns, per row kind given, how many rows changed.

    At most one row per key and kind: Postgres refuses an upsert that
    touches one row twice (`events.merge.newest_per_key` gives that).
    Kinds are written in the order given.
    """
    if connection.dialect.name != "postgresql":
        store_rejections(connection, rejections)  # one quarantine row per distinct payload
        return {kind: _write_kind(connection, kind, rows) for kind, rows in rows_by_kind.items()}
    # The staging tables are this session's own: filling them (binary COPY, formatted in Python) needs no lock,
    # so one writer's COPY overlaps another's merge (replay's worker processes, several workers).
    staged = [kind for kind, rows in rows_by_kind.items() if rows]
    for kind in staged:
        stage_rows(connection, kind, rows_by_kind[kind])
    connection.execute(_TAKE_TURN)
    store_rejections(connection, rejections)
    changed = dict.fromkeys(rows_by_kind, 0)
    for kind in staged:  # the daily figures follow the history in the same transaction
        changed[kind] = merge_staged_history(connection) if kind is HistoryRow else merge_staged(connection, kind)
    return changed


def _write_kind(connection: Connection, kind: type, rows: Sequence[tuple]) -> int:
    if kind is HistoryRow:  # the daily figures follow the history in the same transaction
        return write_history(connection, rows)
    return upsert_rows(connection, kind, rows)
