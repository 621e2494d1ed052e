"""Parse a batch of inputs and commit it: the path replay and the worker share.

A batch is one transaction. If the database refuses it for a reason tied
to the data (a data exception or an integrity violation: SQLSTATE classes
22 and 23), the batch is split in halves until the offending input is
alone; that input is stored in `rejected_events` with the database's
message, and every other input is committed. Any other failure (no
connection, a missing table, a full disk) is the database's, not the
events': nothing is committed and DatabaseUnavailable is raised.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

from sqlalchemy import Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from consumer.events.models import PROGRESS_EVENTS, SECTION_EVENTS
from consumer.events.parse import Ignored, Outcome, Rejected, Tracked, parse_event
from consumer.events.rows import CourseRow, ProgressRow, SectionRow
from consumer.sources import Input
from consumer.store.batch import write_batch

log = logging.getLogger(__name__)
_ROLLBACK_RETRIES = 5


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached or cannot take these writes; nothing was committed."""


OUTCOMES = ("applied", "stale_or_duplicate", "ignored", "rejected")


@dataclass
class Counts:
    """What became of the inputs: every input lands in exactly one of the four outcomes.

    `by_type` splits the same counts by (event type, outcome): the event
    family (course, section, progress) for tracked events, the event name
    for ignored ones, and the name or "unknown" for rejected ones.
    """

    read: int = 0
    applied: int = 0
    stale_or_duplicate: int = 0
    ignored: int = 0
    rejected: int = 0
    by_type: Counter[tuple[str, str]] = field(default_factory=Counter, repr=False, compare=False)

    def add(self, other: Counts) -> None:
        for name in ("read", *OUTCOMES):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.by_type.update(other.by_type)

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "by_type"}


class Pipeline:
    """Turns batches of raw inputs into committed rows."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def process(self, inputs: Sequence[Input]) -> Counts:
        """Parse and commit `inputs`; raises DatabaseUnavailable if nothing could be committed."""
        return self.commit(self.parse(inputs))

    @staticmethod
    def parse(inputs: Sequence[Input]) -> list[tuple[Input, Outcome]]:
        """The pure half of `process` (no I/O), so a caller can overlap it with `commit`."""
        return [(item, parse_event(item.payload, item.event_name)) for item in inputs]

    def commit(self, items: Sequence[tuple[Input, Outcome]]) -> Counts:
        try:
            applied = self._write(items)
        except DBAPIError as error:
            if not _is_the_datas_fault(error):
                raise DatabaseUnavailable(_first_line(error)) from error
            if len(items) == 1:
                item, outcome = items[0]
                if isinstance(outcome, Rejected):  # even the quarantine row was refused
                    raise DatabaseUnavailable(f"cannot store a rejected input: {_first_line(error)}") from error
                event_name = getattr(outcome, "event_name", None)
                reason = f"the database refused this event: {_first_line(error)}"
                return self.commit([(item, Rejected(reason, event_name))])
            middle = len(items) // 2
            counts = self.commit(items[:middle])
            counts.add(self.commit(items[middle:]))
            return counts
        counts = _count(items, applied)
        for item, outcome in items:
            if isinstance(outcome, Rejected):
                log.warning(
                    "rejected %s: %s", item.source, outcome.reason, extra={"source": item.source, "reason": outcome.reason}
                )
        return counts

    def _write(self, items: Sequence[tuple[Input, Outcome]]) -> int:
        for attempt in range(1, _ROLLBACK_RETRIES + 1):
            try:
                with self.engine.begin() as connection:
                    return write_batch(connection, items)
            except DBAPIError as error:
                # Deadlock or serialization failure (SQLSTATE class 40) between
                # concurrent workers: the transaction was rolled back, try again.
                if not _sqlstate(error).startswith("40") or attempt == _ROLLBACK_RETRIES:
                    raise
                log.info("transaction rolled back by the database, retrying", extra={"attempt": attempt})
        raise AssertionError("unreachable")


def _sqlstate(error: DBAPIError) -> str:
    return getattr(error.orig, "sqlstate", None) or ""


def _count(items: Sequence[tuple[Input, Outcome]], applied: dict[type, int]) -> Counts:
    by_type: Counter[tuple[str, str]] = Counter()
    tracked: Counter[str] = Counter()
    for _, outcome in items:
        if isinstance(outcome, Tracked):
            tracked[family(outcome.event_name)] += 1
        elif isinstance(outcome, Ignored):
            by_type[(outcome.event_name, "ignored")] += 1
        else:
            by_type[(outcome.event_name or "unknown", "rejected")] += 1
    for kind, changed in applied.items():
        name = _FAMILY_OF_KIND[kind]
        by_type[(name, "applied")] += changed
        by_type[(name, "stale_or_duplicate")] += tracked[name] - changed
    counts = Counts(read=len(items), by_type=by_type)
    for (_, outcome), value in by_type.items():
        setattr(counts, outcome, getattr(counts, outcome) + value)
    return counts


_FAMILY_OF_KIND = {CourseRow: "course", SectionRow: "section", ProgressRow: "progress"}


def family(event_name: str) -> str:
    """course, section or progress: the family of a tracked event name."""
    if event_name in PROGRESS_EVENTS:
        return "progress"
    if event_name in SECTION_EVENTS:
        return "section"
    return "course"


def _is_the_datas_fault(error: DBAPIError) -> bool:
    return not error.connection_invalidated and isinstance(error, (DataError, IntegrityError))


def _first_line(error: DBAPIError) -> str:
    return str(error.orig).strip().splitlines()[0] if error.orig else str(error).splitlines()[0]
