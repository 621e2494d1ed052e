"""The report queue through `serve` (issue 11, item 3): the per-account job limit, and report file retention."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
import requests
from sqlalchemy import create_engine, insert, select, update

from consumer.store.tables import report_file_chunks, reports
from tests.api.seed import seeded
from tests.api.server import ApiServer, create_token
from tests.helpers import wait_until

LIMIT = 2


def add_job(database_url: str, account_id: int, status: str, *, ended_days_ago: float | None = None,
            chunks: tuple[bytes, ...] = ()) -> int:
    """A report job as another server would have left it (running: with a fresh heartbeat)."""
    moment = datetime.now(timezone.utc)
    ended = None if ended_days_ago is None else moment - timedelta(days=ended_days_ago)
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            job_id = connection.execute(insert(reports).values(
                report="course_completion_csv", account_id=account_id, token_id=1, parameters={}, status=status,
                created_at=ended or moment, updated_at=ended or moment, started_at=ended or moment,
                ended_at=ended, heartbeat_at=moment, current_line=1, progress=100 if ended else 50,
                file_name=f"course_completion_csv_account_{account_id}_x.csv" if chunks else None,
                file_size=sum(map(len, chunks)) if chunks else None,
            ).returning(reports.c.id)).scalar_one()
            for seq, data in enumerate(chunks):
                connection.execute(insert(report_file_chunks).values(report_id=job_id, seq=seq, data=data))
        return job_id
    finally:
        engine.dispose()


def set_status(database_url: str, job_id: int, status: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(update(reports).where(reports.c.id == job_id).values(status=status))
    finally:
        engine.dispose()


def status_of(database_url: str, job_id: int) -> str:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(select(reports.c.status).where(reports.c.id == job_id)).scalar_one()
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def limited(new_pg_database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, str, str]]:
    """A server with REPORT_JOBS_PER_ACCOUNT=2 (from the environment, as a deployment sets it)."""
    url = seeded(new_pg_database())
    server = ApiServer(url, tmp_path_factory.mktemp("limits") / "serve.log", "--report-lease", "3600",
                       env={"REPORT_JOBS_PER_ACCOUNT": str(LIMIT)}).start()
    try:
        yield server, create_token(url, 79), create_token(url, 80)
    finally:
        server.stop()


def test_above_the_limit_a_new_report_gets_429_with_retry_after_in_canvas_shape(limited) -> None:
    server, token, other_token = limited
    busy = [add_job(server.database_url, 79, "running") for _ in range(LIMIT)]  # running on "another server"
    auth = {"Authorization": f"Bearer {token}"}
    for path in ("/api/v1/accounts/79/reports/course_progress_csv", "/api/v1/courses/565/reports/course_sections_csv"):
        refused = requests.post(server.url + path, headers=auth, timeout=10)
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["Retry-After"]) > 0
        assert refused.json() == {"errors": [{"message": (
            f"account 79 already has {LIMIT} report jobs queued or running, the most it may have "
            f"(REPORT_JOBS_PER_ACCOUNT={LIMIT}); start this one after one of them has finished, or abort one")}]}

    other = requests.post(f"{server.url}/api/v1/accounts/80/reports/course_completion_csv",
                          headers={"Authorization": f"Bearer {other_token}"}, timeout=10)
    assert other.status_code == 200, other.text  # the limit is per account

    set_status(server.database_url, busy[0], "complete")
    freed = requests.post(f"{server.url}/api/v1/accounts/79/reports/course_completion_csv", headers=auth, timeout=10)
    assert freed.status_code == 200, freed.text
    for job_id in busy[1:]:
        set_status(server.database_url, job_id, "error")


def test_the_openapi_document_declares_the_429_where_reports_start(limited) -> None:
    server, _, _ = limited
    paths = requests.get(f"{server.url}/openapi.json", timeout=10).json()["paths"]
    for path in ("/api/v1/accounts/{account_id}/reports/{report}", "/api/v1/courses/{course_id}/reports/{report_type}"):
        assert "Retry-After" in paths[path]["post"]["responses"]["429"]["headers"]


def test_report_files_past_the_retention_are_deleted_when_the_server_starts(new_pg_database, tmp_path) -> None:
    url = seeded(new_pg_database())
    expired = add_job(url, 79, "complete", ended_days_ago=3.01, chunks=(b"course id\r\n", b"565\r\n"))
    kept = add_job(url, 79, "complete", ended_days_ago=2.99, chunks=(b"course id\r\n",))
    token = create_token(url, 79)
    server = ApiServer(url, tmp_path / "serve.log", "--report-retention-days", "3").start()
    try:
        wait_until(lambda: status_of(url, expired) == "deleted", 30, "the expired report to be deleted")
        auth = {"Authorization": f"Bearer {token}"}
        for path in (f"/files/{expired}/download", f"/api/v1/accounts/79/reports/course_completion_csv/{expired}",
                     f"/api/v1/progress/{expired}"):
            assert requests.get(server.url + path, headers=auth, timeout=10).status_code == 404, path
        listed = requests.get(f"{server.url}/api/v1/accounts/79/reports/course_completion_csv", headers=auth, timeout=10).json()
        assert expired not in [r["id"] for r in listed] and kept in [r["id"] for r in listed]
        download = requests.get(f"{server.url}/files/{kept}/download", headers=auth, timeout=10)
        assert download.status_code == 200 and download.content == b"course id\r\n"

        deadline = time.monotonic() + 10
        while not any("report retention" in line.get("message", "") for line in server.log_lines()):
            assert time.monotonic() < deadline, "no retention log line"
            time.sleep(0.1)
        swept = [line["message"] for line in server.log_lines() if "report retention" in line.get("message", "")]
        assert swept[0] == "report retention: deleted 1 report(s) and their files, finished more than 3 days ago (REPORT_RETENTION_DAYS)"
    finally:
        server.stop()
