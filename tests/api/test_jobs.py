"""Report jobs: abort and cancel stop a long report within about a second; a restart loses nothing; SQLite works too."""

from __future__ import annotations

import signal
import time

import pytest
import requests
from canvasapi import Canvas
from canvasapi.account import Account
from sqlalchemy import create_engine, text

from tests.api.expected import csv_progress_keys, parse_csv, progress_keys
from tests.api.seed import seeded
from tests.api.server import ApiServer, create_token, until_done
from tests.helpers import wait_until

BIG_ACCOUNT, BIG_COURSE, BIG_ROWS = 81, 5000, 100_000


@pytest.fixture(scope="module")
def big_database(new_pg_database) -> str:
    """The seeded database plus one course in account 81 with 100,000 students: a report of a hundred chunks
    (a chunk is 1,000 lines), still running when a test stops it after the first."""
    url = seeded(new_pg_database())
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO courses (id, account_id, name, workflow_state) VALUES (:course, :account, 'Big Course', 'available')"
        ), {"course": BIG_COURSE, "account": BIG_ACCOUNT})
        connection.execute(text(
            "INSERT INTO course_progress (course_id, user_id, requirement_count, requirement_completed_count, "
            "is_completed, last_event_name, last_event_time) "
            "SELECT :course, g, 10, g % 11, g % 11 = 10, 'course_progress', "
            "timestamptz '2019-09-01 00:00:00+00' + g * interval '1 second' FROM generate_series(1, :rows) AS g"
        ), {"course": BIG_COURSE, "rows": BIG_ROWS})
    engine.dispose()
    return url


def report_row(database_url: str, report_id: int) -> dict:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            row = connection.execute(text("SELECT status, message, current_line, "
                                          "(SELECT count(*) FROM report_file_chunks WHERE report_id = :id) AS chunks "
                                          "FROM reports WHERE id = :id"), {"id": report_id}).one()
        return dict(row._mapping)
    finally:
        engine.dispose()


def start_big_report(server: ApiServer, token: str, report: str = "course_progress_csv") -> int:
    """Start a report of the big account: course_progress_csv is long (BIG_ROWS lines); course_sections_csv is empty, done at once."""
    response = requests.post(f"{server.url}/api/v1/accounts/{BIG_ACCOUNT}/reports/{report}",
                             headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["id"]


def wait_running(database_url: str, report_id: int) -> None:
    wait_until(lambda: report_row(database_url, report_id)["current_line"] > 0, 30, f"report {report_id} to be writing")


def test_abort_and_cancel_stop_a_long_report_within_a_second(big_database: str, tmp_path) -> None:
    server = ApiServer(big_database, tmp_path / "serve.log").start()
    try:
        token = create_token(big_database, BIG_ACCOUNT)
        canvas = Canvas(server.url, token)
        requester = canvas._Canvas__requester

        # canvasapi has no abort call; its requester sends the documented PUT.
        aborted = start_big_report(server, token)
        wait_running(big_database, aborted)
        asked = time.monotonic()
        response = requester.request("PUT", f"accounts/{BIG_ACCOUNT}/reports/course_progress_csv/{aborted}/abort")
        assert response.json()["status"] == "aborted"
        lines = report_row(big_database, aborted)["current_line"]
        assert 0 < lines < BIG_ROWS
        progress = canvas.get_progress(aborted)
        assert progress.workflow_state == "failed"
        # the runner notices at its next flush: the file is dropped and the next job starts
        wait_until(lambda: report_row(big_database, aborted)["chunks"] == 0, 5, "the aborted report's file to be dropped")
        stopped_after = time.monotonic() - asked
        # "within about a second"; the slack is for a loaded CI machine (`python -m benchmarks bi` measures the figure)
        assert stopped_after < 3, f"abort took {stopped_after:.2f}s"
        time.sleep(0.5)
        assert report_row(big_database, aborted)["current_line"] == lines  # nothing more was written

        cancelled = start_big_report(server, token)
        wait_running(big_database, cancelled)
        running = requests.get(f"{server.url}/api/v1/progress/{cancelled}", headers={"Authorization": f"Bearer {token}"},
                               timeout=10).json()
        assert running["workflow_state"] == "running" and 0 <= running["completion"] < 100
        assert "results" not in running  # omitted while the job is pending
        response = requests.post(f"{server.url}/api/v1/progress/{cancelled}/cancel", data={"message": "wrong account"},
                                 headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert (response.json()["workflow_state"], response.json()["message"]) == ("failed", "wrong account")
        wait_until(lambda: report_row(big_database, cancelled)["chunks"] == 0, 3, "the cancelled report to stop")
        assert report_row(big_database, cancelled)["status"] == "aborted"

        # and a long report left alone completes, with every row
        done = start_big_report(server, token)
        progress = until_done(canvas, done, timeout=120)
        assert progress.workflow_state == "completed"
        body = requests.get(progress.results["file_url"], headers={"Authorization": f"Bearer {token}"}, timeout=60).content
        assert body.count(b"\n") == BIG_ROWS + 1
    finally:
        server.stop()


def test_a_restart_runs_queued_reports_and_fails_the_running_one(big_database: str, tmp_path) -> None:
    log = tmp_path / "serve.log"
    first = ApiServer(big_database, log, "--report-lease", "2").start()
    token = create_token(big_database, BIG_ACCOUNT)
    running = start_big_report(first, token)
    wait_running(big_database, running)
    queued = [start_big_report(first, token, "course_sections_csv") for _ in range(2)]  # behind it (one runner thread)
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL  # no chance to clean up
    assert report_row(big_database, running)["status"] == "running"
    assert [report_row(big_database, q)["status"] for q in queued] == ["created", "created"]

    second = ApiServer(big_database, log, "--report-lease", "2").start()
    try:
        canvas = Canvas(second.url, token)
        lost = until_done(canvas, running, timeout=30)
        assert lost.workflow_state == "failed" and "stopped before it finished" in lost.message
        assert report_row(big_database, running)["chunks"] == 0
        for report_id in queued:
            assert until_done(canvas, report_id, timeout=120).workflow_state == "completed"
    finally:
        second.stop()


def test_a_graceful_shutdown_fails_the_running_report_with_a_message(big_database: str, tmp_path) -> None:
    server = ApiServer(big_database, tmp_path / "serve.log").start()
    token = create_token(big_database, BIG_ACCOUNT)
    running = start_big_report(server, token)
    wait_running(big_database, running)
    assert server.stop(signal.SIGTERM) == 0
    row = report_row(big_database, running)
    assert row["status"] == "error" and "shut down" in row["message"] and row["chunks"] == 0


def test_the_embedded_sqlite_default_serves_reports(tmp_path) -> None:
    url = seeded(f"sqlite:///{tmp_path / 'progress.db'}")
    server = ApiServer(url, tmp_path / "serve.log", "--report-workers", "2").start()
    try:
        token = create_token(url, 79)
        canvas = Canvas(server.url, token)
        account = Account(canvas._Canvas__requester, {"id": 79})
        report = account.create_report("course_progress_csv", parameters={"include_deleted": False})
        progress = until_done(canvas, report.id)
        assert progress.workflow_state == "completed"
        rows = parse_csv(requests.get(progress.results["file_url"], headers={"Authorization": f"Bearer {token}"},
                                      timeout=10).content)
        assert csv_progress_keys(rows) == progress_keys(url, 79)
        course = requests.post(f"{server.url}/api/v1/courses/777/reports/course_completion_csv",
                               headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
        assert until_done(canvas, course["id"]).workflow_state == "completed"
        assert report.delete_report().status == "deleted"
        # two runner threads and the API threads share the file: every report completes, nothing is logged as failed
        burst = [account.create_report(name).id for name in ("course_sections_csv", "course_completion_csv") * 4]
        assert {until_done(canvas, report_id).workflow_state for report_id in burst} == {"completed"}
    finally:
        server.stop()
    assert [line for line in server.log_lines() if line.get("level") in ("ERROR", "CRITICAL")] == []


def test_public_url_is_what_clients_are_sent(tmp_path) -> None:
    url = seeded(f"sqlite:///{tmp_path / 'progress.db'}")
    server = ApiServer(url, tmp_path / "serve.log", "--public-url", "https://reports.example.edu/").start()
    try:
        headers = {"Authorization": f"Bearer {create_token(url, 79)}"}
        report = requests.post(f"{server.url}/api/v1/accounts/79/reports/course_sections_csv", headers=headers, timeout=10).json()
        assert report["progress_url"] == f"https://reports.example.edu/api/v1/progress/{report['id']}"
        listing = requests.get(f"{server.url}/api/v1/accounts/79/reports/course_sections_csv", headers=headers,
                               params={"per_page": 1}, timeout=10)
        assert all(link["url"].startswith("https://reports.example.edu/api/v1/accounts/79/reports/course_sections_csv?")
                   for link in requests.utils.parse_header_links(listing.headers["Link"]))
        wait_until(lambda: requests.get(f"{server.url}/api/v1/progress/{report['id']}", headers=headers,
                                        timeout=10).json()["workflow_state"] == "completed", 10, "the report")
        progress = requests.get(f"{server.url}/api/v1/progress/{report['id']}", headers=headers, timeout=10).json()
        assert progress["results"]["file_url"] == f"https://reports.example.edu/files/{report['id']}/download"
    finally:
        server.stop()


def test_while_the_database_is_down_requests_get_503_and_reports_resume_after(new_pg_database, tmp_path) -> None:
    url = seeded(new_pg_database())
    database = url.rsplit("/", 1)[1]
    server = ApiServer(url, tmp_path / "serve.log").start()
    token = create_token(url, 79)
    headers = {"Authorization": f"Bearer {token}"}
    admin = create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false'))
            connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                    "WHERE datname = :db AND pid <> pg_backend_pid()"), {"db": database})
        down = requests.post(f"{server.url}/api/v1/accounts/79/reports/course_completion_csv", headers=headers, timeout=30)
        assert down.status_code == 503, down.text
        assert down.json() == {"errors": [{"message": "the database is unavailable; try again shortly"}]}
        assert down.headers["retry-after"] == "5"
        assert requests.get(f"{server.url}/readyz", timeout=30).status_code == 503
        wait_until(lambda: any("report runner cannot reach the database" in line.get("message", "") for line in server.log_lines()),
                   30, "the runner's failed poll to be logged")  # logged, not fatal
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true'))
        assert requests.get(f"{server.url}/readyz", timeout=30).status_code == 200
        report = requests.post(f"{server.url}/api/v1/accounts/79/reports/course_completion_csv", headers=headers,
                               timeout=30).json()
        assert until_done(Canvas(server.url, token), report["id"]).workflow_state == "completed"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true'))
        admin.dispose()
        server.stop()
    messages = [line.get("message", "") for line in server.log_lines()]
    assert any("database unavailable on POST" in m for m in messages)
    assert any("report runner cannot reach the database" in m for m in messages)
