"""How spreadsheets split a CSV file into cells, for checking that none of them starts a formula.

A report file is comma-separated, as RFC 4180 has it, but it is also opened
where the list separator is `;` (Excel in German, French, Dutch, ... locales)
or imported as tab-separated. Such a reader splits each line at its
separator and honours a `"` only at the start of a field, so a CR or LF
inside a quoted value starts a new row. Every place a cell can start under
any of those readings is listed here, independently of the code under test.
"""

from __future__ import annotations

import csv
import io
import re

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\x00")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def cell_starts(data: str) -> list[str]:
    """The text of every cell each reading sees (from the cell's start), leading quotes dropped in the line-based ones."""
    starts = [field for row in csv.reader(io.StringIO(data, newline=""), strict=True) for field in row
              if not _NUMBER.fullmatch(field)]  # a number in a numeric column is a number, not text
    for line in re.split(r"\r\n|\r|\n", data):
        starts.append(line.lstrip('"'))  # a row, or a row a line break inside a value started
        for separator in ";\t":
            starts += [piece.lstrip('"') for piece in line.split(separator)[1:]]
    return starts


def formula_cells(data: str) -> list[str]:
    """The cells of `data`, under any reading, that a spreadsheet would run as a formula."""
    return [start for start in cell_starts(data) if start.startswith(FORMULA_STARTS)]
