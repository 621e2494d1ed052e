"""One input (bytes) in, one outcome out: the single path every source uses.

An outcome is `Tracked` (rows to merge), `Ignored` (an event type the
tracker does not follow) or `Rejected` (with a reason naming the field and
its value). Nothing here does I/O, so replay, the SQS worker and the tests
share it.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from consumer.events import normalise
from consumer.events.envelope import EnvelopeError, unwrap
from consumer.events.fast import fast_outcome
from consumer.events.models import (
    BODY_MODELS,
    COURSE_EVENTS,
    SECTION_EVENTS,
    TRACKED_EVENTS,
    CourseBody,
    Metadata,
    ProgressBody,
    SectionBody,
)
from consumer.events.outcomes import Ignored, Outcome, Rejected, Tracked

__all__ = ["Ignored", "Outcome", "Rejected", "Tracked", "parse_event", "interpret", "describe"]

_MAX_SHOWN = 80


def parse_event(payload: bytes, event_name_hint: str | None = None) -> Outcome:
    """Decode, unwrap, validate and normalise one raw input.

    `event_name_hint` (the SQS `event_name` attribute) lets an untracked
    event be ignored without decoding its body.
    """
    if event_name_hint is not None and event_name_hint not in TRACKED_EVENTS:
        return Ignored(event_name_hint)
    if not payload.strip():
        return Rejected("empty input: expected a JSON object")
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return Rejected(f"invalid JSON: {exc}")
    fast = fast_outcome(document)
    if fast is not None:
        return fast
    try:
        event = unwrap(document)
    except EnvelopeError as exc:
        return Rejected(str(exc))
    return interpret(event)


def interpret(event: dict[str, Any]) -> Outcome:
    """Classify and validate an already-unwrapped Canvas event."""
    metadata = event.get("metadata")
    if not isinstance(metadata, dict):
        return Rejected(_missing_object("metadata", metadata))
    event_name = metadata.get("event_name")
    if isinstance(event_name, str) and event_name not in TRACKED_EVENTS:
        return Ignored(event_name)
    try:
        meta = Metadata.model_validate(metadata)
    except ValidationError as exc:
        return Rejected(describe(exc, "metadata"), event_name if isinstance(event_name, str) else None)
    name = meta.event_name
    body = event.get("body")
    if not isinstance(body, dict):
        return Rejected(_missing_object("body", body), name)
    try:
        model = BODY_MODELS[name].model_validate(body)
    except ValidationError as exc:
        return Rejected(describe(exc, "body"), name)
    if name in COURSE_EVENTS:
        assert isinstance(model, CourseBody)
        rows = normalise.course_rows(model, meta.event_time)
    elif name in SECTION_EVENTS:
        assert isinstance(model, SectionBody)
        rows = normalise.section_rows(model, name, meta.event_time)
    else:
        assert isinstance(model, ProgressBody)
        rows = normalise.progress_rows(model, name, meta.event_time)
    return Tracked(name, meta.event_time, rows)


def describe(exc: ValidationError, prefix: str) -> str:
    """A one-line reason naming each bad field and the value it had."""
    parts = []
    for error in exc.errors(include_url=False):
        field = ".".join([prefix, *(str(part) for part in error["loc"])])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            parts.append(f"{field}: required field is missing")
        else:
            parts.append(f"{field}: {message} (got {_shown(error.get('input'))})")
    return "; ".join(parts)


def _missing_object(field: str, value: object) -> str:
    if value is None:
        return f"{field}: required object is missing"
    return f"{field}: expected a JSON object (got {_shown(value)})"


def _shown(value: object) -> str:
    text = orjson.dumps(value, default=repr).decode() if not isinstance(value, bytes) else repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."
