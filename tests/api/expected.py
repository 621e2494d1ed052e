"""What each report should contain, read straight from the tables (not through the report code)."""

from __future__ import annotations

import csv
import io

from sqlalchemy import create_engine, text


def parse_csv(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"))))


def query(database_url: str, sql: str, **params) -> list[tuple]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql), params)]
    finally:
        engine.dispose()


def progress_keys(database_url: str, account_id: int, course_id: int | None = None) -> list[tuple]:
    """(course, user, requirements, completed requirements, completed) of the live courses in scope."""
    return query(
        database_url,
        "SELECT p.course_id, p.user_id, p.requirement_count, p.requirement_completed_count, p.is_completed "
        "FROM course_progress p JOIN courses c ON c.id = p.course_id "
        "WHERE c.account_id = :account AND (CAST(:course AS BIGINT) IS NULL OR c.id = :course) "
        "AND COALESCE(c.workflow_state, '') <> 'deleted' ORDER BY 1, 2",
        account=account_id, course=course_id,
    )


def csv_progress_keys(rows: list[dict[str, str]]) -> list[tuple]:
    def number(text: str):
        return int(text) if text else None

    return [(int(r["course id"]), int(r["user id"]), number(r["requirement count"]), number(r["requirements completed"]),
             r["completed"] == "true") for r in rows]
