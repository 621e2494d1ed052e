"""Builders for Canvas events in tests: realistic defaults, override what a test is about."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SAMPLE_EVENTS = Path(__file__).resolve().parents[1] / "sample_events"


def sample(name: str) -> dict[str, Any]:
    """A golden event from sample_events/ (e.g. "course_completed")."""
    return json.loads((SAMPLE_EVENTS / f"{name}.json").read_text())


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
