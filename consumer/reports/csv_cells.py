"""What a report row becomes in the CSV file (pure: no I/O).

Names, SIS ids and URLs in the reports come from Canvas users, and a CSV file
is opened in spreadsheets. Following OWASP's CSV-injection guidance, a text
cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return gets a
leading `'`, so a spreadsheet shows it as text instead of running it as a
formula. Only text is treated: ids and numbers (ints, Decimals, floats) stay
numeric, so `-2` in a numeric column is still the number -2.

Kept to OWASP's six characters on purpose:
- a leading space (` =1+1`) is text to Excel, LibreOffice and Google Sheets
  when they open a CSV file; only LibreOffice's import dialog with both
  "Trim spaces" and "Evaluate formulas" ticked (neither is by default) would
  evaluate it, and a user who asks for that has asked for formulas;
- full-width lookalikes (`＝`, `＋`, `－`, `＠`) are text to those programs too.

Rows are written by the standard `csv` module with its default (excel)
dialect: `\\r\\n` between rows, as RFC 4180 has it. That line terminator is
also what makes the module quote every field holding a CR or LF (with `\\n`
alone it would leave a bare CR unquoted, and a spreadsheet would see a row
break in the middle of a name).
"""

from __future__ import annotations

import csv
from datetime import datetime
from typing import IO, Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(text: str) -> str:
    """`text`, with a leading `'` if a spreadsheet would read it as a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_value(value: Any) -> Any:
    """One cell: Canvas-like text for None, booleans and times; numbers as they are; text neutralised."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, str):
        return neutralise(value)
    return value


def csv_writer(stream: IO[str]) -> Any:
    """The writer for report files (see the module docstring for why the default dialect)."""
    return csv.writer(stream, dialect="excel")


def csv_row(row: Any) -> list[Any]:
    return [csv_value(value) for value in row]
