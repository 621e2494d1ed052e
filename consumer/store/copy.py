"""Binary COPY of row tuples into a Postgres staging table (psycopg 3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import JSON, BigInteger, Boolean, Connection, Date, Integer, Table, Text

from consumer.store.types import UTCDateTime


def _postgres_type(column_type: Any) -> str:
    if isinstance(column_type, UTCDateTime):
        return "timestamptz"
    if isinstance(column_type, JSON):
        return "jsonb"
    if isinstance(column_type, BigInteger):
        return "int8"
    if isinstance(column_type, Integer):
        return "int4"
    if isinstance(column_type, Boolean):
        return "bool"
    if isinstance(column_type, Text):
        return "text"
    if isinstance(column_type, Date):
        return "date"
    raise TypeError(f"no COPY type for {column_type!r}")


def copy_types(table: Table) -> list[str]:
    """The Postgres type name of each of `table`'s columns, as binary COPY needs them."""
    return [_postgres_type(column.type) for column in table.columns]


def copy_rows(connection: Connection, staging: Table, rows: Sequence[tuple]) -> None:
    """COPY `rows` (tuples in the staging table's column order) in binary, inside the current transaction.

    The staging table exists on connections from `store.staging.write_transaction`.
    """
    types = copy_types(staging)
    json_positions = [n for n, name in enumerate(types) if name == "jsonb"]
    names = ", ".join(f'"{column.name}"' for column in staging.columns)
    cursor = connection.connection.driver_connection.cursor()
    with cursor.copy(f'COPY "{staging.name}" ({names}) FROM STDIN (FORMAT BINARY)') as copy:
        copy.set_types(types)
        if json_positions:
            for row in rows:
                values = list(row)
                for n in json_positions:
                    if values[n] is not None:
                        values[n] = Jsonb(values[n])
                copy.write_row(values)
        else:
            for row in rows:
                copy.write_row(row)
