"""Unwrap the transport around a Canvas event.

A message body is the Canvas event itself (`{"metadata": ..., "body": ...}`)
or an SNS notification whose `Message` is that event as a string. A Caliper
envelope is recognised and refused by name: the tracker reads the "Canvas"
format only.
"""

from __future__ import annotations

from typing import Any

import orjson


class EnvelopeError(ValueError):
    """The input is not a Canvas event; the message says why."""


def unwrap(document: Any) -> dict[str, Any]:
    """Return the Canvas event inside `document` (already JSON-decoded)."""
    for _ in range(3):  # SNS inside SNS happens with fan-out topics; deeper is nonsense
        if not isinstance(document, dict):
            raise EnvelopeError(f"expected a JSON object, got a JSON {_json_type(document)}")
        if _is_caliper(document):
            version = document.get("dataVersion")
            raise EnvelopeError(
                f"Caliper envelope (dataVersion={version!r}) is not supported: "
                "set the Live Events subscription format to 'Canvas'"
            )
        if document.get("Type") == "Notification" and "Message" in document:
            message = document["Message"]
            if not isinstance(message, str):
                raise EnvelopeError("SNS notification field Message is not a string")
            try:
                document = orjson.loads(message)
            except orjson.JSONDecodeError as exc:
                raise EnvelopeError(f"SNS notification field Message is not valid JSON: {exc}") from None
            continue
        return document
    raise EnvelopeError("SNS notifications nested more than twice")


def _is_caliper(document: dict[str, Any]) -> bool:
    version = document.get("dataVersion")
    if isinstance(version, str) and "caliper" in version.lower():
        return True
    return "sensor" in document and isinstance(document.get("data"), list)


def _json_type(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(value), "null" if value is None else type(value).__name__
    )
