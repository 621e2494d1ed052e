"""The database going away while a report runs: the runner lives on (a real server, a real Postgres).

The failed report's end cannot be recorded while the database is away. That
used to kill the runner thread: the report stayed `running` and every report
queued after it stayed `queued`, while /readyz said ready again.
"""

from __future__ import annotations

import time

import requests
from sqlalchemy import create_engine, text

from tests.api.seed import seeded
from tests.api.server import ApiServer, create_token
from tests.helpers import wait_until

BIG_ACCOUNT, BIG_COURSE, BIG_ROWS = 81, 5000, 400_000


def big(url: str) -> str:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO courses (id, account_id, name, workflow_state) "
                                "VALUES (:course, :account, 'Big Course', 'available')"),
                           {"course": BIG_COURSE, "account": BIG_ACCOUNT})
        connection.execute(text(
            "INSERT INTO course_progress (course_id, user_id, requirement_count, requirement_completed_count, "
            "is_completed, last_event_name, last_event_time) SELECT :course, g, 10, g % 11, g % 11 = 10, 'course_progress', "
            "timestamptz '2019-09-01 00:00:00+00' + g * interval '1 second' FROM generate_series(1, :rows) AS g"
        ), {"course": BIG_COURSE, "rows": BIG_ROWS})
    engine.dispose()
    return url


def test_a_report_cut_off_by_a_database_outage_fails_and_the_next_ones_run(new_pg_database, tmp_path) -> None:
    url = big(seeded(new_pg_database()))
    database = url.rsplit("/", 1)[1]
    server = ApiServer(url, tmp_path / "serve.log", "--report-lease", "2").start()
    headers = {"Authorization": f"Bearer {create_token(url, BIG_ACCOUNT)}"}
    small_headers = {"Authorization": f"Bearer {create_token(url, 79)}"}
    admin = create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")

    def progress(report_id: int, auth: dict[str, str]) -> dict:
        return requests.get(f"{server.url}/api/v1/progress/{report_id}", headers=auth, timeout=30).json()

    try:
        cut = requests.post(f"{server.url}/api/v1/accounts/{BIG_ACCOUNT}/reports/course_progress_csv", headers=headers,
                            timeout=10).json()["id"]
        wait_until(lambda: progress(cut, headers)["workflow_state"] == "running", 30, "the big report to start")
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false'))
            connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                    "WHERE datname = :db AND pid <> pg_backend_pid()"), {"db": database})
        time.sleep(2)  # the runner's query, and its attempt to record the failure, meet the outage
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true'))

        after = requests.post(f"{server.url}/api/v1/accounts/79/reports/course_completion_csv", headers=small_headers,
                              timeout=30).json()["id"]
        wait_until(lambda: progress(after, small_headers)["workflow_state"] == "completed", 30,
                   "a report queued after the outage to run")
        wait_until(lambda: progress(cut, headers)["workflow_state"] == "failed", 30, "the cut-off report to end failed")
        message = progress(cut, headers)["message"]
        for leak in ("127.0.0.1", "5432", database, "SELECT", "[SQL"):
            assert leak not in message, (leak, message)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true'))
        admin.dispose()
        server.stop()
    assert "Exception in thread" not in server.log.read_text()
