"""course_progress_trend_csv over HTTP and through canvasapi, against `python -m consumer serve` on the seed.

The seed (tests/api/seed.py) as days: course 565 of account 79 has students 1 to 4 at 1/4 on 09-01, 2/4 on
09-15, 3/4 on 10-01 and 4/4, completed, on 10-20 (2019, UTC); course 777 has students 10 and 11 at 1/5 on
09-20 and student 12, an error body, on 09-21; course 999 one student at 3/6 on 09-24; course 778, deleted,
one student completed 2/2 on 09-22; course 900 of account 80 two students at 0/3 on 09-23. The expected
figures below are worked out from that by hand; names and SIS ids are read from `courses`.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
import requests
from canvasapi import Canvas

from tests.api.expected import parse_csv, query
from tests.api.server import until_done

pytestmark = pytest.mark.filterwarnings("ignore:Canvas may respond unexpectedly when making requests to HTTP URLs")

REPORT = "course_progress_trend_csv"
HEADER = ["course id", "course sis id", "course name", "account id", "day", "students", "completed", "completion rate",
          "mean share done"]
EMPTY_WINDOW = "0 rows written (end_at is not after start_at, so no row can match)"


def days(first: str, last: str) -> list[str]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]


def figures_565(day: str) -> tuple:
    """(students, completed, completion rate, mean share done) of course 565 at the end of `day`."""
    if day < "2019-09-15":
        return 1, 0, 0.0, 1 / 4
    if day < "2019-10-01":
        return 2, 0, 0.0, (1 / 4 + 2 / 4) / 2
    if day < "2019-10-20":
        return 3, 0, 0.0, (1 / 4 + 2 / 4 + 3 / 4) / 3
    return 4, 1, 1 / 4, (1 / 4 + 2 / 4 + 3 / 4 + 1) / 4


# course -> {day: figures}
TREND = {
    565: {day: figures_565(day) for day in days("2019-09-01", "2019-10-20")},
    777: {"2019-09-20": (2, 0, 0.0, 1 / 5), "2019-09-21": (2, 0, 0.0, 1 / 5)},  # the error body is no student
    778: {"2019-09-22": (1, 1, 1.0, 1.0)},
    900: {"2019-09-23": (2, 0, 0.0, 0.0)},
    999: {"2019-09-24": (1, 0, 0.0, 3 / 6)},
}


def expected(api, courses: tuple[int, ...], start: str = "0000", end: str = "9999") -> list[tuple]:
    names = {row[0]: row[1:] for row in query(api.database_url, "SELECT id, sis_source_id, name, account_id FROM courses")}
    return [(course, *names[course], day, *figures)
            for course in sorted(courses) for day, figures in sorted(TREND[course].items()) if start <= day <= end]


def cells(rows: list[dict[str, str]]) -> list[tuple]:
    """The CSV's rows as values: numbers parsed, an empty cell None."""
    def number(text: str):
        return None if text == "" else float(text)

    return [(int(r["course id"]), r["course sis id"], r["course name"], int(r["account id"]), r["day"], int(r["students"]),
             int(r["completed"]), number(r["completion rate"]), number(r["mean share done"])) for r in rows]


def matches(rows: list[tuple], wanted: list[tuple]) -> bool:
    return len(rows) == len(wanted) and all(
        got[:7] == want[:7] and all(g == (None if w is None else pytest.approx(w, abs=1e-4)) for g, w in zip(got[7:], want[7:], strict=True))
        for got, want in zip(rows, wanted, strict=True))


def post(api, path: str, token: str | None = None, **kwargs) -> requests.Response:
    return requests.post(api.url + path, headers=api.headers(token), timeout=10, **kwargs)


def finished(api, report_id: int, token: str | None = None) -> tuple[dict, bytes]:
    """The completed Progress, and the file it points to."""
    progress = until_done(Canvas(api.url, token or api.token), report_id)
    assert progress.workflow_state == "completed", progress.message
    response = requests.get(progress.results["file_url"], headers=api.headers(token), timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    return {"message": progress.message, "context": (progress.context_type, progress.context_id)}, response.content


def test_an_account_trend_is_every_day_of_each_live_course_of_the_account(api) -> None:
    started = post(api, f"/api/v1/accounts/79/reports/{REPORT}")
    assert started.status_code == 200, started.text
    assert started.json()["report"] == REPORT and started.json()["parameters"] == {}
    progress, body = finished(api, started.json()["id"])
    assert body.decode("utf-8").split("\r\n", 1)[0] == ",".join(HEADER)
    rows = cells(parse_csv(body))
    wanted = expected(api, (565, 777, 999))  # not 778 (deleted), not 900 (account 80)
    assert matches(rows, wanted), rows
    assert len(rows) == 50 + 2 + 1 and progress["message"] == f"{len(rows)} rows written"
    assert progress["context"] == ("Account", 79)


def test_start_at_and_end_at_are_days_both_included(api) -> None:
    # JSON; end_at as a time: 23:00 at -05:00 is 04:00 UTC on 09-21, so the last day is 09-21.
    started = post(api, f"/api/v1/accounts/79/reports/{REPORT}",
                   json={"parameters": {"start_at": "2019-09-14", "end_at": "2019-09-20T23:00:00-05:00"}})
    assert started.status_code == 200, started.text
    assert started.json()["parameters"] == {"start_at": "2019-09-14", "end_at": "2019-09-21"}
    rows = cells(parse_csv(finished(api, started.json()["id"])[1]))
    assert matches(rows, expected(api, (565, 777, 999), "2019-09-14", "2019-09-21")), rows
    assert [row[4] for row in rows if row[0] == 565] == days("2019-09-14", "2019-09-21")
    # form fields, one day, and include_deleted
    started = post(api, f"/api/v1/accounts/79/reports/{REPORT}",
                   data={"parameters[start_at]": "2019-09-22", "parameters[end_at]": "2019-09-22",
                         "parameters[include_deleted]": "true"})
    rows = cells(parse_csv(finished(api, started.json()["id"])[1]))
    assert matches(rows, expected(api, (565, 778), "2019-09-22", "2019-09-22")), rows


def test_a_course_trend_and_the_callers_last(api) -> None:
    started = post(api, f"/api/v1/courses/777/reports/{REPORT}", data={"parameters[start_at]": "2019-09-21"})
    assert started.status_code == 200, started.text
    progress, body = finished(api, started.json()["id"])
    assert progress["context"] == ("Course", 777)
    assert matches(cells(parse_csv(body)), expected(api, (777,), "2019-09-21"))
    last = requests.get(f"{api.url}/api/v1/courses/777/reports/{REPORT}", headers=api.headers(), timeout=10).json()
    assert last["id"] == started.json()["id"] and last["status"] == "complete"


def test_another_account_gets_its_own_courses_only(api) -> None:
    started = post(api, f"/api/v1/accounts/80/reports/{REPORT}", token=api.other_token)
    assert started.status_code == 200, started.text
    rows = cells(parse_csv(finished(api, started.json()["id"], api.other_token)[1]))
    assert matches(rows, expected(api, (900,))), rows
    # account 79's courses are not there to be named
    assert post(api, f"/api/v1/courses/565/reports/{REPORT}", token=api.other_token).status_code == 404
    refused = post(api, f"/api/v1/accounts/80/reports/{REPORT}", token=api.other_token, data={"parameters[course_id]": "565"})
    assert refused.status_code == 404 and refused.json()["errors"][0]["message"] == "parameters[course_id]: no course 565 in account 80"


def test_a_window_ending_before_it_starts_is_an_empty_file_that_says_why(api) -> None:
    started = post(api, f"/api/v1/accounts/79/reports/{REPORT}",
                   json={"parameters": {"start_at": "2019-09-21", "end_at": "2019-09-20"}})
    assert started.status_code == 200, started.text
    progress, body = finished(api, started.json()["id"])
    assert parse_csv(body) == [] and body.decode("utf-8") == ",".join(HEADER) + "\r\n"
    assert progress["message"] == EMPTY_WINDOW


@pytest.mark.parametrize(("fields", "named", "reason"), [
    ({"parameters[start_at]": "2019-09-31"}, "start_at", "is not a day"),
    ({"parameters[end_at]": "last tuesday"}, "end_at", "is not a day"),
    ({"parameters[end_at]": "2019-09-20+02:00"}, "end_at", "is a date with a UTC offset but no time"),
    ({"parameters[since]": "2019-09-20"}, "since", "not a parameter of course_progress_trend_csv"),
])
def test_a_bad_day_is_400_naming_the_parameter_and_the_value(api, fields: dict, named: str, reason: str) -> None:
    response = post(api, f"/api/v1/accounts/79/reports/{REPORT}", data=fields)
    assert response.status_code == 400, response.text
    (error,) = response.json()["errors"]
    assert error["message"].startswith(f"parameters[{named}]: {reason}"), error["message"]
    assert repr(next(iter(fields.values()))) in error["message"]


def test_canvasapi_scripts_pull_a_trend(api) -> None:
    canvas = Canvas(api.url, api.token)
    account = canvas.get_account(79)
    available = {report.report: report for report in account.get_reports()}
    assert set(available[REPORT].parameters) == {"include_deleted", "course_id", "start_at", "end_at"}
    assert "first day included" in available[REPORT].parameters["start_at"]["description"]

    # canvasapi sends a datetime as its isoformat (no offset: UTC) and a date as YYYY-MM-DD
    created = account.create_report(REPORT, parameters={"course_id": 565, "start_at": date(2019, 10, 19),
                                                        "end_at": datetime(2019, 10, 20, 12, 0)})
    assert created.status == "created" and created.report == REPORT
    assert created.parameters == {"course_id": 565, "start_at": "2019-10-19", "end_at": "2019-10-20"}
    progress = until_done(canvas, created.id)
    assert progress.workflow_state == "completed" and progress.completion == 100
    report = account.get_report(REPORT, created.id)
    assert report.status == "complete" and report.current_line == 2
    response = requests.get(report.file_url, headers=api.headers(), timeout=10)
    rows = cells(parse_csv(response.content))
    assert matches(rows, expected(api, (565,), "2019-10-19", "2019-10-20")), rows
    assert [row[5:7] for row in rows] == [(3, 0), (4, 1)]  # the completion on 10-20
    assert created.id in [r.id for r in account.get_index_of_reports(REPORT)]
