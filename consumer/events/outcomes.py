"""What becomes of one input: rows to merge, ignored, or rejected with a reason."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(slots=True)
class Tracked:
    event_name: str
    event_time: datetime
    rows: tuple[tuple, ...]  # row NamedTuples declared by the event's kind module


@dataclass(slots=True)
class Ignored:
    event_name: str


@dataclass(slots=True)
class Rejected:
    reason: str
    event_name: str | None = None


Outcome = Tracked | Ignored | Rejected
