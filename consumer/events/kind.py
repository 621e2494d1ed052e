"""What an event kind declares, and what is derived from the declaration.

A kind module (`course.py`, `section.py`, `progress.py`) declares its event
names, its pydantic body model, its row types and one `rows` function
turning the body's values into rows. From the model this module derives the
plain-shape check: the same field checkers (`fields.py`) applied to a plain
dict without pydantic, about twice as fast, returning exactly the values
the model would hold. Both paths hand the same values to the same `rows`.

Values are tuples in the model's field order; a nested model's value is a
tuple of its own (or None when the object is absent or null).
"""

from __future__ import annotations

import hashlib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from pydantic import PlainValidator

from consumer.core import Tracked
from consumer.events.fields import INLINE, Body


class NotPlain(Exception):
    """The body is not in the plain shape: let the model decide, and give the reason."""


Check = Callable[[Any], Any]


def _without_none(annotation: Any) -> Any:
    """The annotation without its `| None`."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [member for member in typing.get_args(annotation) if member is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def _field_check(info: Any) -> Check:
    """The plain checker of one model field: its PlainValidator function, or a nested model's."""
    annotation = info.annotation
    inner = _without_none(annotation)
    if isinstance(inner, type) and issubclass(inner, Body):
        return plain_check(inner)
    for item in (*info.metadata, *getattr(inner, "__metadata__", ())):
        if isinstance(item, PlainValidator):
            return item.func
    raise TypeError(f"field type {annotation!r} has no plain checker: use a type from consumer/events/fields.py")


def plain_check(model: type[Body]) -> Check:
    """A function from a plain dict to the model's values tuple, raising NotPlain on anything else.

    Its source is generated from the model's fields, one expression per
    field, because this runs for every event and a loop over the fields
    costs about a third of parsing (the same technique as dataclasses).
    """
    namespace: dict[str, Any] = {"NotPlain": NotPlain, "_missing": _missing}
    elements = []
    for n, (name, info) in enumerate(model.model_fields.items()):
        checker = namespace[f"check_{n}"] = _field_check(info)
        absent = "_missing()" if info.is_required() else "None"
        value = f"({INLINE[checker]})".replace("check(", f"check_{n}(") if checker in INLINE else f"check_{n}(v)"
        elements.append(f"        {value} if (v := get({name!r})) is not None else {absent},")
    source = "\n".join([
        "def check(value):",
        "    if type(value) is not dict:",
        "        raise NotPlain",
        "    get = value.get",
        "    try:",
        "        return (",
        *elements,
        "        )",
        "    except ValueError:",
        "        raise NotPlain from None",
    ])
    exec(compile(source, f"<plain check of {model.__name__}>", "exec"), namespace)  # our own source
    return namespace["check"]


def _missing() -> None:
    raise NotPlain


def model_values(model: Body) -> tuple:
    """The values tuple of a validated model (the shape `plain_check` returns)."""
    return tuple(
        model_values(item) if isinstance(item, Body) else item
        for item in (getattr(model, name) for name in type(model).model_fields)
    )


Rows = Callable[[tuple, str, datetime, int], tuple]


def _position(model: type[Body], path: tuple[str, ...]) -> tuple[int, ...]:
    """Where the field at `path` sits in the model's values tuple (an index per level)."""
    names = list(model.model_fields)
    if path[0] not in names:
        raise TypeError(f"{model.__name__} has no field {path[0]!r} (personal_fields)")
    index = names.index(path[0])
    if len(path) == 1:
        return (index,)
    inner = _without_none(model.model_fields[path[0]].annotation)
    if not (isinstance(inner, type) and issubclass(inner, Body)):
        raise TypeError(f"{model.__name__}.{path[0]} is not an object (personal_fields)")
    return (index, *_position(inner, path[1:]))


def _set_none(values: tuple | None, position: tuple[int, ...]) -> tuple | None:
    if values is None:  # an absent optional object holds nothing
        return None
    index, rest = position[0], position[1:]
    return (*values[:index], _set_none(values[index], rest) if rest else None, *values[index + 1 :])

# A rank is this bit for a completion event, then 60 bits of a digest of the event's content.
COMPLETION_RANK = 1 << 60
DIGEST_BITS = COMPLETION_RANK - 1

# Rows are NamedTuples built with tuple.__new__ (`new(ProgressRow, (...))`): the
# NamedTuple's own __new__ is a Python-level call that costs about 6% of replay.
new = tuple.__new__


@dataclass(frozen=True)
class EventKind:
    """One kind of tracked event, as its module declares it.

    `rows(values, event_name, event_time, rank)` builds the rows; the first
    row type in `row_types` is the primary row (the one "applied" counts).
    `completion_events` outrank the others at an equal event time.
    `personal_fields` are the paths in the body of personal data (students'
    names and emails: `("user", "name")`). For a tracker told to keep ids only
    (STORE_USER_NAMES=false) they become None before rows are made
    (`without_personal_data`), and rejection reasons never quote them
    (`EventKind.personal_fields` reaches `reasons.describe`).
    """

    family: str
    event_names: frozenset[str]
    body: type[Body]
    row_types: tuple[type, ...]
    rows: Rows
    completion_events: frozenset[str] = frozenset()
    personal_fields: tuple[tuple[str, ...], ...] = ()
    plain: Check = field(init=False, repr=False)
    _personal_positions: tuple[tuple[int, ...], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "plain", plain_check(self.body))
        object.__setattr__(self, "_personal_positions", tuple(_position(self.body, path) for path in self.personal_fields))

    def without_personal_data(self, values: tuple) -> tuple:
        """The values with every personal field set to None (the rest, ids included, as they were)."""
        for position in self._personal_positions:
            values = _set_none(values, position)
        return values

    @property
    def primary(self) -> type:
        return self.row_types[0]

    def outcome(self, event_name: str, event_time: datetime, values: tuple, user_names: bool = True) -> Tracked:
        """The Tracked outcome of validated values, its rows ranked for ties.

        Without `user_names`, personal data is dropped from the values before
        both the rows and the rank are made of them: the rank (stored) is then
        no digest of a name that could be tested against guesses, and two
        events differing only in a name are the duplicates their rows are.
        """
        if not user_names and self.personal_fields:
            values = self.without_personal_data(values)
        return Tracked(event_name, event_time, self.rows(values, event_name, event_time, self.rank(event_name, values)))

    def rank(self, event_name: str, values: tuple) -> int:
        """Orders two events of this kind with the same event_time; depends only on each event.

        Completion events first, then a digest of the normalised values, so
        the winner of a tie does not depend on arrival order. An equal rank
        means equal content: a duplicate.
        """
        try:
            content = orjson.dumps((event_name, values))
        except orjson.JSONEncodeError:  # an integer beyond 64 bits inside stuck_sis_fields
            content = repr((event_name, values)).encode()
        digest = hashlib.blake2b(content, digest_size=8).digest()
        order = int.from_bytes(digest, "big") >> 4  # 60 bits: DIGEST_BITS
        return (COMPLETION_RANK | order) if event_name in self.completion_events else order
