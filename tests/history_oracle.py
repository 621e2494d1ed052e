"""A plain Python reading of the history and the daily figures (issue 14), for tests to compare the store with.

Written from the definitions (CONTRACT section 6, docs/bi.md "Progress over
time"), never from the SQL of consumer/store/daily.py or migration 0008:
- the history is the set of distinct progress-type events, one row per
  (course, student, event time), normalised as `course_progress` is; two
  different events with one key: the higher rank is kept. The rank is the
  parser's (`parse_event(...).rows`, its `HistoryRow.event_rank`): the tie
  rule is the parser's decision, everything else is computed here.
- the daily figures: for each course, every UTC day from its first
  progress-event day to its last; on each day, each student's newest event
  before the next midnight UTC; `students` those whose newest is not an
  error body, `completed` those among them whose newest is course_completed,
  `mean_share_done` the exact (Fraction) mean of min(done, count) / count
  over those with count > 0 and a done count, None when there are none.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta, timezone
from fractions import Fraction
from typing import Any, NamedTuple

from consumer.events.ids import IDS_PER_SHARD, parse_canvas_id
from consumer.events.timestamps import parse_timestamp

PROGRESS_EVENTS = ("course_progress", "course_completed")
TOLERANCE = 1e-9  # the store keeps shares in billionths


class History(NamedTuple):
    """A course_progress_history row, columns in the table's order."""

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


class Daily(NamedTuple):
    """A course_progress_daily row; `mean_share_done` exact (a Fraction) when expected, a float when read."""

    course_id: int
    day: date
    students: int
    completed: int
    mean_share_done: Fraction | float | None


def history_rank(event: dict[str, Any]) -> int:
    """The parser's rank for the event's history row (the tie rule of CONTRACT section 4, names left out)."""
    from consumer.core import Tracked
    from consumer.events.parse import parse_event
    from consumer.events.progress import HistoryRow

    outcome = parse_event(json.dumps(event).encode())
    assert isinstance(outcome, Tracked), outcome
    (row,) = [row for row in outcome.rows if isinstance(row, HistoryRow)]
    return row.event_rank


def history_row(event: dict[str, Any], rank: int | None = None) -> History:
    """One progress-type event (as tests/factory.py builds it) as its history row, normalised by hand."""
    metadata, body = event["metadata"], event["body"]
    name = metadata["event_name"]
    assert name in PROGRESS_EVENTS, name
    when = parse_timestamp(metadata["event_time"])
    progress = body["progress"]
    completed = name == "course_completed"
    course_id = parse_canvas_id(body["course"]["id"]) % IDS_PER_SHARD
    user_id = parse_canvas_id(body["user"]["id"]) % IDS_PER_SHARD
    rank = history_rank(event) if rank is None else rank
    if progress.get("error") is not None:
        message = progress["error"].get("message")
        return History(course_id, user_id, when, name, None, None, None, completed,
                       "unknown error" if message is None else message, rank)
    completed_at = progress.get("completed_at")
    completed_at = parse_timestamp(completed_at) if completed_at is not None else (when if completed else None)
    return History(course_id, user_id, when, name, progress.get("requirement_count"),
                   progress.get("requirement_completed_count"), completed_at, completed, None, rank)


def expected_history(events: Iterable[dict[str, Any]], stored: Iterable[History] = ()) -> list[History]:
    """The history the events give (on top of `stored` rows), sorted by key: per key, the highest rank."""
    kept: dict[tuple, History] = {}
    for row in [*stored, *(history_row(event) for event in events if event["metadata"]["event_name"] in PROGRESS_EVENTS)]:
        key = row[:3]
        if key not in kept or row.event_rank > kept[key].event_rank:
            kept[key] = row
    return [kept[key] for key in sorted(kept)]


def utc_day(instant: datetime) -> date:
    return instant.astimezone(timezone.utc).date()


def expected_daily(history: Iterable[History]) -> list[Daily]:
    """The daily figures of a history, sorted by (course, day): straight from the definition, day by day."""
    by_course: dict[int, dict[int, list[History]]] = defaultdict(lambda: defaultdict(list))
    for row in history:
        by_course[row.course_id][row.user_id].append(row)
    result = []
    for course_id in sorted(by_course):
        students = by_course[course_id]
        days = [utc_day(row.event_time) for rows in students.values() for row in rows]
        day = min(days)
        while day <= max(days):
            midnight = datetime.combine(day + timedelta(days=1), time(0), tzinfo=timezone.utc)
            newest = [max((r for r in rows if r.event_time < midnight), key=lambda r: (r.event_time, r.event_rank), default=None)
                      for rows in students.values()]
            counted = [r for r in newest if r is not None and r.progress_error is None]
            shares = [Fraction(min(r.requirement_completed_count, r.requirement_count), r.requirement_count)
                      for r in counted if r.requirement_count and r.requirement_completed_count is not None]
            mean = sum(shares, Fraction(0)) / len(shares) if shares else None
            result.append(Daily(course_id, day, len(counted), sum(r.is_completed for r in counted), mean))
            day += timedelta(days=1)
    return result


def as_daily(rows: Iterable[Sequence]) -> list[Daily]:
    """Rows read from course_progress_daily (any order; `day` a date or 'YYYY-MM-DD'), sorted by (course, day)."""
    result = []
    for course_id, day, students, completed, mean in rows:
        day = date.fromisoformat(day) if isinstance(day, str) else day
        if isinstance(day, datetime):
            day = day.date()
        result.append(Daily(int(course_id), day, int(students), int(completed), None if mean is None else float(mean)))
    return sorted(result, key=lambda row: (row.course_id, row.day))


def daily_mismatches(actual: Sequence[Daily], expected: Sequence[Daily]) -> list[str]:
    """What differs between read and expected daily rows, row by (course, day) (the mean within TOLERANCE of the
    exact one); [] when equal."""
    problems = []
    keys = [row[:2] for row in actual]
    if len(set(keys)) != len(keys):
        problems.append(f"(course, day) read more than once: {sorted({k for k in keys if keys.count(k) > 1})}")
    read = {row[:2]: row for row in actual}
    wanted = {row[:2]: row for row in expected}
    if missing := sorted(set(wanted) - set(read)):
        problems.append(f"days missing: {missing}")
    if extra := sorted(set(read) - set(wanted)):
        problems.append(f"days not expected: {extra}")
    for key in sorted(set(read) & set(wanted)):
        got, want = read[key], wanted[key]
        if got[2:4] != want[2:4]:
            problems.append(f"{key}: (students, completed) {got[2:4]}, expected {want[2:4]}")
        if (got.mean_share_done is None) != (want.mean_share_done is None):
            problems.append(f"{key}: mean_share_done {got.mean_share_done!r}, expected {want.mean_share_done!r}")
        elif got.mean_share_done is not None:
            if not math.isfinite(got.mean_share_done) or abs(Fraction(got.mean_share_done) - want.mean_share_done) > TOLERANCE:
                problems.append(f"{key}: mean_share_done {got.mean_share_done!r}, expected {float(want.mean_share_done)!r}")
    return problems


def assert_daily_equal(actual: Sequence[Daily], expected: Sequence[Daily]) -> None:
    problems = daily_mismatches(actual, expected)
    assert not problems, "\n".join(problems)
