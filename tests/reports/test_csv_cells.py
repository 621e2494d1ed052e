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

OWASP = "=+-@\t\r"


@pytest.mark.parametrize(("text", "cell"), [
    ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
    ("@SUM(1+1)*cmd|' /C calc'!A0", "'@SUM(1+1)*cmd|' /C calc'!A0"),
    ("+SUM(1,2)", "'+SUM(1,2)"),
    ("-2+3", "'-2+3"),
    ("\tTab", "'\tTab"),
    ("\r=1+1", "'\r=1+1"),
    ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
    ("Ada Lovelace", "Ada Lovelace"),
    ("", ""),
    ("'=already quoted", "'=already quoted"),
    (" =1+1", " =1+1"),  # a leading space is text to spreadsheets (see csv_cells)
    ("\uff1d1+1", "\uff1d1+1"),  # full-width equals sign: text too
    ("a=b", "a=b"),
])
def test_formula_text_gets_a_leading_apostrophe(text: str, cell: str) -> None:
    assert csv_value(text) == cell


@given(st.text())
def test_neutralise_prefixes_exactly_the_owasp_starts(text: str) -> None:
    cell = neutralise(text)
    if text[:1] in tuple(OWASP):
        assert cell == "'" + text
    else:
        assert cell == text


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
