"""The SQL behind each report: a row query and a count over the same rows.

A report covers the courses of one account (`courses.account_id`), or one
course of it. Courses whose account is not known yet (no course_created or
course_updated event has arrived) belong to no account and appear in no report.

The trend reads the view `course_progress_daily`, whose days are running sums
over each course's daily changes. Postgres pushes a condition on `course_id`
into that view (each course's sums are its own), but not a join: joined with
`courses`, it would add up every course's days to keep an account's. So the
courses in scope reach the view as a condition, `course_id = ANY(ARRAY(...))`
(see `_Among`); a condition on `day` is not pushed down (a day's figures need
the days before it) and filters the course's days after they are summed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, Float, Numeric, Select, and_, case, cast, func, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from consumer.reports.catalogue import day_parameter, time_parameter
from consumer.store.tables import (
    course_completion,
    course_progress,
    course_progress_daily,
    course_sections,
    courses,
    users,
)


@dataclass(frozen=True, slots=True)
class Scope:
    account_id: int
    course_id: int | None = None


@dataclass(frozen=True, slots=True)
class ReportQuery:
    header: tuple[str, ...]
    rows: Select[Any]
    count: Select[Any]


def _live(state: Any) -> Any:
    return or_(state.is_(None), state != "deleted")


def _course_filter(scope: Scope, parameters: Mapping[str, Any], course_id: Any = courses.c.id,
                   account_id: Any = courses.c.account_id, state: Any = courses.c.workflow_state) -> list[Any]:
    """The courses in scope: the account's, or one of them; deleted ones only with include_deleted."""
    conditions = [account_id == scope.account_id]
    wanted = scope.course_id if scope.course_id is not None else parameters.get("course_id")
    if wanted is not None:
        conditions.append(course_id == wanted)
    if not parameters.get("include_deleted"):
        conditions.append(_live(state))
    return conditions


def _window(column: Any, parameters: Mapping[str, Any]) -> list[Any]:
    conditions = []
    start, end = time_parameter(parameters, "start_at"), time_parameter(parameters, "end_at")
    if start is not None:
        conditions.append(column >= start)
    if end is not None:
        conditions.append(column < end)
    return conditions


def _days(column: Any, parameters: Mapping[str, Any]) -> list[Any]:
    """Days from start_at through end_at, both included."""
    conditions = []
    start, end = day_parameter(parameters, "start_at"), day_parameter(parameters, "end_at")
    if start is not None:
        conditions.append(column >= start)
    if end is not None:
        conditions.append(column <= end)
    return conditions


class _Among(ColumnElement[bool]):
    """`column IN (ids)`; on Postgres `column = ANY(ARRAY(ids))`: an array computed once, before the query, is a
    condition the planner pushes into a view partitioned by `column`, where `IN` becomes a join it does not."""

    inherit_cache = True
    type = Boolean()
    _is_implicitly_boolean = True  # a condition as it stands (not `... = 1` where booleans are integers)
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement), ("ids", InternalTraversal.dp_clauseelement)]

    def __init__(self, column: Any, ids: Select[Any]) -> None:
        self.column = column
        self.ids = ids


@compiles(_Among)
def _among(element: _Among, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.column.in_(element.ids), **kw)


@compiles(_Among, "postgresql")
def _among_on_postgres(element: _Among, compiler: Any, **kw: Any) -> str:
    return f"{compiler.process(element.column, **kw)} = ANY(ARRAY{compiler.process(element.ids.scalar_subquery(), **kw)})"


def _counted(rows: Select[Any]) -> Select[Any]:
    return select(func.count()).select_from(rows.order_by(None).subquery())


def course_progress_query(scope: Scope, parameters: Mapping[str, Any]) -> ReportQuery:
    p = course_progress.c
    share = case(
        (p.requirement_count > 0, func.round(cast(p.requirement_completed_count * 100.0 / p.requirement_count, Numeric), 1)),
        else_=None,
    )
    rows = (
        select(
            p.course_id, courses.c.sis_source_id, courses.c.name, courses.c.account_id, p.user_id, users.c.name,
            p.requirement_count, p.requirement_completed_count, share, p.is_completed, p.completed_at,
            p.next_requirement_url, p.progress_error, p.last_event_time,
        )
        .select_from(course_progress.join(courses, courses.c.id == p.course_id).outerjoin(users, users.c.id == p.user_id))
        .where(and_(*_course_filter(scope, parameters), *_window(p.last_event_time, parameters)))
        .order_by(p.course_id, p.user_id)
    )
    header = (
        "course id", "course sis id", "course name", "account id", "user id", "user name",
        "requirement count", "requirements completed", "percent complete", "completed", "completed at",
        "next requirement url", "progress error", "last activity at",
    )
    return ReportQuery(header, rows, _counted(rows))


def course_completion_query(scope: Scope, parameters: Mapping[str, Any]) -> ReportQuery:
    c = course_completion.c
    conditions = _course_filter(scope, parameters, c.course_id, c.account_id, c.workflow_state)
    rows = (
        select(
            c.course_id, c.sis_source_id, c.course_name, c.account_id, c.workflow_state, c.students, c.completed,
            c.completion_rate, c.mean_share_done, c.last_activity,
        )
        .where(and_(*conditions, *_window(c.last_activity, parameters)))
        .order_by(c.course_id)
    )
    header = (
        "course id", "course sis id", "course name", "account id", "state", "students", "completed",
        "completion rate", "mean share done", "last activity at",
    )
    return ReportQuery(header, rows, _counted(rows))


def course_sections_query(scope: Scope, parameters: Mapping[str, Any]) -> ReportQuery:
    s = course_sections.c
    conditions = _course_filter(scope, parameters)
    if not parameters.get("include_deleted"):
        conditions.append(_live(s.workflow_state))
    rows = (
        select(
            s.id, s.course_id, courses.c.sis_source_id, s.name, s.sis_source_id, s.integration_id,
            s.enrollment_term_id, s.nonxlist_course_id, s.default_section, s.accepting_enrollments,
            s.start_at, s.end_at, s.workflow_state, s.last_event_time,
        )
        .select_from(course_sections.join(courses, courses.c.id == s.course_id))
        .where(and_(*conditions, *_window(s.last_event_time, parameters)))
        .order_by(s.course_id, s.id)
    )
    header = (
        "section id", "course id", "course sis id", "name", "section sis id", "integration id",
        "enrollment term id", "nonxlist course id", "default section", "accepting enrollments",
        "start at", "end at", "state", "last event at",
    )
    return ReportQuery(header, rows, _counted(rows))


def course_progress_trend_query(scope: Scope, parameters: Mapping[str, Any]) -> ReportQuery:
    d = course_progress_daily.c
    scoped = courses.alias("in_scope")  # its own FROM, never correlated with the courses the rows join
    in_scope = select(scoped.c.id).where(*_course_filter(scope, parameters, scoped.c.id, scoped.c.account_id,
                                                         scoped.c.workflow_state))
    rate = case((d.students > 0, cast(d.completed, Float) / cast(d.students, Float)), else_=None)
    rows = (
        select(
            d.course_id, courses.c.sis_source_id, courses.c.name, courses.c.account_id, d.day, d.students, d.completed,
            rate, d.mean_share_done,
        )
        .select_from(course_progress_daily.join(courses, courses.c.id == d.course_id))
        # A course report names its course outright: SQLite pushes `course_id = ?` into the view's window,
        # not `IN (subquery)` (every course's days were summed for one course's report).
        .where(_Among(d.course_id, in_scope), *([d.course_id == scope.course_id] if scope.course_id is not None else []),
               *_days(d.day, parameters))
        .order_by(d.course_id, d.day)
    )
    header = (
        "course id", "course sis id", "course name", "account id", "day", "students", "completed", "completion rate",
        "mean share done",
    )
    return ReportQuery(header, rows, _counted(rows))


QUERIES: dict[str, Callable[[Scope, Mapping[str, Any]], ReportQuery]] = {
    "course_progress_csv": course_progress_query,
    "course_completion_csv": course_completion_query,
    "course_sections_csv": course_sections_query,
    "course_progress_trend_csv": course_progress_trend_query,
}
