"""course_section_created / course_section_updated: a whole section row (ids are local).

The newest event replaces the whole row; cross-listing moves `course_id`,
and `nonxlist_course_id` keeps the original course (CONTRACT section 4).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from consumer.events.fields import Body, CanvasId, Flag, JsonValue, Text, Timestamp
from consumer.events.ids import IDS_PER_SHARD
from consumer.events.kind import EventKind, new


class SectionBody(Body):
    """Body of course_section_created / course_section_updated."""

    course_section_id: CanvasId
    course_id: CanvasId
    name: Text | None = None
    sis_source_id: Text | None = None
    sis_batch_id: CanvasId | None = None
    integration_id: Text | None = None
    enrollment_term_id: CanvasId | None = None
    nonxlist_course_id: CanvasId | None = None
    root_account_id: CanvasId | None = None
    default_section: Flag | None = None
    accepting_enrollments: Flag | None = None
    restrict_enrollments_to_section_dates: Flag | None = None
    start_at: Timestamp | None = None
    end_at: Timestamp | None = None
    workflow_state: Text | None = None
    stuck_sis_fields: JsonValue = None


class SectionRow(NamedTuple):
    """A whole course_sections row."""

    id: int
    course_id: int
    name: str | None
    sis_source_id: str | None
    sis_batch_id: int | None
    integration_id: str | None
    enrollment_term_id: int | None
    nonxlist_course_id: int | None
    root_account_id: int | None
    default_section: bool | None
    accepting_enrollments: bool | None
    restrict_enrollments_to_section_dates: bool | None
    start_at: datetime | None
    end_at: datetime | None
    workflow_state: str | None
    stuck_sis_fields: Any
    last_event_name: str
    last_event_time: datetime
    last_event_rank: int

    TABLE = "course_sections"
    KEY = ("id",)
    TIME = "last_event_time"
    RANK = "last_event_rank"


def _local(value: int | None) -> int | None:
    return None if value is None else value % IDS_PER_SHARD


def rows(values: tuple, event_name: str, event_time: datetime, rank: int) -> tuple:
    (section_id, course_id, name, sis_source_id, sis_batch_id, integration_id, term_id, nonxlist_course_id,
     root_account_id, default_section, accepting_enrollments, restrict_to_dates, start_at, end_at,
     workflow_state, stuck_sis_fields) = values
    return (
        new(SectionRow, (
            section_id % IDS_PER_SHARD,
            course_id % IDS_PER_SHARD,
            name,
            sis_source_id,
            _local(sis_batch_id),
            integration_id,
            _local(term_id),
            _local(nonxlist_course_id),
            _local(root_account_id),
            default_section,
            accepting_enrollments,
            restrict_to_dates,
            start_at,
            end_at,
            workflow_state,
            stuck_sis_fields,
            event_name,
            event_time,
            rank,
        )),
    )


KIND = EventKind(
    family="section",
    event_names=frozenset({"course_section_created", "course_section_updated"}),
    body=SectionBody,
    row_types=(SectionRow,),
    rows=rows,
)
