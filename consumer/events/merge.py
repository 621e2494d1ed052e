"""Collapse a batch to the newest row per key, before it reaches the database.

Postgres refuses to change one row twice in a statement, and collapsing
first also saves work. On equal event times the first row wins, exactly as
if the events had been applied one after another (an equal time is a
duplicate and changes nothing).
"""

from __future__ import annotations

from collections.abc import Iterable

from consumer.events.rows import ROW_KINDS, Row


def newest_per_key(rows: Iterable[Row]) -> dict[type, list[Row]]:
    """Group rows by kind, keeping for each key only the row with the newest event time.

    Rows come out sorted by key, so concurrent writers lock rows in the same
    order and do not deadlock each other.
    """
    newest: dict[type, dict[tuple[int, ...], Row]] = {kind: {} for kind in ROW_KINDS}
    for row in rows:
        by_key = newest[type(row)]
        current = by_key.get(row.key)
        if current is None or row.event_time > current.event_time:
            by_key[row.key] = row
    return {kind: [by_key[key] for key in sorted(by_key)] for kind, by_key in newest.items() if by_key}
