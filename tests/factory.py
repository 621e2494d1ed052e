"""Builders for Canvas events in tests: realistic defaults, override what a test is about.

Golden inputs live in files: the events in sample_events/ (`sample`), the
transports around them in tests/payloads/ (`payload`, `in_sns`, `in_caliper`,
`wrapped`); what sample_events/ holds is derived by `sample_expectations`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SAMPLE_EVENTS = Path(__file__).resolve().parents[1] / "sample_events"
PAYLOADS = Path(__file__).resolve().parent / "payloads"
ENVELOPES = ("bare", "sns", "sns2", "caliper")


def sample(name: str) -> dict[str, Any]:
    """A golden event from sample_events/ (e.g. "course_completed")."""
    return json.loads((SAMPLE_EVENTS / f"{name}.json").read_text())


def payload(name: str) -> bytes:
    """A golden envelope from tests/payloads/ (e.g. "sns-notification"), byte for byte."""
    return (PAYLOADS / f"{name}.json").read_bytes()


def sns_notification(message: str) -> dict[str, Any]:
    """The golden SNS notification (tests/payloads/sns-notification.json) carrying `message` as its Message."""
    return {**json.loads(payload("sns-notification")), "Message": message}


def in_sns(event: dict[str, Any] | bytes, times: int = 1) -> bytes:
    """`event` (a dict, or bytes taken as its text) as SNS delivers it; `times` 2: SNS inside SNS (fan-out topics)."""
    body = event if isinstance(event, bytes) else encode(event)
    for _ in range(times):
        body = encode(sns_notification(body.decode("utf-8", "surrogatepass")))
    return body


def in_caliper(event: dict[str, Any]) -> bytes:
    """`event` as the data of the golden Caliper envelope (tests/payloads/caliper-envelope.json)."""
    return encode({**json.loads(payload("caliper-envelope")), "data": [event]})


def wrapped(event: dict[str, Any], envelope: str) -> bytes:
    """`event` in one of ENVELOPES: bare (the Canvas event itself, as SQS delivers it), sns, sns2 or caliper."""
    if envelope == "bare":
        return encode(event)
    if envelope == "caliper":
        return in_caliper(event)
    return in_sns(event, {"sns": 1, "sns2": 2}[envelope])


@dataclass(frozen=True)
class SampleExpectations:
    """What sample_events/ holds, derived with the pure parser (never with the pipeline a test checks).

    `read`: inputs (a .json file is one, an .ndjson line is one); `sendable`: those SQS can carry (UTF-8 text);
    `tracked`/`ignored`/`rejected` (and `*_sendable`): parse outcomes; `rows`: rows per table after collapsing
    to the newest per key; `applied`/`stale`: replaying it in one batch into empty tables.
    """

    read: int
    sendable: int
    tracked: int
    ignored: int
    rejected: int
    tracked_sendable: int
    rejected_sendable: int
    rows: dict[str, int]
    applied: int
    stale: int


def sample_inputs() -> list[bytes]:
    """Every input of sample_events/, in file order: whole .json files, non-blank .ndjson lines."""
    inputs: list[bytes] = []
    for path in sorted(SAMPLE_EVENTS.iterdir()):
        if path.suffix == ".json":
            inputs.append(path.read_bytes())
        elif path.suffix == ".ndjson":
            inputs.extend(line for line in path.read_bytes().splitlines() if line.strip())
    return inputs


def sample_expectations() -> SampleExpectations:
    from consumer.core import Ignored, Tracked
    from consumer.events.merge import newest_per_key
    from consumer.events.parse import parse_event
    from consumer.events.registry import PRIMARY_KINDS, key_of

    inputs = sample_inputs()
    outcomes = [parse_event(item) for item in inputs]
    sendable = [_is_text(item) for item in inputs]
    kinds = Counter("tracked" if isinstance(o, Tracked) else "ignored" if isinstance(o, Ignored) else "rejected" for o in outcomes)
    by_sendable = Counter(type(o).__name__ for o, ok in zip(outcomes, sendable, strict=True) if ok)
    newest = newest_per_key(row for o in outcomes if isinstance(o, Tracked) for row in o.rows)
    keys: dict[str, set] = {}
    for kind, rows in newest.items():
        keys.setdefault(kind.TABLE, set()).update(map(key_of(kind), rows))
    applied = sum(len(rows) for kind, rows in newest.items() if kind in PRIMARY_KINDS)
    return SampleExpectations(
        read=len(inputs), sendable=sum(sendable), tracked=kinds["tracked"], ignored=kinds["ignored"], rejected=kinds["rejected"],
        tracked_sendable=by_sendable["Tracked"], rejected_sendable=by_sendable["Rejected"],
        rows={table: len(found) for table, found in sorted(keys.items())}, applied=applied, stale=kinds["tracked"] - applied,
    )


def _is_text(item: bytes) -> bool:
    try:
        item.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _metadata(event_name: str, event_time: str) -> dict[str, Any]:
    return {
        "event_name": event_name,
        "event_time": event_time,
        "producer": "canvas",
        "root_account_id": "21070000000000001",
        "root_account_uuid": "VicYj3cu5BIFpoZhDVU4DZumnlBrWi1grgJEzADs",
    }


def course_event(event_time: str, course_id: str = "21070000000000565", event_name: str = "course_updated", **body: Any) -> dict[str, Any]:
    fields = {
        "course_id": course_id,
        "uuid": "S3vhRY2pBzG8iPdZ3OAYuhRhR1mnvvPZC6Flg4Le",
        "account_id": "21070000000000079",
        "name": "Computer Science I",
        "created_at": "2019-10-28T14:02:11Z",
        "updated_at": "2019-10-28T14:02:11Z",
        "workflow_state": "available",
    }
    return {"metadata": _metadata(event_name, event_time), "body": {**fields, **body}}


def section_event(event_time: str, section_id: str = "1021", event_name: str = "course_section_updated", **body: Any) -> dict[str, Any]:
    fields = {
        "course_section_id": section_id,
        "sis_source_id": "S1",
        "sis_batch_id": None,
        "course_id": "565",
        "root_account_id": "1",
        "enrollment_term_id": "12",
        "name": "Section 1",
        "default_section": False,
        "accepting_enrollments": True,
        "can_manually_enroll": None,
        "start_at": None,
        "end_at": None,
        "workflow_state": "active",
        "restrict_enrollments_to_section_dates": False,
        "nonxlist_course_id": None,
        "stuck_sis_fields": [],
        "integration_id": None,
    }
    return {"metadata": _metadata(event_name, event_time), "body": {**fields, **body}}


def progress_event(
    event_time: str,
    course_id: str = "565",
    user_id: str = "123",
    done: int = 3,
    total: int = 6,
    event_name: str = "course_progress",
    completed_at: str | None = None,
    course_name: str = "Computer Science I",
    sis_source_id: str | None = "2017.100.101.101-1",
    user_name: str = "Isaac Newton",
    error: str | None = None,
) -> dict[str, Any]:
    progress: dict[str, Any] = {
        "requirement_count": total,
        "requirement_completed_count": done,
        "next_requirement_url": None if done == total else f"http://oxana.instructure.com/courses/{course_id}/modules/items/{done}",
        "completed_at": completed_at,
    }
    if error is not None:
        progress = {"error": {"message": error}}
    return {
        "metadata": _metadata(event_name, event_time),
        "body": {
            "progress": progress,
            "user": {"id": user_id, "name": user_name, "email": f"{user_name.split()[0].lower()}@example.edu"},
            "course": {"id": course_id, "name": course_name, "account_id": "79", "sis_source_id": sis_source_id},
        },
    }


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def poison_bodies() -> list[str]:
    """Events that once raised inside parsing and took their whole batch down (issue 10):
    event_name a number, a tracked field nested 300 deep, stuck_sis_fields nested 1000 deep."""
    name_is_a_number = progress_event("2019-11-01T00:00:00Z")
    name_is_a_number["metadata"]["event_name"] = 5
    deep_text = json.dumps(progress_event("2019-11-01T00:00:00Z", user_name="@@")).replace('"@@"', "[" * 300 + '"x"' + "]" * 300)
    deep_stuck = json.dumps(section_event("2019-11-01T00:00:00Z", stuck_sis_fields="@@")).replace('"@@"', "[" * 1000 + "1" + "]" * 1000)
    return [json.dumps(name_is_a_number), deep_text, deep_stuck]
