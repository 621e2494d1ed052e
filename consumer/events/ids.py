"""Ids: parsed exactly (never through a float), the one place their rules live.

Canvas shards ids: a global id is `shard_id * 10**13 + local_id`
(switchman's `Shard::IDS_PER_SHARD`). Every id column stores the local id,
which is what Canvas URLs and Canvas Data 2 use.

Two doors, one rule for what a number is (ASCII digits, at most MAX_ID):
- `parse_canvas_id`: an id in an event, as Canvas sends it (a digit string or
  a JSON integer; 0 allowed);
- `parse_id` / `parse_local_id`: an id a person or a client gives (a CLI
  argument, an API path, a report parameter): 1 to 19 ASCII digits standing
  for 1 to MAX_ID; `parse_local_id` also takes a Canvas global id and gives
  its local id. Their errors are one line quoting the value.
"""

from __future__ import annotations

from decimal import Decimal

from consumer.text import safe_text

IDS_PER_SHARD = 10**13
MAX_ID = 2**63 - 1  # a Postgres bigint: the largest id any table holds
_MAX_DIGITS = len(str(MAX_ID))  # 19
ID_DIGITS = f"[0-9]{{1,{_MAX_DIGITS}}}"  # what parse_id reads, as a regular expression for OpenAPI documents
_SHOWN = 40  # characters of a refused value quoted in a message


def parse_canvas_id(value: object) -> int:
    """Return the integer a Canvas id string (or JSON integer) stands for.

    Floats are refused: a global id exceeds 2**53 and a float may already
    have changed it. Raises ValueError with a reason for anything else.
    """
    if type(value) is int:
        number = value
    elif type(value) is str:
        return _number(value.strip(" "))  # only spaces: other whitespace or controls around an id are not Canvas's
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
    if number < 0 or number > MAX_ID:
        raise ValueError("id is out of range")
    return number


def _number(text: str) -> int:
    """The number ASCII digits stand for, at most MAX_ID; ValueError (a reason, no value) for anything else.

    `isdigit()` alone would also take '²' and '⑨', which int() refuses, and
    '١٢', which int() reads; int() itself refuses more than 4,300 digits.
    """
    if not (text.isascii() and text.isdigit()):
        raise ValueError("expected an id made of digits")
    if len(text.lstrip("0")) > _MAX_DIGITS:
        raise ValueError("id is out of range")
    number = int(text)
    if number > MAX_ID:
        raise ValueError("id is out of range")
    return number


def parse_id(text: str) -> int:
    """An id a person or a client gives (`rejected show ID`, `token revoke ID`, a report id in a URL).

    1 to 19 ASCII digits standing for 1 to MAX_ID: no sign, space,
    underscore, exponent or other script's digits. Raises ValueError with a
    one-line message quoting the value.
    """
    try:
        number = _number(text) if len(text) <= _MAX_DIGITS else 0
    except ValueError:
        number = 0
    if number == 0:
        raise ValueError(f"{_quoted(text)} is not an id: expected 1 to {_MAX_DIGITS} digits (0-9) standing for 1 to {MAX_ID}")
    return number


def parse_local_id(text: str) -> int:
    """A Canvas account or course id a person or a client gives, local or global, as its local id.

    `parse_id`'s rules; a global id (shard * 10**13 + local id, as Live
    Events send it) names the same object as its local id, and one whose
    local part is 0 names none.
    """
    local = to_local(parse_id(text))
    if local == 0:
        raise ValueError(f"{_quoted(text)} is not an id: its local part (the id modulo 10**13) is 0")
    return local


def _quoted(text: str) -> str:
    cut = text[:_SHOWN]
    return '"' + safe_text(cut.replace("\\", "\\\\").replace('"', '\\"')) + ('..."' if len(text) > _SHOWN else '"')


def _kind(value: object) -> str:
    return {list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


def to_local(canvas_id: int | None) -> int | None:
    """The local id of a local or global Canvas id (`id % 10**13`)."""
    if canvas_id is None:
        return None
    return canvas_id % IDS_PER_SHARD
