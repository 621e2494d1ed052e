"""Hostile names end to end (issue 11, items 1 and 2): events replayed by the CLI, reports run and downloaded from `serve`.

Every report file must parse with `csv.reader` into exactly the header plus the
Report's `current_line` rows, and each text cell that a spreadsheet would run
as a formula (starting with = + - @ tab or CR) must arrive with a leading `'`;
ids and numbers stay as they are.
"""

from __future__ import annotations

import csv
import io
import json
import os
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

ACCOUNT = 91
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

# course id -> (course name, course SIS id); user id -> (course id, name, next requirement url); section id -> (course id, name, SIS id)
COURSES = {
    4001: ('=HYPERLINK("http://x","y")', "@SUM(1+1)*cmd|' /C calc'!A0"),
    4002: ("Ada\r=1+1", "-2+3"),
    4003: ("Plain Course, with \"quotes\"", "SIS-4003"),
}
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
}


def expected(text: str | None) -> str:
    if text is None:
        return ""
    return "'" + text if text[:1] in FORMULA_STARTS else text


def hostile_events() -> list[dict]:
    events = []
    for course, (name, sis) in COURSES.items():
        events.append(course_event("2019-10-28T14:02:11Z", course_id=str(course), account_id=str(ACCOUNT), name=name,
                                   sis_source_id=sis))
    for user, (course, name, url) in STUDENTS.items():
        event = progress_event("2019-09-01T10:00:00Z", course_id=str(course), user_id=str(user), done=1, total=3,
                               course_name=COURSES[course][0], sis_source_id=COURSES[course][1])
        event["body"]["user"].update(name=name, email=None)
        event["body"]["course"]["account_id"] = str(ACCOUNT)
        event["body"]["progress"]["next_requirement_url"] = url
        events.append(event)
    for section, (course, name, sis) in SECTIONS.items():
        events.append(section_event("2019-09-02T10:00:00Z", section_id=str(section), course_id=str(course), name=name,
                                    sis_source_id=sis))
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
    rows = list(csv.reader(io.StringIO(body.content.decode("utf-8"), newline=""), strict=True))
    return rows, done


def records(rows: list[list[str]]) -> list[dict[str, str]]:
    header = rows[0]
    assert all(len(row) == len(header) for row in rows[1:]), rows
    return [dict(zip(header, row, strict=True)) for row in rows[1:]]


def test_progress_report_cells_are_neutralised_and_the_file_has_current_line_rows(hostile) -> None:
    rows, report = download(*hostile, "course_progress_csv")
    assert len(rows) - 1 == report["current_line"] == len(STUDENTS)
    got = {int(r["user id"]): (int(r["course id"]), r["course name"], r["course sis id"], r["user name"], r["next requirement url"],
                               r["requirement count"]) for r in records(rows)}
    assert got == {
        user: (course, expected(COURSES[course][0]), expected(COURSES[course][1]), expected(name), expected(url), "3")
        for user, (course, name, url) in STUDENTS.items()
    }


def test_completion_report_cells_are_neutralised_and_the_file_has_current_line_rows(hostile) -> None:
    rows, report = download(*hostile, "course_completion_csv")
    assert len(rows) - 1 == report["current_line"] == len(COURSES)
    got = {int(r["course id"]): (r["course name"], r["course sis id"], r["account id"]) for r in records(rows)}
    assert got == {course: (expected(name), expected(sis), str(ACCOUNT)) for course, (name, sis) in COURSES.items()}


def test_sections_report_cells_are_neutralised_and_the_file_has_current_line_rows(hostile) -> None:
    rows, report = download(*hostile, "course_sections_csv")
    assert len(rows) - 1 == report["current_line"] == len(SECTIONS)
    got = {int(r["section id"]): (int(r["course id"]), r["name"], r["section sis id"]) for r in records(rows)}
    assert got == {section: (course, expected(name), expected(sis)) for section, (course, name, sis) in SECTIONS.items()}

