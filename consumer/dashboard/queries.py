"""What the dashboard shows, read from the BI views: an account's totals, its courses (a page of them, sorted and
filtered in SQL, so 10,000 courses cost what 50 do), one course's daily trend and stalled students, and how fresh
the data is.

Every figure comes from the same views a BI tool reads (docs/bi.md): `course_completion` for courses and
totals, `course_progress_daily` for the trend, `stalled_students` for the stalled count. Pure reads: the
routes (consumer/api/dashboard.py) check the token's accounts before calling these, and nothing here reads
beyond the account or course it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Literal

from sqlalchemy import Connection, Text, func, literal, or_, select

from consumer.store.tables import (
    bi_settings,
    course_completion,
    course_progress_daily,
    course_progress_daily_changes,
    courses,
    stalled_students,
)

# What stalled_students uses while bi_settings has no row (migration 0008; `canvas-progress bi-settings`).
STALLED_AFTER_DAYS = 14
# The longest trend one request may ask for: ten years of days (a chart wider than that says nothing more).
MAX_TREND_DAYS = 3660
# Without start_at, a trend shows at most this many days, ending at end_at.
DEFAULT_TREND_DAYS = 180
SORTS = ("name", "students", "completed", "completion_rate", "mean_share_done", "last_activity", "id")
Sort = Literal["name", "students", "completed", "completion_rate", "mean_share_done", "last_activity", "id"]
Order = Literal["asc", "desc"]

_c = course_completion.c
_SORT_COLUMNS = {
    "students": _c.students, "completed": _c.completed, "completion_rate": _c.completion_rate,
    "mean_share_done": _c.mean_share_done, "last_activity": _c.last_activity, "id": _c.course_id,
}


def _folded(connection: Connection, column: Any) -> Any:
    """`column` in lower case, Unicode letters included: Postgres's lower(); on SQLite, whose lower() folds ASCII
    only, the fold_case() function every connection of store/engine.py has."""
    return func.fold_case(column) if connection.dialect.name == "sqlite" else func.lower(column)
@dataclass(frozen=True, slots=True)
class Totals:
    courses: int
    students: int
    completed: int
    completion_rate: float | None
    last_activity: datetime | None


@dataclass(frozen=True, slots=True)
class CourseRow:
    id: int
    name: str | None
    account_id: int | None
    sis_source_id: str | None
    workflow_state: str | None
    students: int
    completed: int
    completion_rate: float | None
    mean_share_done: float | None
    last_activity: datetime | None


@dataclass(frozen=True, slots=True)
class Day:
    day: date
    students: int
    completed: int
    mean_share_done: float | None


@dataclass(frozen=True, slots=True)
class Trend:
    start: date
    end: date
    days: list[Day]  # from the course's first day (or start) through end; empty when the course has no history


def _live() -> Any:
    return or_(_c.workflow_state.is_(None), _c.workflow_state != "deleted")


def _account_courses(connection: Connection, account_id: int, search: str | None, include_deleted: bool) -> list[Any]:
    conditions = [_c.account_id == account_id]
    if not include_deleted:
        conditions.append(_live())
    if search:
        # A substring of the name, in any case; % and _ in the term are themselves.
        # The term is folded by the same function as the names, in the database: Python's lower() differs from
        # Postgres's on some letters ("İ" becomes two characters, a final "Σ" becomes "ς"), and a search for a
        # course's own name must find it.
        folded = connection.execute(select(_folded(connection, literal(search, Text)))).scalar_one()
        conditions.append(_folded(connection, _c.course_name).contains(folded, autoescape=True))
    return conditions


def account_totals(connection: Connection, account_id: int, include_deleted: bool = False) -> Totals:
    """The account's courses, students, completed students and completion rate, as account_completion sums them."""
    row = connection.execute(
        select(func.count(), func.coalesce(func.sum(_c.students), 0), func.coalesce(func.sum(_c.completed), 0),
               func.max(_c.last_activity))
        .where(*_account_courses(connection, account_id, None, include_deleted))
    ).one()
    count, students, completed, last = row
    students, completed = int(students), int(completed)
    return Totals(courses=int(count), students=students, completed=completed,
                  completion_rate=completed / students if students else None, last_activity=last)


def course_page(connection: Connection, account_id: int, *, search: str | None = None, sort: Sort = "name",
                order: Order = "asc", offset: int = 0, limit: int = 50,
                include_deleted: bool = False) -> tuple[list[CourseRow], int]:
    """One page of the account's courses and how many match; empty values (no name, no students) sort last."""
    conditions = _account_courses(connection, account_id, search, include_deleted)
    key = _folded(connection, _c.course_name) if sort == "name" else _SORT_COLUMNS[sort]
    ordering = key.desc() if order == "desc" else key.asc()
    total = connection.execute(select(func.count()).select_from(course_completion).where(*conditions)).scalar_one()
    rows = connection.execute(
        select(_c.course_id, _c.course_name, _c.account_id, _c.sis_source_id, _c.workflow_state, _c.students, _c.completed,
               _c.completion_rate, _c.mean_share_done, _c.last_activity)
        .where(*conditions)
        .order_by(key.is_(None), ordering, _c.course_id)  # NULLs last in both orders, then a stable tie-break
        .offset(offset).limit(limit)
    ).all()
    return [CourseRow(id=r.course_id, name=r.course_name, account_id=r.account_id, sis_source_id=r.sis_source_id, workflow_state=r.workflow_state,
                      students=int(r.students), completed=int(r.completed), completion_rate=r.completion_rate,
                      mean_share_done=r.mean_share_done, last_activity=r.last_activity) for r in rows], int(total)


def course_row(connection: Connection, course_id: int) -> CourseRow | None:
    r = connection.execute(
        select(_c.course_id, _c.course_name, _c.account_id, _c.sis_source_id, _c.workflow_state, _c.students, _c.completed,
               _c.completion_rate, _c.mean_share_done, _c.last_activity).where(_c.course_id == course_id)
    ).first()
    if r is None:
        return None
    return CourseRow(id=r.course_id, name=r.course_name, account_id=r.account_id, sis_source_id=r.sis_source_id, workflow_state=r.workflow_state,
                     students=int(r.students), completed=int(r.completed), completion_rate=r.completion_rate,
                     mean_share_done=r.mean_share_done, last_activity=r.last_activity)


def stalled(connection: Connection, course_id: int) -> tuple[int, int]:
    """(students stalled in the course, the threshold in days) as the stalled_students view counts them."""
    count = connection.execute(
        select(func.count()).select_from(stalled_students).where(stalled_students.c.course_id == course_id)
    ).scalar_one()
    days = connection.execute(select(bi_settings.c.stalled_after_days).where(bi_settings.c.id == 1)).scalar()
    return int(count), STALLED_AFTER_DAYS if days is None else int(days)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) and not isinstance(value, datetime) else date.fromisoformat(str(value)[:10])


def trend(connection: Connection, course_id: int, start: date | None = None, end: date | None = None) -> Trend:
    """The course's daily figures from course_progress_daily, one per day from `start` through `end`.

    The view has a row for every day from a course's first change to its last; after the last change the
    figures stay as they are, so those days carry the last row forward. Days before the course's first change
    are left out (there was nothing yet). Without `end`: the course's last change, or today if it has none
    (or `start`, if that is later). Without `start`: DEFAULT_TREND_DAYS before `end`, or the first change if that
    is later.
    ValueError when the window is backwards or longer than MAX_TREND_DAYS.
    """
    d = course_progress_daily.c
    changes = course_progress_daily_changes.c  # the view's days run from a course's first change to its last
    bounds = connection.execute(
        select(func.min(changes.day), func.max(changes.day)).where(changes.course_id == course_id)
    ).one() if end is None or start is None else None
    first = _as_date(bounds[0]) if bounds is not None and bounds[0] is not None else None
    last = _as_date(bounds[1]) if bounds is not None and bounds[1] is not None else None
    if end is None:  # a start after the last change shows that start's figures, not an error
        end = max(last or datetime.now(timezone.utc).date(), start or date.min)
    if start is None:
        # (near year 1, the earliest day there is)
        start = date.fromordinal(max(1, end.toordinal() - (DEFAULT_TREND_DAYS - 1)))
        if first is not None and first > start:
            start = min(first, end)
    if start > end:
        raise ValueError(f"start_at: {start.isoformat()} is after end_at {end.isoformat()}")
    if (end - start).days + 1 > MAX_TREND_DAYS:
        raise ValueError(f"start_at..end_at: {(end - start).days + 1} days; at most {MAX_TREND_DAYS} in one trend")
    columns = (d.day, d.students, d.completed, d.mean_share_done)
    rows = connection.execute(
        select(*columns).where(d.course_id == course_id, d.day >= start, d.day <= end).order_by(d.day)
    ).all()
    found = {_as_date(r.day): r for r in rows}
    carried = None
    if start not in found:  # the figures in force on `start`: the newest day before it
        carried = connection.execute(
            select(*columns).where(d.course_id == course_id, d.day < start).order_by(d.day.desc()).limit(1)
        ).first()
    days: list[Day] = []
    current = carried
    for offset in range((end - start).days + 1):
        day = start + timedelta(days=offset)
        current = found.get(day, current)
        if current is not None:
            days.append(Day(day=day, students=int(current.students), completed=int(current.completed),
                            mean_share_done=current.mean_share_done))
    return Trend(start=start, end=end, days=days)


def account_newest_event(connection: Connection, account_id: int) -> datetime | None:
    """The newest course or progress event of the account's courses: how current its figures are.

    Only the account's own: a deployment-wide figure would tell one account's token when another account was
    last active.
    """
    newest = connection.execute(
        select(func.max(courses.c.course_event_time), func.max(courses.c.progress_event_time))
        .where(courses.c.account_id == account_id)
    ).one()
    found = [value if value.tzinfo else value.replace(tzinfo=timezone.utc) for value in newest if value is not None]
    return max(found) if found else None
