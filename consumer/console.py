"""What the CLI shows a person: a live progress line and end-of-run summaries.

Table cells come from events and operators (course names, payloads, token
names): control and invisible characters in them are shown escaped
(\u001b), never sent to the terminal.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO

from consumer.core import Counts
from consumer.text import safe_text


class ProgressLine:
    """Rewrites one status line on a terminal at most a few times a second."""

    def __init__(self, stream: TextIO = sys.stderr, interval: float = 0.25) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self.interval = interval
        self.started = time.monotonic()
        self._last = 0.0

    def update(self, counts: Counts) -> None:
        rate = counts.read / max(time.monotonic() - self.started, 1e-9)
        self.update_text(
            f"{counts.read:,} read  {counts.applied:,} applied  {counts.stale_or_duplicate:,} stale/dup  "
            f"{counts.ignored:,} ignored  {counts.rejected:,} rejected  {rate:,.0f} events/s"
        )

    def update_text(self, text: str) -> None:
        now = time.monotonic()
        if not self.enabled or now - self._last < self.interval:
            return
        self._last = now
        self.stream.write("\r" + text)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._last:
            self.stream.write("\n")
            self.stream.flush()


def print_counts(counts: Counts, seconds: float, stream: TextIO | None = None, more: Sequence[tuple[str, int]] = ()) -> None:
    """The outcomes, then `more` rows (e.g. files that could not be read), then time and speed."""
    stream = stream or sys.stdout
    rate = counts.read / seconds if seconds > 0 else 0.0
    rows = [
        ("read", counts.read),
        ("applied", counts.applied),
        ("stale or duplicate", counts.stale_or_duplicate),
        ("ignored (untracked type)", counts.ignored),
        ("rejected (see rejected_events)", counts.rejected),
        *more,
    ]
    for label, value in rows:
        stream.write(f"{label:<32}{value:>12,}\n")
    stream.write(f"{'time':<32}{seconds:>11.2f}s\n{'speed':<32}{rate:>12,.0f} events/s\n")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]], stream: TextIO | None = None) -> None:
    """A plain aligned text table; numbers right-aligned."""
    stream = stream or sys.stdout  # the one at call time, not at import
    headers = [safe_text(header) for header in headers]
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], (int, float)) for row in rows) for i in range(len(headers))] if rows else []

    def line(values: Sequence[str]) -> str:
        parts = [
            value.rjust(width) if numeric and numeric[i] else value.ljust(width)
            for i, (value, width) in enumerate(zip(values, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    stream.write(line(headers) + "\n")
    stream.write("  ".join("-" * width for width in widths) + "\n")
    for row in cells:
        stream.write(line(row) + "\n")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.1%}"
    return safe_text(str(value))
