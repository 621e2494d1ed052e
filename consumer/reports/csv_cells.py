"""What a report row becomes in the CSV file (pure: no I/O).

Names, SIS ids and URLs in the reports come from Canvas users, and a CSV file
is opened in spreadsheets. Following OWASP's CSV-injection guidance, a text
cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return gets a
leading `'`, so a spreadsheet shows it as text instead of running it as a
formula; so does one starting with NUL (OWASP ASVS 1.2.10 lists it:
LibreOffice drops the NUL and runs the rest). Only text is treated: ids and
numbers (ints, Decimals, floats) stay numeric, so `-2` in a numeric column is
still the number -2.

OWASP also warns that a cell can start inside a value, at a field separator.
The csv module quotes a value holding a comma, CR or LF, which protects it
from a reader that splits at commas. But Excel in the many locales whose list
separator is `;` (German, French, Dutch, ...) splits each line at `;`, and a
tab-separated import at tabs, and both honour a quote only at the start of
a field, so a line break inside a quoted value also starts a new row there.
So a `'` also goes after every `;`, tab, CR and LF inside a text value that is
followed (after any `"`) by one of those formula characters: LibreOffice 7.4,
opening with `;` as the separator, ran `x;=7+7` and `"Ada\\r=1+1"` as
formulas before this.

Kept to those characters on purpose:
- a leading space (` =1+1`) is text to Excel, LibreOffice and Google Sheets
  when they open a CSV file; only LibreOffice's import dialog with both
  "Trim spaces" and "Evaluate formulas" ticked (neither is by default) would
  evaluate it, and a user who asks for that has asked for formulas;
- full-width lookalikes (`＝`, `＋`, `－`, `＠`), no-break, zero-width and
  ideographic spaces and a byte-order mark before `=` are text to those
  programs too (LibreOffice 7.4, measured).

Rows are written by the standard `csv` module with its default (excel)
dialect: `\\r\\n` between rows, as RFC 4180 has it. That line terminator is
also what makes the module quote every field holding a CR or LF (with `\\n`
alone it would leave a bare CR unquoted, and a spreadsheet would see a row
break in the middle of a name).
"""

from __future__ import annotations

import csv
import re
from datetime import datetime
from typing import IO, Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\x00")
# Where a spreadsheet may start a cell inside a value: after `;` or a tab (a separator), or CR or LF (a new row).
CELL_BREAKS = ";\t\r\n"
_INNER_FORMULA = re.compile(f'([{re.escape(CELL_BREAKS)}])(?="*[{re.escape("".join(FORMULA_STARTS))}])')


def neutralise(text: str) -> str:
    """`text`, with a `'` wherever a spreadsheet could start a cell with a formula (see the module docstring)."""
    if any(char in text for char in CELL_BREAKS):
        text = _INNER_FORMULA.sub(r"\1'", text)
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
