"""Unwrap the transport around a Canvas event.

A message body is the Canvas event itself (`{"metadata": ..., "body": ...}`)
or an SNS notification whose `Message` is that event as a string. A Caliper
envelope is recognised and refused by name: the tracker reads the "Canvas"
format only. This module is the only place that knows envelopes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from consumer.events.fields import json_type
from consumer.text import one_line


class EnvelopeError(ValueError):
    """The input is not a Canvas event; the message says why."""


def unwrap(document: Any, decode: Callable[[str], Any] = orjson.loads) -> dict[str, Any]:
    """Return the Canvas event inside `document` (already JSON-decoded).

    `decode` decodes an SNS `Message` string (the same decoder as the outer document).
    """
    for _ in range(3):  # SNS inside SNS happens with fan-out topics; deeper is nonsense
        if not isinstance(document, dict):
            raise EnvelopeError(f"expected a JSON object, got {json_type(document)}")
        if _is_caliper(document):
            version = document.get("dataVersion")
            shown = version if isinstance(version, str) and len(version) <= 80 and version.isprintable() else "..."
            raise EnvelopeError(
                f"Caliper envelope (dataVersion={shown!r}) is not supported: "
                "set the Live Events subscription format to 'Canvas'"
            )
        if document.get("Type") == "Notification" and "Message" in document:
            message = document["Message"]
            if not isinstance(message, str):
                raise EnvelopeError(f"SNS notification field Message is not a string (got {json_type(message)})")
            try:
                document = decode(message)
            except (ValueError, RecursionError) as exc:
                first = one_line(str(exc)) or "nested too deeply"
                raise EnvelopeError(f"SNS notification field Message is not valid JSON: {first}") from None
            continue
        return document
    raise EnvelopeError("SNS notifications nested more than twice")


def _is_caliper(document: dict[str, Any]) -> bool:
    version = document.get("dataVersion")
    if isinstance(version, str) and "caliper" in version.lower():
        return True
    return "sensor" in document and isinstance(document.get("data"), list)
