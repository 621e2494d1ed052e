"""Per-course completion figures, read from the `course_completion` view (migration 0002)."""

from __future__ import annotations

from sqlalchemy import Connection, text

HEADERS = ("course_id", "name", "students", "completed", "completion_rate")


def course_summary(connection: Connection, limit: int | None = None) -> list[tuple]:
    """One row per course: id, name, students tracked (error bodies excluded), completed, completion rate."""
    query = "SELECT course_id, course_name, students, completed, completion_rate FROM course_completion ORDER BY course_id"
    if limit is not None:
        query += " LIMIT :limit"
    rows = connection.execute(text(query), {"limit": limit} if limit is not None else {})
    return [(course_id, name, int(students), int(completed), None if rate is None else float(rate)) for course_id, name, students, completed, rate in rows]
