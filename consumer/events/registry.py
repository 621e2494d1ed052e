"""Every tracked event kind, and what is derived from their declarations.

Adding a kind means writing its module (see `kind.py`) and listing it here;
dispatch, families, row types and target tables all follow from `KINDS`.
"""

from __future__ import annotations

from operator import itemgetter

from consumer.events import course, progress, section
from consumer.events.kind import EventKind

KINDS: tuple[EventKind, ...] = (course.KIND, section.KIND, progress.KIND)

KIND_BY_EVENT: dict[str, EventKind] = {name: kind for kind in KINDS for name in kind.event_names}
TRACKED_EVENTS: frozenset[str] = frozenset(KIND_BY_EVENT)

# Every row type, in the order a batch writes them (any order gives the same tables).
ROW_KINDS: tuple[type, ...] = tuple(row_type for kind in KINDS for row_type in kind.row_types)
# The row that stands for the event itself, per kind; the others are side facts.
PRIMARY_KINDS: dict[type, str] = {kind.primary: kind.family for kind in KINDS}


def family(event_name: str) -> str:
    """course, section or progress: the family of a tracked event name."""
    return KIND_BY_EVENT[event_name].family


def key_of(row_type: type) -> itemgetter:
    """A getter of a row's merge key from its declared KEY columns (a scalar for a one-column key)."""
    return itemgetter(*(row_type._fields.index(name) for name in row_type.KEY))


def order_of(row_type: type) -> itemgetter:
    """A getter of (event time, rank): the newest row, ties by rank, wins."""
    return itemgetter(row_type._fields.index(row_type.TIME), row_type._fields.index(row_type.RANK))
