"""The quarantine (`rejected_events`): list, show, retry and purge rejected inputs.

It holds one row per distinct payload (`store/quarantine_rows.py` writes
it): a payload delivered again adds to `times_seen` and moves
`last_seen_at` on, so each figure here counts distinct inputs.

A retry parses each stored payload with the code as it is now. Inputs that
now apply (or are now recognised as untracked) are written and removed
from the quarantine in the same transaction; the others stay, with their
reason brought up to date.

A purge deletes rows last seen before a time: the payloads may hold personal
data (names, emails), so they are kept only for REJECTED_RETENTION_DAYS
(`purge --expired`, run from cron or a CronJob).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import Connection, Engine, bindparam, delete, func, select, update

from consumer.core import Input, Rejected
from consumer.events.parse import parse_event
from consumer.pipeline import input_fault, write_items
from consumer.store.staging import write_transaction
from consumer.store.tables import rejected_events

_COLUMNS = (
    rejected_events.c.id,
    rejected_events.c.received_at,
    rejected_events.c.last_seen_at,
    rejected_events.c.times_seen,
    rejected_events.c.source,
    rejected_events.c.event_name,
    rejected_events.c.reason,
)


def list_rejected(connection: Connection, limit: int = 50, offset: int = 0) -> list[dict]:
    """Distinct rejected inputs, the most recently seen first."""
    query = select(*_COLUMNS).order_by(rejected_events.c.last_seen_at.desc(), rejected_events.c.id.desc()).limit(limit).offset(offset)
    return [dict(row._mapping) for row in connection.execute(query)]


def count_rejected(connection: Connection) -> int:
    """Distinct rejected inputs (rows), however often each was delivered."""
    return connection.execute(select(func.count()).select_from(rejected_events)).scalar_one()


def count_deliveries(connection: Connection) -> int:
    """Deliveries of rejected inputs: the sum of times_seen."""
    return connection.execute(select(func.coalesce(func.sum(rejected_events.c.times_seen), 0))).scalar_one()


def retention_cutoff(retention_days: int, now: datetime | None = None) -> datetime:
    """The instant before which a row's last delivery makes it expired."""
    return (now or datetime.now(timezone.utc)) - timedelta(days=retention_days)


def count_last_seen_before(connection: Connection, before: datetime) -> int:
    query = select(func.count()).select_from(rejected_events).where(rejected_events.c.last_seen_at < before)
    return connection.execute(query).scalar_one()


def purge(engine: Engine, before: datetime | None, dry_run: bool = False) -> int:
    """Delete the rows last seen before `before` (every row when None); returns how many (would be) deleted."""
    with engine.begin() as connection:
        if dry_run:
            return count_rejected(connection) if before is None else count_last_seen_before(connection, before)
        statement = delete(rejected_events)
        if before is not None:
            statement = statement.where(rejected_events.c.last_seen_at < before)
        return connection.execute(statement).rowcount


def get_rejected(connection: Connection, rejected_id: int) -> dict | None:
    row = connection.execute(select(rejected_events).where(rejected_events.c.id == rejected_id)).first()
    return dict(row._mapping) if row else None


@dataclass
class RetryResult:
    retried: int = 0
    applied: int = 0  # written (or recognised as untracked) and removed from the quarantine
    still_rejected: int = 0
    missing: int = 0  # ids asked for that are not in the quarantine


def retry(engine: Engine, ids: Sequence[int] | None, chunk: int = 500, store_user_names: bool = True,
          history: bool = True) -> RetryResult:
    """Re-apply quarantined inputs by id (all of them when `ids` is None); `store_user_names` and `history` as for the Pipeline."""
    result = RetryResult()
    with engine.connect() as connection:
        query = select(rejected_events.c.id).order_by(rejected_events.c.id)
        if ids is not None:
            query = query.where(rejected_events.c.id.in_(list(ids)))
        found = [row.id for row in connection.execute(query)]
    if ids is not None:
        result.missing = len(set(ids) - set(found))
    for start in range(0, len(found), chunk):
        _retry_chunk(engine, found[start : start + chunk], result, store_user_names, history)
    return result


def _retry_chunk(engine: Engine, ids: list[int], result: RetryResult, store_user_names: bool, history: bool) -> None:
    with engine.connect() as connection:
        rows = connection.execute(select(rejected_events).where(rejected_events.c.id.in_(ids)).order_by(rejected_events.c.id)).all()
    parsed = [(row, parse_event(row.payload, user_names=store_user_names)) for row in rows]
    result.retried += len(parsed)
    fixed = [(row, outcome) for row, outcome in parsed if not isinstance(outcome, Rejected)]
    still = [(row, outcome) for row, outcome in parsed if isinstance(outcome, Rejected)]
    try:
        _apply(engine, fixed, history)
    except Exception as error:
        if input_fault(engine, error) is None:  # the database's fault: stop, as the pipeline does
            raise
        # One of them is refused by the database (or cannot be encoded for it): take them one at a time.
        for pair in list(fixed):
            try:
                _apply(engine, [pair], history)
            except Exception as single:
                reason = input_fault(engine, single)
                if reason is None:
                    raise
                still.append((pair[0], Rejected(reason)))
                fixed.remove(pair)
    result.applied += len(fixed)
    result.still_rejected += len(still)
    if still:
        with engine.begin() as connection:
            statement = update(rejected_events).where(rejected_events.c.id == bindparam("row_id")).values(reason=bindparam("new_reason"))
            connection.execute(statement, [{"row_id": row.id, "new_reason": outcome.reason} for row, outcome in still])


def _apply(engine: Engine, pairs: list, history: bool) -> None:
    if not pairs:
        return
    with write_transaction(engine) as connection:
        items = [(Input(row.source, row.payload, row.receive_count), outcome) for row, outcome in pairs]
        write_items(connection, items, history)
        connection.execute(delete(rejected_events).where(rejected_events.c.id.in_([row.id for row, _ in pairs])))
