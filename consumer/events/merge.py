"""Collapse a batch to the newest row per key, before it reaches the database.

Postgres refuses to change one row twice in a statement, and collapsing
first also saves work. Rows are ordered by (event time, rank), the same
order the upserts apply against stored rows, so the winner depends only on
the set of events (an equal time and rank is a duplicate: nothing changes).
"""

from __future__ import annotations

from collections.abc import Iterable

from consumer.events.registry import ROW_KINDS, key_of, order_of

_GETTERS = {kind: (key_of(kind), order_of(kind)) for kind in ROW_KINDS}


def newest_per_key(rows: Iterable[tuple]) -> dict[type, list[tuple]]:
    """Group rows by kind, keeping for each key only the row that orders last.

    Rows come out sorted by key, so concurrent writers lock rows in the same
    order and do not deadlock each other.
    """
    newest: dict[type, dict] = {kind: {} for kind in ROW_KINDS}
    for row in rows:
        kind = type(row)
        key_getter, order = _GETTERS[kind]
        by_key = newest[kind]
        key = key_getter(row)
        current = by_key.get(key)
        if current is None or order(row) > order(current):
            by_key[key] = row
    return {kind: [by_key[key] for key in sorted(by_key)] for kind, by_key in newest.items() if by_key}
