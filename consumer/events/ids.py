"""Canvas ids: parsed exactly (never through a float) and made local.

Canvas shards ids: a global id is `shard_id * 10**13 + local_id`
(switchman's `Shard::IDS_PER_SHARD`). Every id column stores the local id,
which is what Canvas URLs and Canvas Data 2 use.
"""

from __future__ import annotations

from decimal import Decimal

IDS_PER_SHARD = 10**13
_MAX_ID = 2**63 - 1  # a Postgres bigint
_MAX_DIGITS = len(str(_MAX_ID))


def parse_canvas_id(value: object) -> int:
    """Return the integer a Canvas id string (or JSON integer) stands for.

    Floats are refused: a global id exceeds 2**53 and a float may already
    have changed it. Raises ValueError with a reason for anything else.
    """
    if type(value) is int:
        number = value
    elif type(value) is str:
        text = value.strip(" ")  # only spaces: other whitespace or controls around an id are not Canvas's
        if not (text.isascii() and text.isdigit()):
            raise ValueError("expected an id made of digits")
        if len(text.lstrip("0")) > _MAX_DIGITS:
            raise ValueError("id is out of range")
        number = int(text)
    elif value is None:
        raise ValueError("expected an id (digits), got null")
    elif isinstance(value, bool):
        raise ValueError("expected an id (digits), got a boolean")
    elif isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value() and "e" not in str(getattr(value, "sent", "")).lower():
        raise ValueError("id is out of range")  # an integer too long to convert
    elif isinstance(value, (int, float, Decimal)):
        raise ValueError("expected an id as a string or integer, got a fractional number (ids must not pass through a float)")
    else:
        raise ValueError(f"expected an id (digits), got {_kind(value)}")
    if number < 0 or number > _MAX_ID:
        raise ValueError("id is out of range")
    return number


def _kind(value: object) -> str:
    return {list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


def to_local(canvas_id: int | None) -> int | None:
    """The local id of a local or global Canvas id (`id % 10**13`)."""
    if canvas_id is None:
        return None
    return canvas_id % IDS_PER_SHARD
