"""`bi-role` on real Postgres: role names are data, never SQL; running it again never takes a login's password away.

Passwords are checked by logging in: the module starts a cluster of its own
whose pg_hba.conf asks for scram-sha-256 (the shared test server trusts everyone).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql
from sqlalchemy import create_engine, text

from consumer.store.bi import ROLE, grant_bi_reader
from consumer.store.engine import make_engine
from consumer.store.migrate import upgrade
from tests.pg_cluster import ThrowawayCluster

HOSTILE = ["a$$b", 'x"; DROP ROLE {sentinel}; --', "$$; DROP TABLE courses; $$", "$$ BEGIN DROP TABLE courses; END $$",
           "o'neil", "Mixed Case", '"quoted"', "$tag$", "tab\there", "back\\slash", "%(name)s %s"]


class PasswordCluster(ThrowawayCluster):
    """A throwaway cluster where every role but postgres logs in over TCP with its password.

    It logs every DDL statement to `self.log`, as clusters audited for role changes do.
    """

    def start(self) -> str:
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8")
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
        )
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c log_statement=ddl"
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def log(self) -> Path:
        return self.root / "log"


@pytest.fixture(scope="module")
def password_cluster():
    cluster = PasswordCluster()
    try:
        admin = create_engine(cluster.start(), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text("CREATE DATABASE tracker"))
        admin.dispose()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def password_database(password_cluster):
    url = f"postgresql+psycopg://postgres@127.0.0.1:{password_cluster.port}/tracker"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return password_cluster.port, url


def logs_in(port: int, user: str, password: str) -> bool:
    try:
        with psycopg.connect(host="127.0.0.1", port=port, dbname="tracker", user=user, password=password, connect_timeout=10) as connection:
            return connection.execute("SELECT count(*) FROM course_completion").fetchone() == (0,)
    except psycopg.OperationalError as error:
        assert "password authentication failed" in str(error), error
        return False


def bi_role(url: str, login: str, password: str | None) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key not in ("BI_PASSWORD", "DATABASE_URL")}
    if password is not None:
        environment["BI_PASSWORD"] = password
    return subprocess.run([sys.executable, "-m", "consumer", "bi-role", "--login", login, "--database-url", url],
                          env=environment, capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent)


@pytest.mark.parametrize("password", ["first-Pa55", "it's $$ \\ \"quoted\" $$", "x'; DROP TABLE courses; --", "ünïcødé ☃"])
def test_running_again_without_bi_password_keeps_the_login_s_password(password_database, password):
    port, url = password_database
    login = f"bi_{uuid.uuid4().hex[:8]}"
    created = bi_role(url, login, password)
    assert created.returncode == 0, created.stderr
    assert password not in created.stdout + created.stderr
    assert logs_in(port, login, password) and not logs_in(port, login, password + "x")
    again = bi_role(url, login, None)
    assert again.returncode == 0, again.stderr
    assert "PASSWORD" not in again.stdout  # nothing about the password was run
    assert logs_in(port, login, password)
    changed = bi_role(url, login, "second-Pa55")  # with BI_PASSWORD: the password is set (rotation)
    assert changed.returncode == 0, changed.stderr
    assert logs_in(port, login, "second-Pa55") and not logs_in(port, login, password)
    with psycopg.connect(host="127.0.0.1", port=port, dbname="tracker", user="postgres") as connection:
        assert connection.execute("SELECT to_regclass('courses') IS NOT NULL").fetchone() == (True,)


def test_the_password_never_reaches_the_server_s_statement_log(password_cluster, password_database):
    # CREATE / ALTER ROLE ... PASSWORD 'clear text' lands in the server log (log_statement=ddl) and
    # pg_stat_statements; bi-role sends the SCRAM verifier the server would store instead (as psql's \password does).
    port, url = password_database
    login = f"bi_{uuid.uuid4().hex[:8]}"
    for password in (f"Created-{uuid.uuid4().hex}", f"Rotated-{uuid.uuid4().hex}"):
        result = bi_role(url, login, password)
        assert result.returncode == 0, result.stderr
        assert logs_in(port, login, password)
        log = password_cluster.log.read_text(errors="replace")
        assert f'"{login}" WITH LOGIN PASSWORD' in log  # the statement was logged: the check can see a leak
        assert password not in log
    with psycopg.connect(host="127.0.0.1", port=port, dbname="tracker", user="postgres") as connection:
        stored = connection.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", [login]).fetchone()[0]
    assert stored.startswith("SCRAM-SHA-256$")


def test_a_new_login_without_bi_password_is_refused_in_one_line(password_database):
    port, url = password_database
    login = f"bi_{uuid.uuid4().hex[:8]}"
    result = bi_role(url, login, None)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: the login '{login}' does not exist yet: set BI_PASSWORD to its password and run again"
    ]
    with psycopg.connect(host="127.0.0.1", port=port, dbname="tracker", user="postgres") as connection:
        assert connection.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", [login]).fetchone() == (0,)
    empty = bi_role(url, login, "")
    assert empty.returncode == 2 and "BI_PASSWORD is empty" in empty.stderr


def roles(engine) -> set[str]:
    with engine.connect() as connection:
        return {name for (name,) in connection.execute(text("SELECT rolname FROM pg_roles"))}


def check_creates_exactly(engine, name: str, sentinel: str) -> None:
    try:
        shown = grant_bi_reader(engine, login=name, password="pw-123456")
        with engine.connect() as connection:
            member = connection.execute(text(
                "SELECT r.rolcanlogin, pg_has_role(r.oid, :reader, 'MEMBER') FROM pg_roles r WHERE r.rolname = :name"),
                {"name": name, "reader": ROLE}).all()
            assert member == [(True, True)], (name, shown)
            assert connection.execute(text("SELECT to_regclass('courses') IS NOT NULL")).scalar_one()
        assert sentinel in roles(engine)
        assert "pw-123456" not in " ".join(shown)
    finally:
        with engine.begin() as connection:
            driver = connection.connection.driver_connection
            if name in roles(engine):
                driver.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            driver.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture
def sentinel(pg_engine):
    name = f"sentinel_{uuid.uuid4().hex[:8]}"
    with pg_engine.begin() as connection:
        connection.execute(text(f'CREATE ROLE "{name}" NOLOGIN'))
    yield name
    with pg_engine.begin() as connection:
        connection.execute(text(f'DROP ROLE IF EXISTS "{name}"'))


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_create_exactly_that_role_and_run_nothing_else(pg_engine, sentinel, name):
    check_creates_exactly(pg_engine, name.format(sentinel=sentinel) + f" {uuid.uuid4().hex[:6]}", sentinel)


NAMES = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1).filter(lambda name: len(name.encode()) <= 50)


@given(name=NAMES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_name_creates_exactly_that_role(pg_engine, sentinel, name):
    check_creates_exactly(pg_engine, f"{uuid.uuid4().hex[:8]}{name}", sentinel)  # a prefix: never an existing role


@pytest.mark.parametrize(("name", "problem"), [("", "the name is empty"), ("a\x00b", "NUL"), ("x" * 64, "longer than Postgres's 63 bytes")])
def test_names_postgres_cannot_hold_exactly_are_refused(pg_engine, name, problem):
    with pytest.raises(ValueError, match=problem):
        grant_bi_reader(pg_engine, login=name, password="pw-123456")


def test_bi_reader_reads_the_history_the_daily_figures_and_stalled_students_and_writes_none(pg_engine):
    """Issue 14: the history, bi_settings and the two views are granted; writing the history is not."""
    from sqlalchemy.exc import ProgrammingError

    from tests.factory import progress_event
    from tests.helpers import apply_events

    apply_events(pg_engine, [progress_event("2019-11-01T10:00:00Z", user_id="1"),
                             progress_event("2019-11-03T23:59:59.999-06:00", user_id="2", done=1, total=2)])
    with pg_engine.begin() as connection:  # the fixture empties every table, bi_settings too
        connection.execute(text("INSERT INTO bi_settings (id, stalled_after_days) VALUES (1, 14) ON CONFLICT (id) DO NOTHING"))
    login = f"bi_test_{uuid.uuid4().hex[:8]}"
    grant_bi_reader(pg_engine, login=login, password="pw-123456")
    try:
        with pg_engine.connect() as connection:
            connection.execute(text(f'SET ROLE "{login}"'))
            counts = {name: connection.execute(text(f"SELECT count(*) FROM {name}")).scalar_one()
                      for name in ("course_progress_history", "bi_settings", "course_progress_daily", "stalled_students")}
            assert counts == {"course_progress_history": 2, "bi_settings": 1, "course_progress_daily": 4, "stalled_students": 2}
            for forbidden in ("INSERT INTO course_progress_history (course_id, user_id, event_time, event_name, is_completed, event_rank) "
                              "VALUES (1, 1, now(), 'course_progress', false, 0)",
                              "UPDATE bi_settings SET stalled_after_days = 1",
                              "DELETE FROM course_progress_history"):
                with pytest.raises(ProgrammingError, match="permission denied"):
                    with connection.begin_nested():
                        connection.execute(text(forbidden))
            connection.rollback()
    finally:
        with pg_engine.begin() as connection:
            connection.execute(text(f'DROP OWNED BY "{login}"'))
            connection.execute(text(f'DROP ROLE "{login}"'))
