"""course_created / course_updated: the course itself (ids in the body are global).

They set `global_id, account_id, name, uuid, workflow_state, created_at,
updated_at` of the course from the newest such event (CONTRACT section 4).
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from consumer.events.fields import Body, CanvasId, Text, Timestamp
from consumer.events.ids import IDS_PER_SHARD
from consumer.events.kind import EventKind, new


class CourseBody(Body):
    """Body of course_created / course_updated."""

    course_id: CanvasId
    uuid: Text | None = None
    account_id: CanvasId | None = None
    name: Text | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    workflow_state: Text | None = None


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
    course_event_rank: int

    TABLE = "courses"
    KEY = ("id",)
    TIME = "course_event_time"
    RANK = "course_event_rank"


def rows(values: tuple, event_name: str, event_time: datetime, rank: int) -> tuple:
    course_id, uuid, account_id, name, created_at, updated_at, workflow_state = values
    account_id = None if account_id is None else account_id % IDS_PER_SHARD
    return (
        new(CourseRow, (
            course_id % IDS_PER_SHARD, course_id, account_id, name, uuid, workflow_state, created_at, updated_at, event_time, rank,
        )),
    )


KIND = EventKind(
    family="course",
    event_names=frozenset({"course_created", "course_updated"}),
    body=CourseBody,
    row_types=(CourseRow,),
    rows=rows,
)
