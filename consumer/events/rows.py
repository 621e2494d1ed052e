"""Normalised rows, one NamedTuple per kind of write.

Each row kind knows its merge key and the event time that orders it, so the
batch merge and the store treat them alike. Field names are column names.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple


class CourseRow(NamedTuple):
    """A course as told by course_created / course_updated."""

    id: int
    global_id: int | None
    account_id: int | None
    name: str | None
    uuid: str | None
    workflow_state: str | None
    created_at: datetime | None
    updated_at: datetime | None
    course_event_time: datetime

    @property
    def key(self) -> tuple[int, ...]:
        return (self.id,)

    @property
    def event_time(self) -> datetime:
        return self.course_event_time


class CourseMentionRow(NamedTuple):
    """What a course_progress / course_completed body tells about its course."""

    id: int
    account_id: int | None
    name: str | None
    sis_source_id: str | None
    progress_event_time: datetime

    @property
    def key(self) -> tuple[int, ...]:
        return (self.id,)

    @property
    def event_time(self) -> datetime:
        return self.progress_event_time


class SectionRow(NamedTuple):
    """A whole course_sections row from course_section_created / _updated."""

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

    @property
    def key(self) -> tuple[int, ...]:
        return (self.id,)

    @property
    def event_time(self) -> datetime:
        return self.last_event_time


class ProgressRow(NamedTuple):
    """A whole course_progress row from course_progress / course_completed."""

    course_id: int
    user_id: int
    requirement_count: int | None
    requirement_completed_count: int | None
    next_requirement_url: str | None
    completed_at: datetime | None
    is_completed: bool
    progress_error: str | None
    last_event_name: str
    last_event_time: datetime

    @property
    def key(self) -> tuple[int, ...]:
        return (self.course_id, self.user_id)

    @property
    def event_time(self) -> datetime:
        return self.last_event_time


class UserRow(NamedTuple):
    """A student as told by a progress-type event."""

    id: int
    name: str | None
    email: str | None
    last_event_time: datetime

    @property
    def key(self) -> tuple[int, ...]:
        return (self.id,)

    @property
    def event_time(self) -> datetime:
        return self.last_event_time


Row = CourseRow | CourseMentionRow | SectionRow | ProgressRow | UserRow

# Order in which a batch writes its row kinds. Any order gives the same
# tables (the merge rules are commutative); this one is merely readable.
ROW_KINDS: tuple[type, ...] = (CourseRow, CourseMentionRow, SectionRow, UserRow, ProgressRow)
