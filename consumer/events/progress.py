"""course_progress / course_completed: a student's progress in a course (ids are local).

One event yields four rows: the whole progress row, the student (`users`),
what the body tells about the course (`courses.sis_source_id`, and its
name and account until a course event is seen), and the event itself as
`course_progress_history` keeps it (one row per distinct event). Ids may
arrive global for cross-shard users. CONTRACT section 4 has the rules these
rows follow.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from consumer.events.fields import Body, CanvasId, Count, Text, Timestamp, Url
from consumer.events.ids import IDS_PER_SHARD
from consumer.events.kind import EventKind, new

COMPLETED = "course_completed"


class ProgressError(Body):
    message: Text | None = None


class Progress(Body):
    """`progress`: the counts, or `{"error": {...}}` when Canvas could not compute them."""

    requirement_count: Count | None = None
    requirement_completed_count: Count | None = None
    next_requirement_url: Url | None = None  # credentials in its query string are stored as [redacted]
    completed_at: Timestamp | None = None
    error: ProgressError | None = None


class ProgressUser(Body):
    id: CanvasId
    name: Text | None = None
    email: Text | None = None


class ProgressCourse(Body):
    id: CanvasId
    name: Text | None = None
    account_id: CanvasId | None = None
    sis_source_id: Text | None = None


class ProgressBody(Body):
    """Body of course_progress / course_completed."""

    progress: Progress
    user: ProgressUser
    course: ProgressCourse


class ProgressRow(NamedTuple):
    """A whole course_progress row."""

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
    last_event_rank: int

    TABLE = "course_progress"
    KEY = ("course_id", "user_id")
    TIME = "last_event_time"
    RANK = "last_event_rank"


class UserRow(NamedTuple):
    """A student as told by a progress-type event."""

    id: int
    name: str | None
    email: str | None
    last_event_time: datetime
    last_event_rank: int

    TABLE = "users"
    KEY = ("id",)
    TIME = "last_event_time"
    RANK = "last_event_rank"


class CourseMentionRow(NamedTuple):
    """What a progress-type body tells about its course."""

    id: int
    account_id: int | None
    name: str | None
    sis_source_id: str | None
    progress_event_time: datetime
    progress_event_rank: int

    TABLE = "courses"
    KEY = ("id",)
    TIME = "progress_event_time"
    RANK = "progress_event_rank"


class HistoryRow(NamedTuple):
    """The event itself, for course_progress_history: every distinct progress-type event, newer or older.

    Keyed by the event's time, so an older event adds a row instead of losing
    to the current one; two different events with the same key are ordered
    by rank, the rule the current tables follow (completion first), with the
    digest taken of what the history row holds: two events giving the same
    row are the duplicates they look like, and which of two the history keeps
    never depends on a student's name (scrub-users) or on what it does not
    store (the URL, the course's name).
    """

    course_id: int
    user_id: int
    event_time: datetime
    event_name: str
    requirement_count: int | None
    requirement_completed_count: int | None
    completed_at: datetime | None
    is_completed: bool
    progress_error: str | None
    event_rank: int

    TABLE = "course_progress_history"
    KEY = ("course_id", "user_id", "event_time")
    TIME = "event_time"
    RANK = "event_rank"


def rows(values: tuple, event_name: str, event_time: datetime, rank: int) -> tuple:
    progress, (user_id, user_name, email), (course_id, course_name, account_id, sis_source_id) = values
    count, completed_count, url, completed_at, error = progress
    course_id %= IDS_PER_SHARD
    user_id %= IDS_PER_SHARD
    completed = event_name == COMPLETED
    if error is not None:
        # Canvas could not compute progress (course not module based, user not a student).
        message = error[0] if error[0] is not None else "unknown error"
        progress_row = (course_id, user_id, None, None, None, None, completed, message, event_name, event_time, rank)
    else:
        if completed and completed_at is None:
            completed_at = event_time
        progress_row = (course_id, user_id, count, completed_count, url, completed_at, completed, None, event_name, event_time, rank)
    account_id = None if account_id is None else account_id % IDS_PER_SHARD
    kept = (progress_row[2], progress_row[3], progress_row[5], progress_row[7])  # counts, completed_at, error
    return (
        new(ProgressRow, progress_row),
        new(UserRow, (user_id, user_name, email, event_time, rank)),
        new(CourseMentionRow, (course_id, account_id, course_name, sis_source_id, event_time, rank)),
        new(HistoryRow, (course_id, user_id, event_time, event_name, *kept[:3], completed, kept[3], KIND.rank(event_name, kept))),
    )


KIND = EventKind(
    family="progress",
    event_names=frozenset({"course_progress", COMPLETED}),
    body=ProgressBody,
    row_types=(ProgressRow, UserRow, CourseMentionRow, HistoryRow),
    rows=rows,
    completion_events=frozenset({COMPLETED}),
    personal_fields=(("user", "name"), ("user", "email")),  # the student's; the user keeps its id
)
