"""The CSV files the runner writes, for any names Canvas users can give (issue 11, items 1 and 2).

Courses, sections, students and next-requirement URLs with arbitrary text go
through the real pipeline into a real database (SQLite and Postgres); the
runner writes each of the three reports; the file must parse back with
`csv.reader` into exactly the header plus `current_line` rows, and each text
cell must be the original, with a leading `'` when it starts with one of
OWASP's formula characters, and a `'` after each `;`, tab, CR or LF inside it
that a formula character follows (where a `;`-locale, tab-separated or
line-based reader starts a cell). No reading of the file may start a cell with
a formula. The expectation is written out here, not taken from the code under test.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from consumer.reports import jobs
from consumer.reports.runner import ReportRunner
from consumer.store.engine import make_engine
from consumer.store.migrate import upgrade
from tests.factory import course_event, progress_event, section_event
from tests.helpers import apply_events
from tests.reports.readings import formula_cells

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# From the issue, and the row-splitting carriage return.
ISSUE_CELLS = ['=HYPERLINK("http://x","y")', "@SUM(1+1)*cmd|' /C calc'!A0", "+SUM(1,2)", "-2+3", "\tleading tab",
               "=cmd|' /C calc'!A0", "Ada\r=1+1", "\r=HYPERLINK(\"http://x\")", "two\r\nlines", "quote \" and, comma",
               "Lab;=HYPERLINK(\"http://x\")", 'x;"=1+1', "a\tb\t-1", "two\n+lines"]

# Any text the pipeline stores: everything but NUL (Postgres text cannot hold it) and lone surrogates.
_TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=20)
NAME = st.one_of(
    _TEXT,
    st.builds(str.__add__, st.sampled_from([*FORMULA_STARTS, " =", "'", "\n", "\r\n", '"']), _TEXT),
    st.builds(lambda a, b, c: a + b + c, _TEXT, st.sampled_from([";", "\t", "\r", "\n", ';"']),
              st.builds(str.__add__, st.sampled_from(FORMULA_STARTS), _TEXT)),
    st.sampled_from(ISSUE_CELLS),
)
STATE = NAME.filter(lambda state: state != "deleted")  # deleted courses and sections are left out of reports


def expected(text: str | None) -> str:
    if text is None:
        return ""
    inner = re.sub(r'([;\t\r\n])(?="*[=+\-@\t\r])', r"\1'", text)
    return "'" + inner if inner[:1] in FORMULA_STARTS else inner


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('files') / 'reports.db'}"
    else:
        url = request.getfixturevalue("new_pg_database")()
    engine = make_engine(url)
    upgrade(engine)
    yield engine
    engine.dispose()


_accounts = itertools.count(1000)


def run_report(engine: Engine, report: str, account_id: int) -> tuple[list[list[str]], jobs.Job]:
    """Queue, claim and run one account report; its file parsed by csv.reader, and the finished job."""
    queued = jobs.create(engine, report=report, account_id=account_id, course_id=None, token_id=1, parameters={})
    claimed = jobs.claim(engine)
    assert claimed is not None and claimed.id == queued.id
    ReportRunner(engine).run(claimed)
    done = jobs.get(engine, queued.id)
    assert done is not None and done.status == "complete", done
    data = b"".join(jobs.file_chunks(engine, queued.id))
    assert len(data) == done.file_size
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline=""), strict=True)), done


# course name, course SIS id, student name, next url, section name, section SIS id, course state, section state,
# progress error message
Entry = tuple[str, str, str, str, str, str, str, str, str]

ENTRIES = st.lists(st.tuples(NAME, NAME, NAME, NAME, NAME, NAME, STATE, STATE, NAME), min_size=1, max_size=3)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(entries=ENTRIES)
def test_every_report_file_parses_back_to_its_rows_with_formulas_neutralised(store: Engine, entries: list[Entry]) -> None:
    account = next(_accounts)
    events = []
    for number, (course_name, course_sis, student, url, section_name, section_sis, course_state, section_state,
                 error) in enumerate(entries, 1):
        course = account * 10 + number
        events.append(course_event("2019-10-28T14:02:11Z", course_id=str(course), account_id=str(account),
                                   name=course_name, sis_source_id=course_sis, workflow_state=course_state))
        progress = progress_event("2019-09-01T10:00:00Z", course_id=str(course), user_id=str(course * 10 + 1), done=1, total=4,
                                  course_name=course_name, sis_source_id=course_sis)
        progress["body"]["user"].update(name=student, email=None)
        progress["body"]["course"]["account_id"] = str(account)
        progress["body"]["progress"]["next_requirement_url"] = url
        events.append(progress)
        failed = progress_event("2019-09-01T10:00:00Z", course_id=str(course), user_id=str(course * 10 + 2), error=error,
                                course_name=course_name, sis_source_id=course_sis)
        failed["body"]["course"]["account_id"] = str(account)
        events.append(failed)
        events.append(section_event("2019-09-02T10:00:00Z", section_id=str(course * 10), course_id=str(course),
                                    name=section_name, sis_source_id=section_sis, integration_id=url,
                                    workflow_state=section_state))
    counts = apply_events(store, events)
    assert counts.rejected == 0

    for report, wanted in (
        ("course_progress_csv", lambda e: [[expected(e[0]), expected(e[1]), expected(e[2]), expected(e[3]), ""],
                                           [expected(e[0]), expected(e[1]), "Isaac Newton", "", expected(e[8])]]),
        ("course_completion_csv", lambda e: [[expected(e[0]), expected(e[1]), expected(e[6])]]),
        ("course_sections_csv", lambda e: [[expected(e[4]), expected(e[5]), expected(e[3]), expected(e[7])]]),
    ):
        rows, job = run_report(store, report, account)
        header, body = rows[0], rows[1:]
        expected_rows = [row for entry in entries for row in wanted(entry)]
        assert len(body) == job.current_line == len(expected_rows), (report, rows)
        assert all(len(row) == len(header) for row in body), (report, rows)
        cells = [dict(zip(header, row, strict=True)) for row in body]
        if report == "course_progress_csv":
            got = [[c["course name"], c["course sis id"], c["user name"], c["next requirement url"], c["progress error"]]
                   for c in cells]
            assert [c["course id"] for c in cells] == [str(account * 10 + n) for n in range(1, len(entries) + 1) for _ in "ab"]
            assert [c["requirement count"] for c in cells] == ["4", ""] * len(entries)  # numbers stay numbers
        elif report == "course_completion_csv":
            got = [[c["course name"], c["course sis id"], c["state"]] for c in cells]
        else:
            got = [[c["name"], c["section sis id"], c["integration id"], c["state"]] for c in cells]
        assert got == expected_rows, report
        data = b"".join(jobs.file_chunks(store, job.id)).decode("utf-8")
        assert formula_cells(data) == [], (report, data)
