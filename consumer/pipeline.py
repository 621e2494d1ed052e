"""Parse a batch of inputs and commit it: the path replay and the worker share.

A batch is one transaction. If writing it fails for a reason that may be
tied to one input (the database refuses the data: SQLSTATE classes 22 and
23; or one input's values cannot even be encoded for the database), the
batch is split in halves until the offending input is alone; that input is
stored in `rejected_events` with the reason, and every other input is
committed. Only a failure the database raises for any other reason (no
connection, a missing table or privilege, a full disk) is the database's,
not the events': nothing is committed and DatabaseUnavailable is raised.

What a batch writes is decided here, and the store only writes it
(`store/batch.py`): the newest row per key of the tracked events
(`rows_to_write`), one quarantine row per rejected input (`rejections`).
What counts as applied is defined here too (`tally`): a tracked event is
applied when it changed the row of its primary kind, and stale or a
duplicate otherwise.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DataError, DBAPIError, DisconnectionError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from consumer.core import Counts, DatabaseUnavailable, Ignored, Input, Outcome, Rejected, Tracked
from consumer.events.merge import newest_per_key
from consumer.events.parse import parse_event
from consumer.events.progress import HistoryRow
from consumer.events.registry import PRIMARY_KINDS, family
from consumer.store.batch import write_batch
from consumer.store.quarantine_rows import Rejection
from consumer.store.staging import write_transaction
from consumer.text import one_line

log = logging.getLogger(__name__)
_ROLLBACK_RETRIES = 5


class Pipeline:
    """Turns batches of raw inputs into committed rows.

    `store_user_names` (STORE_USER_NAMES): when false, students are stored by
    id only, their names and emails never reach the tables (see `parse`).
    `history` (HISTORY): when false, progress events update the current
    tables only; `course_progress_history` and the daily figures are not written.
    Every writer of events (replay, the SQS worker, an HTTPS receiver) goes
    through a Pipeline, so the setting holds for all of them.
    """

    def __init__(self, engine: Engine, store_user_names: bool = True, history: bool = True) -> None:
        self.engine = engine
        self.store_user_names = store_user_names
        self.history = history

    def process(self, inputs: Sequence[Input]) -> Counts:
        """Parse and commit `inputs`; raises DatabaseUnavailable if nothing could be committed."""
        return self.commit(self.parse(inputs))

    def parse(self, inputs: Sequence[Input]) -> list[tuple[Input, Outcome]]:
        """The pure half of `process` (no I/O), so a caller can overlap it with `commit`.

        Never raises: parsing is total (`parse_event`).
        """
        user_names = self.store_user_names
        return [(item, parse_event(item.payload, item.event_name, user_names)) for item in inputs]

    def commit(self, items: Sequence[tuple[Input, Outcome]]) -> Counts:
        """Write parsed inputs in one transaction, isolating any input the write fails on."""
        try:
            changed = self._write(items)
        except Exception as error:
            reason = input_fault(self.engine, error)
            if reason is None:
                if isinstance(error, DatabaseUnavailable):
                    raise
                raise DatabaseUnavailable(one_line(str(raised_by_database(self.engine, error)))) from error
            return self._isolate(items, reason, error)
        counts = tally(items, changed)
        for item, outcome in items:
            if isinstance(outcome, Rejected):
                log.warning(
                    "rejected %s: %s", item.source, outcome.reason, extra={"source": item.source, "reason": outcome.reason}
                )
        return counts

    def _isolate(self, items: Sequence[tuple[Input, Outcome]], reason: str, error: Exception) -> Counts:
        """Split a failed batch until the input at fault is alone, quarantine it, commit the rest."""
        if len(items) == 1:
            item, outcome = items[0]
            if isinstance(outcome, Rejected):  # even the quarantine row could not be stored
                raise DatabaseUnavailable(f"cannot store a rejected input: {reason}") from error
            if raised_by_database(self.engine, error) is None:
                log.error("input %s could not be written", item.source, exc_info=error)
            return self.commit([(item, Rejected(reason, getattr(outcome, "event_name", None)))])
        middle = len(items) // 2
        counts = self.commit(items[:middle])
        counts.add(self.commit(items[middle:]))
        return counts

    def _write(self, items: Sequence[tuple[Input, Outcome]]) -> dict[type, int]:
        for attempt in range(1, _ROLLBACK_RETRIES + 1):
            try:
                with write_transaction(self.engine) as connection:
                    return write_items(connection, items, self.history)
            except Exception as error:
                # Deadlock or serialization failure (SQLSTATE class 40) between
                # concurrent workers: the transaction was rolled back, try again.
                if not _sqlstate(error).startswith("40") or attempt == _ROLLBACK_RETRIES:
                    raise
                log.info("transaction rolled back by the database, retrying", extra={"attempt": attempt})
        raise AssertionError("unreachable")


def rows_to_write(items: Sequence[tuple[Input, Outcome]], history: bool = True) -> dict[type, list[tuple]]:
    """The rows the tracked events among `items` give: the newest per key, grouped by kind (`events/merge.py`).

    Without `history`, no `course_progress_history` rows.
    """
    rows = newest_per_key(row for _, outcome in items if isinstance(outcome, Tracked) for row in outcome.rows)
    if not history:
        rows.pop(HistoryRow, None)
    return rows


def rejections(items: Sequence[tuple[Input, Outcome]]) -> list[Rejection]:
    """One quarantine row per rejected input among `items`, in their order."""
    return [
        Rejection(item.source, item.payload, outcome.reason, outcome.event_name, item.receive_count)
        for item, outcome in items
        if isinstance(outcome, Rejected)
    ]


def write_items(connection: Connection, items: Sequence[tuple[Input, Outcome]], history: bool = True) -> dict[type, int]:
    """Write parsed inputs in the caller's transaction; returns how many rows each kind changed."""
    return write_batch(connection, rows_to_write(items, history), rejections(items))


def raised_by_database(engine: Engine, error: Exception) -> BaseException | None:
    """The driver's exception behind `error`, or None when neither the driver nor the database raised it.

    Most arrive wrapped by SQLAlchemy (DBAPIError); the Postgres COPY path
    talks to psycopg directly, so its errors arrive unwrapped.
    """
    if isinstance(error, DBAPIError):
        return error.orig if error.orig is not None else error
    dbapi = engine.dialect.dbapi
    if dbapi is not None and isinstance(error, dbapi.Error):
        return error
    return None


def input_fault(engine: Engine, error: Exception) -> str | None:
    """Why a failed write is one input's fault (the reason to quarantine it with), or None when it is the database's.

    An input's fault: the database refused the data (SQLSTATE classes 22 and
    23), or our code could not encode a value before the database saw it.
    Anything else (no connection, a missing table or privilege) is the database's.
    """
    if isinstance(error, DatabaseUnavailable | PoolTimeout | DisconnectionError):
        return None  # the pool had no connection to give, or lost it: nothing about the input
    database_error = raised_by_database(engine, error)
    if database_error is None:
        return f"this event could not be written ({type(error).__name__}: {one_line(str(error))})"
    if isinstance(error, DBAPIError):
        refused = not error.connection_invalidated and isinstance(error, (DataError, IntegrityError))
    else:
        refused = isinstance(database_error, (engine.dialect.dbapi.DataError, engine.dialect.dbapi.IntegrityError))
    return f"the database refused this event: {one_line(str(database_error))}" if refused else None


def _sqlstate(error: Exception) -> str:
    return getattr(getattr(error, "orig", None) or error, "sqlstate", None) or ""


def tally(items: Sequence[tuple[Input, Outcome]], changed: Mapping[type, int]) -> Counts:
    """What became of `items`, once written: `changed` is how many rows each kind changed (`write_items`).

    Applied is defined here, and only here: of a family's tracked events, as
    many are applied as rows of its primary kind changed; the others were
    older than or equal to what was stored (stale or duplicate). Row kinds
    that are side facts (a course mentioned by a progress event) count nothing.
    """
    by_type: Counter[tuple[str, str]] = Counter()
    tracked: Counter[str] = Counter()
    for _, outcome in items:
        if isinstance(outcome, Tracked):
            tracked[family(outcome.event_name)] += 1
        elif isinstance(outcome, Ignored):
            by_type[(event_label(outcome.event_name), "ignored")] += 1
        else:
            by_type[(outcome.event_name or "unknown", "rejected")] += 1
    for kind, count in changed.items():
        name = PRIMARY_KINDS.get(kind)
        if name is not None:
            by_type[(name, "applied")] += count
            by_type[(name, "stale_or_duplicate")] += tracked[name] - count
    counts = Counts(read=len(items), by_type=by_type)
    for (_, outcome), value in by_type.items():
        setattr(counts, outcome, getattr(counts, outcome) + value)
    return counts


_LABEL_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.")
MAX_EVENT_LABELS = 200  # Canvas has about 150 Live Events types; names past this many distinct ones are "other"
_labels_seen: set[str] = set()


def event_label(event_name: str) -> str:
    """An untracked event name as a metrics label: Canvas's names as they are, anything else "other".

    Names come from the sender: a hostile one must not create unbounded
    label values or carry control characters into /metrics and logs. So a
    name is its own label only if it looks like Canvas's (lower case, digits,
    `_` and `.`, at most 64 characters) and is among the first
    MAX_EVENT_LABELS distinct names this process saw; every other is "other"
    (a sender making up names gets one series, not one per name).
    """
    if not (0 < len(event_name) <= 64 and _LABEL_CHARACTERS.issuperset(event_name)):
        return "other"
    if event_name not in _labels_seen:
        if len(_labels_seen) >= MAX_EVENT_LABELS:
            return "other"
        _labels_seen.add(event_name)
    return event_name

