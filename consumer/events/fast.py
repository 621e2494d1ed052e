"""A fast path for well-formed events: plain checks and positional row tuples, no pydantic.

It accepts only inputs whose every field has the plain expected type (ids
as digit strings or integers, text as str, flags as bool, counts as int,
times as str), and returns None for anything else: then the pydantic
models (`models.py`) decide, and write the rejection reason. For every
input it accepts, it must give exactly the outcome the models give;
`tests/events/test_fast.py` checks that on generated and mutated events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from consumer.events.ids import IDS_PER_SHARD, parse_canvas_id
from consumer.events.models import json_without_nul
from consumer.events.outcomes import Ignored, Outcome, Tracked
from consumer.events.rows import CourseMentionRow, CourseRow, ProgressRow, SectionRow, UserRow
from consumer.events.timestamps import parse_timestamp

_MAX_COUNT = 2**31 - 1
# Rows are built with tuple.__new__: a NamedTuple's own __new__ is a Python-level
# call that costs about 6% of replay time (field order as in rows.py).
_row = tuple.__new__
_COURSE = frozenset({"course_created", "course_updated"})
_SECTION = frozenset({"course_section_created", "course_section_updated"})
_PROGRESS = frozenset({"course_progress", "course_completed"})


class _NotPlain(Exception):
    """The input is not in the plain shape: let the models decide."""


def _id(value: Any) -> int:
    if value is None:
        raise _NotPlain
    try:
        return parse_canvas_id(value)
    except ValueError:
        raise _NotPlain from None


def _optional_id(value: Any) -> int | None:
    return None if value is None else _id(value)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if type(value) is not str or "\x00" in value:
        raise _NotPlain
    return value


def _flag(value: Any) -> bool | None:
    if value is None or type(value) is bool:
        return value
    raise _NotPlain


def _count(value: Any) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not 0 <= value <= _MAX_COUNT:
        raise _NotPlain
    return value


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    if type(value) is not str:
        raise _NotPlain
    try:
        return parse_timestamp(value)
    except ValueError:
        raise _NotPlain from None


def _object(value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise _NotPlain
    return value


def fast_outcome(document: Any) -> Outcome | None:
    """The outcome of a decoded input in the plain shape, or None to defer to the models."""
    if type(document) is not dict or "Type" in document or "dataVersion" in document or "sensor" in document:
        return None
    metadata = document.get("metadata")
    if type(metadata) is not dict:
        return None
    name = metadata.get("event_name")
    if type(name) is not str:
        return None
    if name not in _COURSE and name not in _SECTION and name not in _PROGRESS:
        return Ignored(name)
    body = document.get("body")
    if type(body) is not dict or "\x00" in name:
        return None
    try:
        when = _time(metadata.get("event_time"))
        if when is None:
            return None
        if name in _PROGRESS:
            rows = _progress(body, name, when)
        elif name in _SECTION:
            rows = _section(body, name, when)
        else:
            rows = _course(body, when)
    except _NotPlain:
        return None
    return Tracked(name, when, rows)


def _course(body: dict[str, Any], when: datetime) -> tuple:
    course_id = _id(body.get("course_id"))
    account_id = _optional_id(body.get("account_id"))
    return (
        _row(CourseRow, (
            course_id % IDS_PER_SHARD,
            course_id,
            None if account_id is None else account_id % IDS_PER_SHARD,
            _text(body.get("name")),
            _text(body.get("uuid")),
            _text(body.get("workflow_state")),
            _time(body.get("created_at")),
            _time(body.get("updated_at")),
            when,
        )),
    )


def _local(value: Any) -> int | None:
    number = _optional_id(value)
    return None if number is None else number % IDS_PER_SHARD


def _section(body: dict[str, Any], name: str, when: datetime) -> tuple:
    stuck = body.get("stuck_sis_fields")
    if stuck is not None:
        try:
            json_without_nul(stuck)
        except ValueError:
            raise _NotPlain from None
    return (
        _row(SectionRow, (
            _id(body.get("course_section_id")) % IDS_PER_SHARD,
            _id(body.get("course_id")) % IDS_PER_SHARD,
            _text(body.get("name")),
            _text(body.get("sis_source_id")),
            _local(body.get("sis_batch_id")),
            _text(body.get("integration_id")),
            _local(body.get("enrollment_term_id")),
            _local(body.get("nonxlist_course_id")),
            _local(body.get("root_account_id")),
            _flag(body.get("default_section")),
            _flag(body.get("accepting_enrollments")),
            _flag(body.get("restrict_enrollments_to_section_dates")),
            _time(body.get("start_at")),
            _time(body.get("end_at")),
            _text(body.get("workflow_state")),
            stuck,
            name,
            when,
        )),
    )


def _progress(body: dict[str, Any], name: str, when: datetime) -> tuple:
    progress = _object(body.get("progress"))
    user = _object(body.get("user"))
    course = _object(body.get("course"))
    if progress.get("error") is not None:
        raise _NotPlain  # rare: the models handle error bodies
    course_id = _id(course.get("id")) % IDS_PER_SHARD
    user_id = _id(user.get("id")) % IDS_PER_SHARD
    completed = name == "course_completed"
    completed_at = _time(progress.get("completed_at"))
    if completed and completed_at is None:
        completed_at = when
    return (
        _row(ProgressRow, (
            course_id,
            user_id,
            _count(progress.get("requirement_count")),
            _count(progress.get("requirement_completed_count")),
            _text(progress.get("next_requirement_url")),
            completed_at,
            completed,
            None,
            name,
            when,
        )),
        _row(UserRow, (user_id, _text(user.get("name")), _text(user.get("email")), when)),
        _row(CourseMentionRow, (course_id, _local(course.get("account_id")), _text(course.get("name")), _text(course.get("sis_source_id")), when)),
    )
