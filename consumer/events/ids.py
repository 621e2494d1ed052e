"""Canvas ids: parsed exactly (never through a float) and made local.

Canvas shards ids: a global id is `shard_id * 10**13 + local_id`
(switchman's `Shard::IDS_PER_SHARD`). Every id column stores the local id,
which is what Canvas URLs and Canvas Data 2 use.
"""

from __future__ import annotations

IDS_PER_SHARD = 10**13
_MAX_ID = 2**63 - 1  # a Postgres bigint


def parse_canvas_id(value: object) -> int:
    """Return the integer a Canvas id string (or JSON integer) stands for.

    Floats are refused: a global id exceeds 2**53 and a float may already
    have changed it.
    """
    if isinstance(value, bool):
        raise ValueError("expected an id (digits), got a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit()):
            raise ValueError("expected an id made of digits")
        number = int(text)
    elif isinstance(value, float):
        raise ValueError("expected an id as a string or integer, got a float (ids must not pass through a float)")
    else:
        raise ValueError(f"expected an id (digits), got {type(value).__name__}")
    if number < 0 or number > _MAX_ID:
        raise ValueError("id is out of range")
    return number


def to_local(canvas_id: int | None) -> int | None:
    """The local id of a local or global Canvas id (`id % 10**13`)."""
    if canvas_id is None:
        return None
    return canvas_id % IDS_PER_SHARD
