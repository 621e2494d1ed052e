"""Where raw inputs come from (files, SQS); each yields `Input`s."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Input:
    """One raw input exactly as received, and where it came from."""

    source: str  # "path:line" for files, the MessageId for SQS
    payload: bytes
    receive_count: int | None = None  # SQS ApproximateReceiveCount
    event_name: str | None = None  # SQS message attribute, when the sender set it
