"""One input (bytes) in, one outcome out: the single path every source uses.

An outcome is `Tracked` (rows to merge), `Ignored` (an event type the
tracker does not follow) or `Rejected` (with a reason naming the field and
its value). Parsing is total: whatever the bytes, types or nesting, it
returns exactly one outcome and never raises. Nothing here does I/O, so
replay, the SQS worker and the tests share it.

Two decodings: orjson for the plain shape (the common traffic, checked
without pydantic by each kind's plain check), and, for anything else, the
standard library's decoder keeping every number exactly as sent (integers
beyond 64 bits, decimals), so the models validate and the reason quotes
what was sent, not what a float made of it.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import orjson
from pydantic import ValidationError

from consumer.core import Ignored, Outcome, Rejected, Tracked
from consumer.events.envelope import EnvelopeError, unwrap
from consumer.events.fields import Metadata, SentNumber, json_type, timestamp
from consumer.events.kind import NotPlain, model_values
from consumer.events.reasons import describe, missing_object, shown
from consumer.events.redact import redact_payload
from consumer.events.registry import KIND_BY_EVENT, TRACKED_EVENTS
from consumer.text import one_line, safe_text

__all__ = ["Ignored", "Outcome", "Rejected", "Tracked", "parse_event", "interpret"]

log = logging.getLogger(__name__)


def parse_event(payload: bytes, event_name_hint: str | None = None, user_names: bool = True) -> Outcome:
    """Decode, unwrap, validate and normalise one raw input. Never raises.

    `event_name_hint` (the SQS `event_name` attribute) lets an untracked
    event be ignored without decoding its body. Without `user_names`, the
    rows carry no personal data (students' names, emails: `EventKind.outcome`),
    and neither does a rejection's reason (it reaches the logs).
    """
    try:
        outcome = _parse(payload, event_name_hint, user_names)
        if isinstance(outcome, Rejected):
            # A rejected input is quarantined with its credentials redacted (redact.py): its outcome is the
            # redacted payload's, so that a retry gives it again, whatever bytes the credential held.
            redacted = redact_payload(payload)
            if redacted != payload:
                outcome = _parse(redacted, event_name_hint, user_names)
        return outcome
    except Exception as error:  # a bug of ours: still one outcome, kept for a retry after the fix
        log.exception("internal error while parsing an input")
        return Rejected(f"internal error while parsing ({type(error).__name__}): {one_line(str(error), 200)}")


def _parse(payload: bytes, event_name_hint: str | None, user_names: bool) -> Outcome:
    if event_name_hint is not None and event_name_hint not in TRACKED_EVENTS:
        return Ignored(event_name_hint)
    if not payload.strip():
        return Rejected("empty input: expected a JSON object")
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError as error:
        if str(error).startswith(_TOO_DEEP):
            return Rejected(_TOO_DEEP_REASON)
        # orjson also refuses valid JSON: numbers beyond a double (1e400, 400 digits).
        return _exact_outcome(payload, f"invalid JSON: {safe_text(str(error))}", user_names)
    try:
        event = unwrap(document)
    except EnvelopeError:  # the exact decoder may read an SNS Message orjson refused (1e400)
        return _exact_outcome(payload, None, user_names)
    fast = fast_outcome(event, user_names)
    if fast is not None:
        return fast
    return _exact_outcome(payload, None, user_names)


def _exact_outcome(payload: bytes, refused: str | None, user_names: bool) -> Outcome:
    """The models' outcome on the payload decoded exactly.

    `refused` is the reason when orjson refused the payload. Only inputs at
    most 1,024 levels deep get here (orjson's limit, checked first), well
    within the interpreter's recursion limit (see below), so the outcome
    never depends on how deep the caller's stack is.
    """
    try:
        document = decode_exact(payload)
    except RecursionError:
        return Rejected(_TOO_DEEP_REASON)
    except ValueError as error:
        return Rejected(refused or f"invalid JSON: {_decode_problem(error)}")
    try:
        event = unwrap(document, decode=_decode_message)
    except EnvelopeError as error:
        return Rejected(safe_text(str(error)))
    return interpret(event, user_names)


def fast_outcome(event: dict[str, Any], user_names: bool = True) -> Outcome | None:
    """The outcome of an unwrapped event in the plain shape, or None to let the models decide."""
    metadata = event.get("metadata")
    if type(metadata) is not dict:
        return None
    name = metadata.get("event_name")
    if type(name) is not str:
        return None
    kind = KIND_BY_EVENT.get(name)
    if kind is None:
        return Ignored(name)
    try:
        when = timestamp(metadata.get("event_time"))
        values = kind.plain(event.get("body"))
    except (ValueError, NotPlain):
        return None
    return kind.outcome(name, when, values, user_names)


def interpret(event: dict[str, Any], user_names: bool = True) -> Outcome:
    """Classify and validate an unwrapped Canvas event with the models, naming what is wrong."""
    metadata = event.get("metadata")
    if not isinstance(metadata, dict):
        return Rejected(missing_object("metadata", event))
    name = metadata.get("event_name")
    if not isinstance(name, str):
        reason = "metadata.event_name: required field is missing" if "event_name" not in metadata else (
            f"metadata.event_name: expected a string, got {json_type(name)} (got {shown(name)})"
        )
        return Rejected(reason)
    kind = KIND_BY_EVENT.get(name)
    if kind is None:
        return Ignored(name)
    try:
        meta = Metadata.model_validate(metadata)
    except ValidationError as error:
        return Rejected(describe(error, "metadata"), name)
    personal = () if user_names else kind.personal_fields  # without names, reasons do not quote them either
    body = event.get("body")
    if not isinstance(body, dict):
        return Rejected(missing_object("body", event, hide=bool(personal)), name)
    try:
        model = kind.body.model_validate(body)
    except ValidationError as error:
        return Rejected(describe(error, "body", personal), name)
    return kind.outcome(name, meta.event_time, model_values(model), user_names)


_TOO_DEEP = "depth limit exceeded"  # how orjson refuses JSON nested more than 1,024 levels
_TOO_DEEP_REASON = "JSON nested more than 1,024 levels deep, which no Canvas event is: not read"
# The exact decoder recurses once per level: give it room for orjson's 1,024 levels
# wherever it is called from (a deep caller must not change an input's outcome).
if sys.getrecursionlimit() < 5000:
    sys.setrecursionlimit(5000)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _integer(literal: str) -> int | SentNumber:
    # int() refuses more than 4,300 digits (sys.get_int_max_str_digits): keep those as sent.
    return int(literal) if len(literal) <= 4000 else SentNumber(literal)


_EXACT = json.JSONDecoder(parse_float=SentNumber, parse_int=_integer, parse_constant=_refuse_constant)


def decode_exact(text: bytes | str) -> Any:
    """JSON with every number exactly as sent (integers as int, other numbers as SentNumber).

    Raises ValueError (bad JSON, an integer too long to convert) or
    RecursionError (nesting deeper than the interpreter allows).
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return _EXACT.decode(text.removeprefix("\ufeff"))


def _decode_message(message: str) -> Any:
    """An SNS Message, decoded exactly, once orjson has found it at most 1,024 levels deep."""
    try:
        orjson.loads(message)
    except orjson.JSONDecodeError as error:
        if str(error).startswith(_TOO_DEEP):
            raise ValueError(_TOO_DEEP_REASON) from None
    return decode_exact(message)


def _decode_problem(error: BaseException) -> str:
    if isinstance(error, RecursionError):
        return "nested too deeply"
    return one_line(str(error)) or type(error).__name__
