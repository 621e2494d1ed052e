"""Rejection reasons: one line, naming the field and quoting the value as sent.

Reasons reach terminals, logs, CSV files and browsers, so every value is
rendered as bounded JSON-style text with control, format and other
invisible characters escaped, and with no recursion (values may be nested
arbitrarily deep). For a tracker that keeps no personal data
(STORE_USER_NAMES=false) a reason never quotes a value that is or holds a
personal field (a student's name or email, `personal` paths): it names the
field and says what is wrong, without the value.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from consumer.events.fields import SentNumber, json_type
from consumer.text import safe_text

MAX_SHOWN = 80
_WHOLE_NUMBER = 120  # a number up to this long is quoted whole, even past MAX_SHOWN, so the reason shows what was sent
NOT_SHOWN = "(value not shown: personal data, STORE_USER_NAMES=false)"


def describe(exc: ValidationError, prefix: str, personal: tuple[tuple[str, ...], ...] = ()) -> str:
    """A one-line reason naming each bad field (`body.user.id`) and the value it had.

    A value at, inside or holding one of the `personal` paths (relative to
    `prefix`) is not quoted.
    """
    parts = []
    for error in exc.errors(include_url=False):
        location = tuple(str(part) for part in error["loc"])
        field = ".".join([prefix, *(safe_text(part) for part in location)])
        value = error.get("input")
        got = NOT_SHOWN if holds_personal(location, personal) else f"(got {shown(value)})"
        if error["type"] == "missing":
            parts.append(f"{field}: required field is missing")
        elif error["type"] in ("model_type", "dict_type", "model_attributes_type"):
            parts.append(f"{field}: expected an object, got {json_type(value)} {got}")
        else:
            message = error["msg"].removeprefix("Value error, ")
            parts.append(f"{field}: {safe_text(message)} {got}")
    return "; ".join(parts)


def holds_personal(location: tuple[str, ...], personal: tuple[tuple[str, ...], ...]) -> bool:
    """Is the value at `location` a personal field, inside one, or an object or array that may hold one?"""
    return any(location[: len(path)] == path or path[: len(location)] == location for path in personal)


def missing_object(field: str, document: dict[str, Any], hide: bool = False) -> str:
    """The reason when `document[field]` is absent or not a JSON object (its value not quoted with `hide`)."""
    if field not in document:
        return f"{field}: required object is missing"
    value = document[field]
    return f"{field}: expected an object, got {json_type(value)} {NOT_SHOWN if hide else f'(got {shown(value)})'}"


def shown(value: Any, limit: int = MAX_SHOWN) -> str:
    """`value` as JSON-style text, cut at `limit` characters ("..." marks the cut)."""
    if type(value) in (int, SentNumber):
        return _scalar(value)
    pieces: list[str] = []
    size = 0
    stack: list[Any] = [value]
    while stack and size <= limit:
        item = stack.pop()
        if type(item) is _Raw:
            piece = item.text
        elif type(item) is dict:
            piece = "{"
            stack.append(_Raw("}"))
            entries = list(item.items())
            for n, (key, child) in enumerate(reversed(entries)):
                stack.append(child)
                stack.append(_Raw(_string(key) + ": "))
                if n != len(entries) - 1:
                    stack.append(_Raw(", "))
        elif type(item) is list:
            piece = "["
            stack.append(_Raw("]"))
            for n, child in enumerate(reversed(item)):
                stack.append(child)
                if n != len(item) - 1:
                    stack.append(_Raw(", "))
        else:
            piece = _scalar(item)
        pieces.append(piece)
        size += len(piece)
    text = "".join(pieces)
    if stack or len(text) > limit:
        return text[: limit - 3] + "..."
    return text


class _Raw:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is str:
        return _string(value)
    if type(value) is SentNumber:
        digits = value.sent
        return digits if len(digits) <= _WHOLE_NUMBER else f"{digits[:20]}...{digits[-8:]} ({len(digits)} characters)"
    if type(value) is int:
        digits = str(value)
        # A long number is shown by its ends and length, so the reason stays short.
        return digits if len(digits) <= _WHOLE_NUMBER else f"{digits[:20]}...{digits[-8:]} ({len(digits)} digits)"
    if type(value) is float:
        return repr(value)
    return safe_text(repr(value))


def _string(text: str) -> str:
    cut = text[: MAX_SHOWN * 2]
    escaped = cut.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + safe_text(escaped) + ('..."' if len(text) > len(cut) else '"')
