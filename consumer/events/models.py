"""Pydantic models of the six tracked Canvas Live Events (format "Canvas").

Models describe what arrives; `normalise.py` turns them into table rows.
Unknown fields are accepted and ignored: Canvas adds fields over time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from consumer.events.ids import parse_canvas_id
from consumer.events.timestamps import parse_timestamp


def _no_nul(value: str) -> str:
    # Postgres text cannot hold U+0000; refuse it here so both databases agree.
    if "\x00" in value:
        raise ValueError("contains a NUL character (U+0000), which cannot be stored")
    return value


def json_without_nul(value: Any) -> Any:
    if isinstance(value, str):
        _no_nul(value)
    elif isinstance(value, list):
        for item in value:
            json_without_nul(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_nul(key)
            json_without_nul(item)
    return value


CanvasId = Annotated[int, BeforeValidator(parse_canvas_id)]
# Requirement counts are 32-bit integers in Canvas and in our tables.
Count = Annotated[int, Field(ge=0, le=2**31 - 1)]
Timestamp = Annotated[datetime, BeforeValidator(parse_timestamp)]
Text = Annotated[str, AfterValidator(_no_nul)]
JsonValue = Annotated[Any, AfterValidator(json_without_nul)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, frozen=True)


class Metadata(_Model):
    """The event's `metadata`: only what the tracker relies on."""

    event_name: Text
    event_time: Timestamp


class CourseBody(_Model):
    """Body of course_created / course_updated (ids are global)."""

    course_id: CanvasId
    uuid: Text | None = None
    account_id: CanvasId | None = None
    name: Text | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    workflow_state: Text | None = None


class SectionBody(_Model):
    """Body of course_section_created / course_section_updated (ids are local)."""

    course_section_id: CanvasId
    course_id: CanvasId
    name: Text | None = None
    sis_source_id: Text | None = None
    sis_batch_id: CanvasId | None = None
    integration_id: Text | None = None
    enrollment_term_id: CanvasId | None = None
    nonxlist_course_id: CanvasId | None = None
    root_account_id: CanvasId | None = None
    default_section: bool | None = None
    accepting_enrollments: bool | None = None
    restrict_enrollments_to_section_dates: bool | None = None
    start_at: Timestamp | None = None
    end_at: Timestamp | None = None
    workflow_state: Text | None = None
    stuck_sis_fields: JsonValue = None


class ProgressError(_Model):
    message: Text | None = None


class Progress(_Model):
    """`progress`: the counts, or `{"error": {...}}` when Canvas could not compute them."""

    requirement_count: Count | None = None
    requirement_completed_count: Count | None = None
    next_requirement_url: Text | None = None
    completed_at: Timestamp | None = None
    error: ProgressError | None = None


class ProgressUser(_Model):
    id: CanvasId
    name: Text | None = None
    email: Text | None = None


class ProgressCourse(_Model):
    id: CanvasId
    name: Text | None = None
    account_id: CanvasId | None = None
    sis_source_id: Text | None = None


class ProgressBody(_Model):
    """Body of course_progress / course_completed (ids are local, or global for cross-shard users)."""

    progress: Progress
    user: ProgressUser
    course: ProgressCourse


COURSE_EVENTS = frozenset({"course_created", "course_updated"})
SECTION_EVENTS = frozenset({"course_section_created", "course_section_updated"})
PROGRESS_EVENTS = frozenset({"course_progress", "course_completed"})
TRACKED_EVENTS = COURSE_EVENTS | SECTION_EVENTS | PROGRESS_EVENTS

BODY_MODELS: dict[str, type[_Model]] = {
    **dict.fromkeys(COURSE_EVENTS, CourseBody),
    **dict.fromkeys(SECTION_EVENTS, SectionBody),
    **dict.fromkeys(PROGRESS_EVENTS, ProgressBody),
}
