"""The merge rules of CONTRACT section 4 as set-based upserts.

Every statement is `INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE
<stored event time is older>`, so the database, not the caller, decides
whether an event is newer. The same rows in any order, with duplicates,
leave the same tables. Rows are collapsed per key before they get here
(`events/merge.py`).

How rows travel differs per dialect, chosen for an exact rowcount (it is
how "applied" is counted) at the least cost:
- Postgres: one statement per batch that selects from `unnest()` of one
  array per column (executemany there reports rowcount -1);
- SQLite: executemany, which sums the changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import orjson
from sqlalchemy import JSON, Connection, DateTime, Table, bindparam, case, cast, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert
from sqlalchemy.types import TypeEngine

from consumer.events.rows import CourseMentionRow, CourseRow, ProgressRow, Row, SectionRow, UserRow
from consumer.store.tables import course_progress, course_sections, courses, users
from consumer.store.types import UTCDateTime

DIALECTS = ("postgresql", "sqlite")


def _is_json(column_type: TypeEngine[Any]) -> bool:
    return isinstance(column_type, JSON)


def _insert(dialect: str, table: Table, columns: Sequence[str]) -> Insert:
    if dialect == "sqlite":
        return sqlite.insert(table)
    arrays = []
    for name in columns:
        column_type = table.c[name].type
        if _is_json(column_type):
            item: TypeEngine[Any] = postgresql.TEXT()  # JSON travels as text, cast back to jsonb below
        elif isinstance(column_type, UTCDateTime):
            item = DateTime(timezone=True)
        else:
            item = column_type
        arrays.append(cast(bindparam(name), postgresql.ARRAY(item)))
    unnested = func.unnest(*arrays).table_valued(*columns).render_derived()
    values = [
        cast(unnested.c[name], postgresql.JSONB) if _is_json(table.c[name].type) else unnested.c[name]
        for name in columns
    ]
    return postgresql.insert(table).from_select(list(columns), select(*values))


def _newer_than_stored(table: Table, time_column: str, excluded: Any) -> Any:
    stored = table.c[time_column]
    return or_(stored.is_(None), stored < excluded[time_column])


def _replace_whole_row(dialect: str, table: Table, columns: Sequence[str], key: Sequence[str]) -> Insert:
    statement = _insert(dialect, table, columns)
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=list(key),
        set_={name: excluded[name] for name in columns if name not in key},
        where=_newer_than_stored(table, "last_event_time", excluded),
    )


def _course_from_course_event(dialect: str) -> Insert:
    statement = _insert(dialect, courses, CourseRow._fields)
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=["id"],
        set_={name: excluded[name] for name in CourseRow._fields if name != "id"},
        where=_newer_than_stored(courses, "course_event_time", excluded),
    )


def _course_from_progress_event(dialect: str) -> Insert:
    statement = _insert(dialect, courses, CourseMentionRow._fields)
    excluded = statement.excluded
    no_course_event_yet = courses.c.course_event_time.is_(None)
    return statement.on_conflict_do_update(
        index_elements=["id"],
        set_={
            "sis_source_id": excluded.sis_source_id,
            "progress_event_time": excluded.progress_event_time,
            # course_created/updated own these once one has been seen.
            "name": case((no_course_event_yet, excluded.name), else_=courses.c.name),
            "account_id": case((no_course_event_yet, excluded.account_id), else_=courses.c.account_id),
        },
        where=_newer_than_stored(courses, "progress_event_time", excluded),
    )


_WHOLE_ROW_TABLES: dict[type, tuple[Table, tuple[str, ...]]] = {
    SectionRow: (course_sections, ("id",)),
    ProgressRow: (course_progress, ("course_id", "user_id")),
    UserRow: (users, ("id",)),
}


@cache
def upsert_for(dialect: str, kind: type) -> Insert:
    """The upsert statement writing rows of `kind` on `dialect` (built once)."""
    if dialect not in DIALECTS:
        raise ValueError(f"unsupported database dialect {dialect!r}: use postgresql or sqlite")
    if kind is CourseRow:
        statement = _course_from_course_event(dialect)
    elif kind is CourseMentionRow:
        statement = _course_from_progress_event(dialect)
    else:
        table, key = _WHOLE_ROW_TABLES[kind]
        statement = _replace_whole_row(dialect, table, kind._fields, key)
    # SQLAlchemy keeps an INSERT's rowcount only when asked to.
    return statement.execution_options(preserve_rowcount=True)


@cache
def _json_fields(kind: type) -> frozenset[str]:
    table = courses if kind in (CourseRow, CourseMentionRow) else _WHOLE_ROW_TABLES[kind][0]
    return frozenset(name for name in kind._fields if _is_json(table.c[name].type))


def upsert_rows(connection: Connection, kind: type, rows: Sequence[Row]) -> int:
    """Write rows of one kind; returns how many rows were inserted or changed."""
    if not rows:
        return 0
    dialect = connection.dialect.name
    statement = upsert_for(dialect, kind)
    if dialect == "sqlite":
        return connection.execute(statement, [row._asdict() for row in rows]).rowcount
    json_fields = _json_fields(kind)
    arrays = {}
    for name, values in zip(kind._fields, zip(*rows, strict=True), strict=True):
        if name in json_fields:
            values = tuple(None if value is None else orjson.dumps(value).decode() for value in values)
        arrays[name] = list(values)
    return connection.execute(statement, arrays).rowcount
