"""The vocabulary every layer shares: an input, what became of it, the counts, the database's failure.

This module is the bottom layer: it imports nothing from the rest of the
package but the credential rule (`consumer.events.redact`, itself a leaf), so
sources, the pure event code, the store, the pipeline, the worker, the
metrics and the console can all use it without depending on one another.

- `Input`: one raw input exactly as received, and where it came from.
- `Tracked`, `Ignored`, `Rejected` (`Outcome`): what parsing made of it.
- `Counts`: how many inputs ended in each outcome, in total and by event type.
- `DatabaseUnavailable`: the database, not an input, is at fault; nothing was committed.
- `ConfigurationError`: a setting, flag or environment that cannot work (exit status 2).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from datetime import datetime

from consumer.events.redact import redact_text


@dataclass(slots=True)
class Input:
    """One raw input exactly as received, and where it came from."""

    source: str  # "path:line" for files, the MessageId for SQS
    payload: bytes
    receive_count: int | None = None  # SQS ApproximateReceiveCount
    event_name: str | None = None  # SQS message attribute, when the sender set it


@dataclass(slots=True)
class Tracked:
    """An event of a tracked kind: the rows it gives, to merge."""

    event_name: str
    event_time: datetime
    rows: tuple[tuple, ...]  # row NamedTuples declared by the event's kind module


@dataclass(slots=True)
class Ignored:
    """A valid event of a kind this tracker does not store."""

    event_name: str


@dataclass(slots=True)
class Rejected:
    """An input that cannot be applied, and why (it goes to the quarantine)."""

    reason: str
    event_name: str | None = None

    def __post_init__(self) -> None:
        # A reason quotes what was sent, and goes to logs and the quarantine: never a credential.
        self.reason = redact_text(self.reason)


Outcome = Tracked | Ignored | Rejected

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


class ConfigurationError(ValueError):
    """A setting, flag or environment that cannot work: reported in one line, exit status 2."""


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached or cannot take these writes; nothing was committed."""
