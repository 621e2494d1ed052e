"""The real `canvasapi` client against `python -m consumer serve`: the issue's end-to-end flow."""

from __future__ import annotations

import warnings

import pytest
import requests
from canvasapi import Canvas
from canvasapi.account import Account
from canvasapi.exceptions import ResourceDoesNotExist

from tests.api.expected import csv_progress_keys, parse_csv, progress_keys, query
from tests.api.server import until_done

warnings.filterwarnings("ignore", message="Canvas may respond unexpectedly when making requests to HTTP URLs")


def client(api, token: str | None = None) -> tuple[Canvas, Account]:
    canvas = Canvas(api.url, token or api.token)
    return canvas, canvas.get_account(79)  # as a script written for Canvas would


def download(api, url: str) -> bytes:
    response = requests.get(url, headers=api.headers(), timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return response.content


@pytest.mark.parametrize("report", ["course_progress_csv", "course_completion_csv", "course_sections_csv"])
def test_each_report_is_created_followed_to_completed_and_downloaded(api, report: str) -> None:
    canvas, account = client(api)
    created = account.create_report(report)
    assert created.status == "created" and created.report == report and created.file_url is None

    progress = until_done(canvas, created.id)
    assert progress.workflow_state == "completed" and progress.completion == 100
    assert (progress.context_type, progress.context_id, progress.tag) == ("Account", 79, "account_report")

    finished = account.get_report(report, created.id)
    assert finished.status == "complete" and finished.progress == 100 and finished.started_at and finished.ended_at
    assert progress.results["file_url"] == finished.file_url == finished.attachment["url"]
    rows = parse_csv(download(api, finished.file_url))
    assert finished.current_line == len(rows)
    assert finished.attachment["size"] == len(download(api, finished.file_url))

    if report == "course_progress_csv":
        assert csv_progress_keys(rows) == progress_keys(api.database_url, 79)
    elif report == "course_completion_csv":
        expected = query(api.database_url, "SELECT course_id, students, completed FROM course_completion "
                                           "WHERE account_id = 79 AND COALESCE(workflow_state, '') <> 'deleted' ORDER BY course_id")
        assert [(int(r["course id"]), int(r["students"]), int(r["completed"])) for r in rows] == expected
        assert expected == [(565, 4, 1), (777, 2, 0), (999, 1, 0)]
    else:
        expected = query(api.database_url, "SELECT s.id, s.course_id, s.name FROM course_sections s JOIN courses c "
                                           "ON c.id = s.course_id WHERE c.account_id = 79 AND s.workflow_state <> 'deleted' "
                                           "AND c.workflow_state <> 'deleted' ORDER BY s.course_id, s.id")
        assert [(int(r["section id"]), int(r["course id"]), r["name"]) for r in rows] == expected
        assert [row[0] for row in expected] == [1021, 2001]


def test_parameters_arrive_as_form_fields_from_canvasapi(api) -> None:
    canvas, account = client(api)
    created = account.create_report("course_progress_csv", parameters={"course_id": 565, "start_at": "2019-09-10T00:00:00Z",
                                                                        "end_at": "2019-10-15T00:00:00-00:00"})
    assert created.parameters == {"course_id": 565, "start_at": "2019-09-10T00:00:00Z", "end_at": "2019-10-15T00:00:00Z"}
    until_done(canvas, created.id)
    rows = parse_csv(download(api, account.get_report("course_progress_csv", created.id).file_url))
    assert [(r["course id"], r["user id"]) for r in rows] == [("565", "2"), ("565", "3")]


def test_list_available_reports_and_index_of_a_type(api) -> None:
    canvas, account = client(api)
    available = {r.report: r for r in account.get_reports()}
    assert set(available) == {"course_progress_csv", "course_completion_csv", "course_sections_csv", "course_progress_trend_csv"}
    assert set(available["course_progress_csv"].parameters) == {"include_deleted", "course_id", "start_at", "end_at"}

    ids = [account.create_report("course_sections_csv").id for _ in range(3)]
    for report_id in ids:
        until_done(canvas, report_id)
    listed = [r.id for r in account.get_index_of_reports("course_sections_csv", per_page=2)]  # followed across pages
    assert listed[:3] == sorted(ids, reverse=True) and len(listed) == len(set(listed))
    assert all(r.account_id == 79 for r in account.get_index_of_reports("course_sections_csv"))
    assert {r.report: r for r in account.get_reports()}["course_sections_csv"].last_run["id"] == max(ids)


def test_delete_a_report(api) -> None:
    canvas, account = client(api)
    report = account.create_report("course_completion_csv")
    until_done(canvas, report.id)
    file_url = account.get_report("course_completion_csv", report.id).file_url
    assert report.delete_report().status == "deleted"
    with pytest.raises(ResourceDoesNotExist):
        account.get_report("course_completion_csv", report.id)
    with pytest.raises(ResourceDoesNotExist):
        canvas.get_progress(report.id)
    assert requests.get(file_url, headers=api.headers(), timeout=10).status_code == 404
    assert report.id not in [r.id for r in account.get_index_of_reports("course_completion_csv")]
    assert query(api.database_url, "SELECT count(*) FROM report_file_chunks WHERE report_id = :id", id=report.id) == [(0,)]


def test_accounts_and_courses_answer_as_canvas_scripts_expect(api) -> None:
    canvas, account = client(api)
    assert (account.id, account.workflow_state) == (79, "active")
    assert [a.id for a in canvas.get_accounts()] == [79]
    course = canvas.get_course(565)
    stored = query(api.database_url, "SELECT id, name, account_id, sis_source_id FROM courses WHERE id = 565")
    assert [(course.id, course.name, course.account_id, course.sis_course_id)] == stored
    with pytest.raises(ResourceDoesNotExist):
        canvas.get_course(900)  # account 80's
    with pytest.raises(ResourceDoesNotExist):
        canvas.get_account(80)
