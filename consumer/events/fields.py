"""The kinds of value a Canvas event carries, each checked by one function.

Types are as Canvas sends them and nothing is coerced: an id is a digit
string or a JSON integer, a count a JSON integer (never a boolean), a flag
a boolean, text a string, a time an ISO 8601 string. Each checker returns
the value to store or raises ValueError with a reason; the pydantic field
types below wrap the very same functions, so the models (`Body`
subclasses) and the plain-shape fast path (`kind.py`) cannot disagree.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainValidator

from consumer.events.ids import parse_canvas_id
from consumer.events.redact import redact_text
from consumer.events.timestamps import parse_timestamp

MAX_COUNT = 2**31 - 1  # requirement counts are 32-bit integers in Canvas and in our tables
MAX_JSON_DEPTH = 32  # stuck_sis_fields is a flat list of field names; deeper is not Canvas
_NUL = "\x00"


class SentNumber(Decimal):
    """A JSON number kept exactly as sent: a fraction or exponent, or an integer too long for int().

    `sent` is the literal text, so a reason can quote it.
    """

    def __new__(cls, literal: str) -> SentNumber:
        try:
            number = super().__new__(cls, literal)
        except ArithmeticError:  # an exponent beyond Decimal's range (1e9999999999999999999): "infinite"
            number = super().__new__(cls, "-Infinity" if literal.startswith("-") else "Infinity")
        number.sent = literal
        return number


canvas_id = parse_canvas_id  # a Canvas id (local or global), exactly: digit strings or JSON integers


def count(value: Any) -> int:
    """A requirement count: a JSON integer from 0 to 2**31 - 1."""
    if type(value) is int and 0 <= value <= MAX_COUNT:
        return value
    if type(value) is int:
        raise ValueError(f"expected a count from 0 to {MAX_COUNT}")
    raise ValueError(f"expected an integer count, got {json_type(value)}")


def flag(value: Any) -> bool:
    """A flag: JSON true or false (not "yes", 1 or 0.0)."""
    if type(value) is bool:
        return value
    raise ValueError(f"expected a boolean, got {json_type(value)}")


def text(value: Any) -> str:
    """Text: a JSON string without NUL (Postgres text cannot hold U+0000) or lone surrogates."""
    if type(value) is str:
        if _NUL in value:
            raise ValueError("contains a NUL character (U+0000), which cannot be stored")
        if not value.isascii():
            _encodable(value)
        return value
    raise ValueError(f"expected a string, got {json_type(value)}")


def url(value: Any) -> str:
    """A URL: text, with the values of credential-bearing query parameters replaced by [redacted] (redact.py)."""
    return redact_text(text(value))


def _encodable(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains an unpaired surrogate (\\ud800-\\udfff escape), which is not text") from None


def timestamp(value: Any) -> datetime:
    """A time, as an aware UTC instant (see timestamps.py for the forms accepted)."""
    if type(value) is not str:
        raise ValueError(f"expected an ISO 8601 timestamp string, got {json_type(value)}")
    return parse_timestamp(value)


def json_value(value: Any) -> Any:
    """Any JSON value stored as delivered: no NUL in strings or keys, at most MAX_JSON_DEPTH deep.

    Walked with an explicit stack, so no nesting can exhaust Python's recursion.
    Fractional numbers decoded exactly (as Decimal) are stored as doubles.
    """
    stack = [(value, 1)]
    converted = False
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if kind is str:
            if _NUL in item:
                raise ValueError("contains a NUL character (U+0000), which cannot be stored")
            if not item.isascii():
                _encodable(item)
        elif kind is list or kind is dict:
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"nested more than {MAX_JSON_DEPTH} levels deep")
            if kind is dict:
                for key in item:
                    if _NUL in key:
                        raise ValueError("contains a NUL character (U+0000), which cannot be stored")
                    if not key.isascii():
                        _encodable(key)
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)
        elif kind is SentNumber:
            if not item.is_finite() or abs(float(item)) == float("inf"):
                raise ValueError("holds a number too large for a double")
            converted = True
        elif kind is float:
            # Only orjson makes floats (the exact decoder makes SentNumber), and it may
            # already have rounded the number: the exact path must read it.
            raise ValueError("holds a number that must be read exactly")
        elif item is not None and kind is not bool and kind is not int:
            raise ValueError(f"expected a JSON value, got {kind.__name__}")
    return _without_decimals(value) if converted else value


def _without_decimals(value: Any) -> Any:
    # Only reached for values within MAX_JSON_DEPTH, so recursion is bounded.
    if isinstance(value, SentNumber):
        return float(value)
    if isinstance(value, list):
        return [_without_decimals(item) for item in value]
    if isinstance(value, dict):
        return {key: _without_decimals(item) for key, item in value.items()}
    return value


def json_type(value: Any) -> str:
    """How a decoded JSON value is named in reasons ("a boolean", "a number", ...)."""
    if value is None:
        return "null"
    if type(value) is bool:
        return "a boolean"
    if type(value) in (int, float, SentNumber):
        return "a number"
    if type(value) is str:
        return "a string"
    if type(value) is list:
        return "an array"
    if type(value) is dict:
        return "an object"
    return type(value).__name__


# The common case of some checkers as an inline expression (of `v`, falling back
# to the checker `check` for everything else), for the generated plain checks
# in kind.py: they must return exactly what the checker returns.
INLINE = {
    canvas_id: "int(v) if type(v) is str and len(v) < 19 and v.isdigit() and v.isascii() else check(v)",
    count: f"v if type(v) is int and 0 <= v <= {MAX_COUNT} else check(v)",
    flag: "v if type(v) is bool else check(v)",
    text: "v if type(v) is str and v.isascii() and '\\x00' not in v else check(v)",
    # No `=`, `%` or backslash: no query parameter to redact (redact.py's own first test).
    url: "v if type(v) is str and v.isascii() and '\\x00' not in v and '=' not in v and '%' not in v and '\\\\' not in v else check(v)",
}

# The same checkers as pydantic field types, for the models.
CanvasId = Annotated[int, PlainValidator(canvas_id)]
Count = Annotated[int, PlainValidator(count)]
Flag = Annotated[bool, PlainValidator(flag)]
Text = Annotated[str, PlainValidator(text)]
Url = Annotated[str, PlainValidator(url)]
Timestamp = Annotated[datetime, PlainValidator(timestamp)]
JsonValue = Annotated[Any, PlainValidator(json_value)]


class Body(BaseModel):
    """Base of every event model: unknown fields are ignored (Canvas adds fields over time)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Metadata(Body):
    """The event's `metadata`: only what the tracker relies on."""

    event_name: Text
    event_time: Timestamp
