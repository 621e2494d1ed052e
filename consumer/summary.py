"""Per-course completion figures read back from the tracked tables."""

from __future__ import annotations

from sqlalchemy import Connection, Integer, cast, func, select

from consumer.store.tables import course_progress, courses

HEADERS = ("course_id", "name", "students", "completed", "completion_rate")


def course_summary(connection: Connection, limit: int | None = None) -> list[tuple]:
    """One row per course: id, name, students tracked, completed, completion rate (0..1 or None)."""
    students = func.count(course_progress.c.user_id)
    completed = func.coalesce(func.sum(cast(course_progress.c.is_completed, Integer)), 0)
    query = (
        select(courses.c.id, courses.c.name, students, completed)
        .select_from(courses.outerjoin(course_progress, course_progress.c.course_id == courses.c.id))
        .group_by(courses.c.id, courses.c.name)
        .order_by(courses.c.id)
        .limit(limit)
    )
    return [
        (course_id, name, n, int(done), (int(done) / n) if n else None)
        for course_id, name, n, done in connection.execute(query)
    ]
