"""What becomes of one input: rows to merge, ignored, or rejected with a reason."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from consumer.events.redact import redact_text


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

    def __post_init__(self) -> None:
        # A reason quotes what was sent, and goes to logs and the quarantine: never a credential.
        self.reason = redact_text(self.reason)


Outcome = Tracked | Ignored | Rejected
