"""`/readyz` is unauthenticated: it answers the status only, and the database's error goes to the log (issue 11, item 9)."""

from __future__ import annotations

import requests
from sqlalchemy import create_engine, make_url, text

from tests.api.server import ApiServer
from tests.helpers import wait_until

PASSWORD = "pw-not-to-be-shown"  # trust authentication ignores it; the URL carries it all the same


def test_readyz_names_no_host_port_or_database_when_the_database_is_gone(new_pg_database, tmp_path) -> None:
    url = make_url(new_pg_database()).set(password=PASSWORD)
    database = url.database
    server = ApiServer(url.render_as_string(hide_password=False), tmp_path / "serve.log").start()
    try:
        ready = requests.get(f"{server.url}/readyz", timeout=10)
        assert (ready.status_code, ready.json()) == (200, {"status": "ok"})
        admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{database}" WITH (FORCE)'))
        admin.dispose()

        for _ in range(3):
            answer = requests.get(f"{server.url}/readyz", timeout=30)
            assert answer.status_code == 503
            assert answer.json() == {"status": "unavailable"}
            for secret in (database, str(url.host), str(url.port), PASSWORD, "postgres"):
                assert secret not in answer.text, secret
        # The operator's log has the reason, once (probes come every few seconds), without the password.
        wait_until(lambda: "readiness check failed" in server.log.read_text(), 10, "the readiness log line")
        (line,) = [line for line in server.log_lines() if line["message"].startswith("readiness check failed")]
        assert database in line["message"], line
    finally:
        server.stop()
    assert PASSWORD not in server.log.read_text()
