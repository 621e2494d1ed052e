"""Report cells: text that a spreadsheet would run as a formula gets a leading `'`; numbers stay numbers."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumer.reports.csv_cells import csv_row, csv_value, csv_writer, neutralise
from tests.reports.readings import formula_cells

OWASP = "=+-@\t\r\x00"  # the cheat sheet's six, and ASVS 1.2.10's NUL
BREAKS = ";\t\r\n"  # where a `;`-locale, tab-separated or line-based reader starts another cell


@pytest.mark.parametrize(("text", "cell"), [
    ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
    ("@SUM(1+1)*cmd|' /C calc'!A0", "'@SUM(1+1)*cmd|' /C calc'!A0"),
    ("+SUM(1,2)", "'+SUM(1,2)"),
    ("-2+3", "'-2+3"),
    ("\tTab", "'\tTab"),
    ("\r=1+1", "'\r'=1+1"),  # and the row a line-based reader starts after the CR
    ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
    ("Ada Lovelace", "Ada Lovelace"),
    ("", ""),
    ("'=already quoted", "'=already quoted"),
    (" =1+1", " =1+1"),  # a leading space is text to spreadsheets (see csv_cells)
    ("\uff1d1+1", "\uff1d1+1"),  # full-width equals sign: text too
    ("a=b", "a=b"),
    ("\x00=1+1", "'\x00=1+1"),  # LibreOffice drops the NUL and runs the formula
    # A `;`-locale or tab-separated reader starts a cell inside the value; a line break inside it starts a row.
    ("x;=7+7", "x;'=7+7"),
    ("Ada\r=1+1", "Ada\r'=1+1"),
    ("two\r\n+lines", "two\r\n'+lines"),
    ("tab\t@SUM(1)", "tab\t'@SUM(1)"),
    ('x;"=1+1', "x;'\"=1+1"),  # a quote opening the `;` field does not make it text
    ("=1;-2", "'=1;'-2"),
    ("x; =1+1", "x; =1+1"),  # a space: text, as at the start
    ("a;b\nc", "a;b\nc"),
])
def test_formula_text_gets_a_leading_apostrophe(text: str, cell: str) -> None:
    assert csv_value(text) == cell


@given(st.text() | st.builds(str.__add__, st.sampled_from(OWASP), st.text()))
def test_neutralise_prefixes_exactly_the_owasp_starts(text: str) -> None:
    cell = neutralise(text)
    assert cell.startswith("'") or cell[:1] not in tuple(OWASP)
    if not any(char in text for char in BREAKS):
        assert cell == ("'" + text if text[:1] in tuple(OWASP) else text)
    assert cell.replace("'", "") == text.replace("'", "")  # apostrophes added, nothing else changed


# Text built of the characters that matter here, in pairs too (a break then a formula character), and any other.
_PIECES = [*OWASP, *BREAKS, '"', "'", " ", ",", "a", "1", "\uff1d", *(b + f for b in BREAKS for f in OWASP), ';"=', '\n""+']
_HOSTILE = st.lists(st.sampled_from(_PIECES) | st.characters(exclude_categories=("Cs",)), max_size=8).map("".join)


@given(st.lists(st.one_of(_HOSTILE, st.integers(min_value=0), st.none()), min_size=1, max_size=6))
def test_no_reading_of_a_written_row_starts_a_cell_with_a_formula(cells: list) -> None:
    """Read with commas (csv.reader), with `;` or tabs as a spreadsheet in another locale does, or line by line."""
    buffer = io.StringIO()
    csv_writer(buffer).writerow(csv_row([7, *cells]))  # rows start with an id, as every report's do
    written = buffer.getvalue()
    assert formula_cells(written) == [], (cells, written)
    (row,) = csv.reader(io.StringIO(written, newline=""), strict=True)
    assert row == ["7", *(str(csv_value(cell)) for cell in cells)]


@given(st.one_of(st.integers(), st.decimals(allow_nan=False), st.floats(allow_nan=False, allow_infinity=False)))
def test_numbers_stay_numbers_even_when_negative(number: int | Decimal | float) -> None:
    value = csv_value(number)
    assert type(value) is type(number)
    assert value == (round(number, 4) if isinstance(number, float) else number)


def test_other_values_are_canvas_like_and_never_prefixed() -> None:
    moment = datetime(2019, 9, 1, 12, 0, tzinfo=timezone.utc)
    assert csv_row([None, True, False, -7, Decimal("-83.3"), moment, "-x"]) == [
        "", "true", "false", -7, Decimal("-83.3"), "2019-09-01T12:00:00Z", "'-x"]


@given(st.lists(st.text(st.characters(exclude_categories=("Cs",))), min_size=1, max_size=5))
def test_every_field_holding_cr_or_lf_is_quoted_and_the_row_reads_back(fields: list[str]) -> None:
    buffer = io.StringIO()
    csv_writer(buffer).writerow(fields)
    written = buffer.getvalue()
    assert written.endswith("\r\n")
    for field in fields:
        if "\r" in field or "\n" in field:
            assert '"' + field.replace('"', '""') + '"' in written
    rows = list(csv.reader(io.StringIO(written, newline=""), strict=True))
    assert rows == [fields] or (fields == [""] and rows == [[""]])
