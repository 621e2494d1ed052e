"""Every misconfiguration ends as ONE line on stderr ("error: ..."), no traceback, and the README's exit code.

A table of cases, each run as a user runs the tool: `python -m consumer ...`
in a process of its own, from an empty directory, with a controlled
environment (no AWS configuration, no DATABASE_URL unless the case sets
one). Exit codes (README, Exit status): 1 when something the command uses
fails or refuses (the database, a privilege, the schema revision, the
queue), 2 when the command line or the configuration cannot work. Each error
line must name what is at fault, and never echo a password.

The cases run in parallel threads (each is mostly interpreter start-up).
The privilege cases use a real Postgres role with no TEMP privilege (a
common hardening step), and one without CREATE on schema public (the
Postgres 15 default for everyone but the owner).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from consumer.core import Input, Rejected
from consumer.pipeline import Pipeline
from consumer.store.engine import make_engine
from consumer.store.migrate import upgrade
from tests.factory import SAMPLE_EVENTS
from tests.helpers import AWS_TEST_ENV
from tests.ports import free_port

SECRET = "s3cret-pw"  # in every URL with a password: it must never be printed


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    code: int
    names: tuple[str, ...]  # what the error line must name (the setting, the value, the thing at fault)
    env: dict[str, str] = field(default_factory=dict)
    aws: bool = False  # test credentials and the emulator endpoint in the environment


SAMPLES = str(SAMPLE_EVENTS)
S = SECRET

# {tmp}: a directory of the test's; {pg}: the test Postgres server (host:port); {closed}: a port nobody listens on;
# {busy}: a port something listens on; {queue}: an existing queue; {missing_queue}: a queue that does not exist;
# {newer}/{readonly}: SQLite URLs; {no_temp}/{no_create}: Postgres URLs of a role without TEMP / without CREATE.
CASES: dict[str, Case] = {
    # DATABASE_URL that is not a database the tracker can use: configuration, exit 2
    "database-url-empty": Case(("summary",), 2, ("DATABASE_URL", "--database-url", "empty"), {"DATABASE_URL": ""}),
    "database-url-not-a-url": Case(("summary",), 2, ("DATABASE_URL", "'foo'", "not a database URL"), {"DATABASE_URL": "foo"}),
    "database-url-mysql": Case(("replay", SAMPLES), 2, ("DATABASE_URL", "mysql://"), {"DATABASE_URL": f"mysql://canvas:{S}@db.example.edu/canvas"}),
    "database-url-https": Case(("summary",), 2, ("DATABASE_URL", "https://"), {"DATABASE_URL": "https://canvas.example.edu/progress"}),
    "database-url-unknown-driver": Case(("migrate",), 2, ("DATABASE_URL", "asyncpg"), {"DATABASE_URL": f"postgresql+asyncpg://canvas:{S}@h/db"}),
    "database-url-driver-not-installed": Case(("summary",), 2, ("DATABASE_URL", "psycopg2"), {"DATABASE_URL": f"postgresql+psycopg2://canvas:{S}@h/db"}),
    "database-url-bad-port": Case(("summary",), 2, ("DATABASE_URL", "notaport"), {"DATABASE_URL": f"postgresql://canvas:{S}@h:notaport/db"}),
    "database-url-in-memory": Case(("replay", SAMPLES), 2, ("DATABASE_URL", "in-memory"), {"DATABASE_URL": "sqlite://"}),
    "database-url-flag": Case(("status", "--database-url", "foo"), 2, ("--database-url", "DATABASE_URL", "'foo'")),
    "sqlite-missing-directory": Case(("replay", SAMPLES), 2, ("DATABASE_URL", "{tmp}/missing", "does not exist"), {"DATABASE_URL": "sqlite:///{tmp}/missing/progress.db"}),
    "sqlite-directory": Case(("migrate",), 2, ("DATABASE_URL", "{tmp}", "is a directory"), {"DATABASE_URL": "sqlite:///{tmp}"}),
    "sqlite-not-a-database": Case(("summary",), 2, ("DATABASE_URL", "notes.txt", "not a SQLite database"), {"DATABASE_URL": "sqlite:///{tmp}/notes.txt"}),
    "sqlite-not-a-database-status": Case(("status",), 2, ("notes.txt", "not a SQLite database"), {"DATABASE_URL": "sqlite:///{tmp}/notes.txt"}),
    # the database answers, and refuses: runtime, exit 1
    "postgres-refused": Case(("summary",), 1, ("127.0.0.1:{closed}", "refused"), {"DATABASE_URL": f"postgresql://canvas:{S}@127.0.0.1:{{closed}}/canvas"}),
    "postgres-unknown-database": Case(("migrate",), 1, ("no_such_database_x",), {"DATABASE_URL": "postgresql://postgres@{pg}/no_such_database_x"}),
    "postgres-unknown-role": Case(("replay", SAMPLES), 1, ("no_such_role_x",), {"DATABASE_URL": f"postgresql://no_such_role_x:{S}@{{pg}}/postgres"}),
    "postgres-bad-option": Case(("summary",), 1, ("sslmode",), {"DATABASE_URL": f"postgresql://canvas:{S}@{{pg}}/postgres?sslmode=bogus"}),
    "schema-newer-migrate": Case(("migrate",), 1, ("9999", "upgrade canvas-progress"), {"DATABASE_URL": "{newer}"}),
    "schema-newer-replay": Case(("replay", SAMPLES), 1, ("9999", "upgrade canvas-progress"), {"DATABASE_URL": "{newer}"}),
    "schema-newer-summary": Case(("summary",), 1, ("9999", "upgrade canvas-progress"), {"DATABASE_URL": "{newer}"}),
    "schema-newer-serve": Case(("serve", "--port", "{closed}"), 1, ("9999", "upgrade canvas-progress"), {"DATABASE_URL": "{newer}"}),
    "sqlite-read-only": Case(("replay", SAMPLES), 1, ("readonly",), {"DATABASE_URL": "{readonly}"}),
    # privileges (Postgres)
    "no-temp-replay": Case(("replay", SAMPLES), 1, ("TEMP privilege", "GRANT TEMP ON DATABASE"), {"DATABASE_URL": "{no_temp}"}),
    "no-temp-rejected-retry": Case(("rejected", "retry", "--all"), 1, ("TEMP privilege", "GRANT TEMP ON DATABASE"), {"DATABASE_URL": "{no_temp}"}),
    "no-create-migrate": Case(("migrate",), 1, ("CREATE on schema public", "GRANT CREATE ON SCHEMA public"), {"DATABASE_URL": "{no_create}"}),
    "no-create-replay": Case(("replay", SAMPLES), 1, ("CREATE on schema public",), {"DATABASE_URL": "{no_create}"}),
    # settings: one line naming the variable, the flag and the value, exit 2
    "batch-size-env": Case(("summary",), 2, ("BATCH_SIZE", "--batch-size", "'abc'"), {"BATCH_SIZE": "abc"}),
    "batch-size-flag-zero": Case(("replay", SAMPLES, "--batch-size", "0"), 2, ("--batch-size", "BATCH_SIZE", " 0")),
    "batch-size-flag-not-a-number": Case(("replay", SAMPLES, "--batch-size", "abc"), 2, ("--batch-size", "'abc'")),
    "log-level": Case(("summary",), 2, ("LOG_LEVEL", "--log-level", "'nope'"), {"LOG_LEVEL": "nope"}),
    "log-format": Case(("summary",), 2, ("LOG_FORMAT", "--log-format", "'xml'"), {"LOG_FORMAT": "xml"}),
    "metrics-port": Case(("run", "--queue-url", "{queue}"), 2, ("METRICS_PORT", "--metrics-port", "70000"), {"METRICS_PORT": "70000"}, aws=True),
    "flush-interval-flag": Case(("run", "--queue-url", "{queue}", "--flush-interval", "-1"), 2, ("--flush-interval", "FLUSH_INTERVAL", "-1"), aws=True),
    "rejected-retention-days": Case(("rejected", "purge", "--expired"), 2, ("REJECTED_RETENTION_DAYS", "'0'"), {"REJECTED_RETENTION_DAYS": "0"}),
    "api-port": Case(("serve",), 2, ("API_PORT", "--port", "'0'"), {"API_PORT": "0"}),
    "queue-url-not-a-url": Case(("send", SAMPLES), 2, ("SQS_QUEUE_URL", "--queue-url", "'foo'"), {"SQS_QUEUE_URL": "foo"}, aws=True),
    "summary-limit": Case(("summary", "--limit", "0"), 2, ("--limit",)),
    "no-command": Case((), 2, ("COMMAND",)),
    "missing-path": Case(("replay", "{tmp}/no-such-file.ndjson"), 2, ("no-such-file.ndjson",)),
    # AWS and the queue
    "aws-profile-run": Case(("run", "--queue-url", "{queue}"), 2, ("AWS_PROFILE", "nope"), {"AWS_PROFILE": "nope"}, aws=True),
    "aws-profile-send": Case(("send", SAMPLES, "--queue-url", "{queue}"), 2, ("AWS_PROFILE", "nope"), {"AWS_PROFILE": "nope"}, aws=True),
    "aws-profile-status": Case(("status", "--queue-url", "{queue}"), 2, ("AWS_PROFILE", "nope"), {"AWS_PROFILE": "nope"}, aws=True),
    "aws-no-credentials": Case(("run", "--queue-url", "{queue}"), 2, ("credentials", "AWS_ACCESS_KEY_ID"), {"AWS_ENDPOINT_URL_SQS": "{sqs}", "AWS_DEFAULT_REGION": "us-east-1"}),
    "aws-endpoint-not-a-url": Case(("send", SAMPLES, "--queue-url", "{queue}"), 2, ("AWS_ENDPOINT_URL_SQS", "notaurl"), {"AWS_ENDPOINT_URL_SQS": "notaurl"}, aws=True),
    "queue-missing-send": Case(("send", SAMPLES, "--queue-url", "{missing_queue}"), 1, ("{missing_queue}", "does not exist"), aws=True),
    "queue-missing-run": Case(("run", "--queue-url", "{missing_queue}", "--metrics-port", "0"), 1, ("{missing_queue}", "does not exist"), aws=True),
    "queue-unreachable": Case(("send", SAMPLES, "--queue-url", "{queue}", "--endpoint-url", "http://127.0.0.1:{closed}"), 1, ("cannot reach", "127.0.0.1:{closed}"), aws=True),
    # ports
    "serve-port-in-use": Case(("serve", "--port", "{busy}"), 1, ("API_PORT", "{busy}", "in use")),
    "serve-unknown-host": Case(("serve", "--host", "no-such-host.invalid"), 2, ("API_HOST", "no-such-host.invalid")),
}

# Clean for every case: no setting, no AWS configuration from the machine running the tests.
_SETTING_VARIABLES = {
    "DATABASE_URL", "BATCH_SIZE", "LOG_LEVEL", "LOG_FORMAT", "SQS_QUEUE_URL", "RECEIVERS", "WAIT_TIME_SECONDS",
    "FLUSH_INTERVAL", "SHUTDOWN_GRACE", "METRICS_PORT", "API_HOST", "API_PORT", "REPORT_WORKERS", "REPORT_LEASE",
    "PUBLIC_URL", "FORWARDED_ALLOW_IPS",
}


def clean_environment(home: Path) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k not in _SETTING_VARIABLES and not k.startswith("AWS_")}
    environment.update(
        HOME=str(home), AWS_CONFIG_FILE=str(home / "no-aws-config"), AWS_SHARED_CREDENTIALS_FILE=str(home / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true", PYTHONDONTWRITEBYTECODE="1",
    )
    return environment


@dataclass
class Places:
    values: dict[str, str]
    home: Path
    cwd: Path

    def fill(self, text: str) -> str:
        return text.format(**self.values)


@pytest.fixture(scope="module")
def postgres_roles(new_pg_database: Callable[[], str], postgres_server_url: str) -> Iterator[dict[str, str]]:
    """URLs of a login role lacking TEMP (on a migrated database) and lacking CREATE on schema public (on an empty one)."""
    role = f"canvas_progress_limited_{uuid.uuid4().hex[:8]}"
    no_temp, no_create = new_pg_database(), new_pg_database()
    admin = create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE ROLE "{role}" LOGIN'))
    try:
        with admin.connect() as connection:
            connection.execute(text(f'REVOKE TEMP ON DATABASE "{make_url(no_temp).database}" FROM PUBLIC'))
        engine = make_engine(no_temp)
        upgrade(engine)
        with engine.begin() as connection:
            connection.execute(text(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"'))
            connection.execute(text(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO "{role}"'))
        # a quarantined input that now applies: `rejected retry` has something to write
        Pipeline(engine).commit([(Input("test:1", (SAMPLE_EVENTS / "course_completed.json").read_bytes()), Rejected("a reason"))])
        engine.dispose()
        fresh = create_engine(no_create, isolation_level="AUTOCOMMIT")
        with fresh.connect() as connection:  # the Postgres 15 default, made explicit for older servers
            connection.execute(text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
        fresh.dispose()

        def as_role(url: str) -> str:
            return make_url(url).set(username=role, password=SECRET).render_as_string(hide_password=False)

        yield {"no_temp": as_role(no_temp), "no_create": as_role(no_create), "no_temp_admin": no_temp, "no_create_admin": no_create}
    finally:  # the role outlives the test databases: drop it, with its grants, whatever happened
        for url in (no_temp, no_create):
            owner = create_engine(url, isolation_level="AUTOCOMMIT")
            with owner.connect() as connection:
                connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :role"), {"role": role})
                connection.execute(text(f'DROP OWNED BY "{role}"'))
            owner.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory, postgres_server_url: str, postgres_roles: dict[str, str],
           sqs_endpoint: str) -> Iterator[Places]:
    import boto3

    tmp = tmp_path_factory.mktemp("misconfiguration")
    (tmp / "notes.txt").write_text("not a database\n")
    newer = tmp / "newer.db"
    engine = make_engine(f"sqlite:///{newer}")
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    readonly = tmp / "readonly.db"
    engine = make_engine(f"sqlite:///{readonly}")
    upgrade(engine)
    engine.dispose()
    client = boto3.client("sqs", endpoint_url=sqs_endpoint, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    queue = client.create_queue(QueueName=f"misconfiguration-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    server = make_url(postgres_server_url)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    cwd = tmp / "cwd"
    cwd.mkdir()
    values = {
        "tmp": str(tmp), "pg": f"{server.host}:{server.port or 5432}", "closed": str(free_port()), "busy": str(busy.getsockname()[1]),
        "sqs": sqs_endpoint, "queue": queue, "missing_queue": queue.rsplit("/", 1)[0] + "/no-such-queue",
        "newer": f"sqlite:///{newer}", "readonly": f"sqlite:///file:{readonly}?mode=ro&uri=true",
        "no_temp": postgres_roles["no_temp"], "no_create": postgres_roles["no_create"],
    }
    yield Places(values, tmp, cwd)
    busy.close()


def run_case(case: Case, where: Places) -> subprocess.CompletedProcess:
    environment = clean_environment(where.home)
    if case.aws:
        environment.update(AWS_TEST_ENV, AWS_ENDPOINT_URL_SQS=where.values["sqs"])
    environment.update({name: where.fill(value) for name, value in case.env.items()})
    args = [where.fill(arg) for arg in case.args]
    return subprocess.run([sys.executable, "-m", "consumer", *args], cwd=where.cwd, env=environment,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def outcomes(places: Places) -> Iterator[dict[str, Future]]:
    """Every case started at once on a few threads; each test waits for its own."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        yield {name: pool.submit(run_case, case, places) for name, case in CASES.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_one_line_error_and_the_documented_exit_code(name: str, outcomes: dict[str, Future], places: Places):
    case = CASES[name]
    result = outcomes[name].result()
    lines = result.stderr.splitlines()
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert len(lines) == 1, result.stderr[-3000:]
    line = lines[0]
    assert line.startswith("error: "), line
    assert result.returncode == case.code, (result.returncode, line)
    for expected in case.names:
        assert places.fill(expected) in line, (expected, line)
    assert SECRET not in line


def test_a_refused_write_writes_nothing(outcomes, postgres_roles):
    for name in ("no-temp-replay", "no-temp-rejected-retry"):
        outcomes[name].result()
    engine = create_engine(postgres_roles["no_temp_admin"])
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM courses")).scalar_one() == 0
        assert connection.execute(text("SELECT source FROM rejected_events")).scalars().all() == ["test:1"]
    engine.dispose()


@pytest.mark.parametrize("command", [("migrate",), ("summary",), ("status",), ("rejected", "list"), ("rejected", "show", "1"),
                                     ("token", "list")])
def test_reading_commands_need_no_temp_privilege(command, places, postgres_roles):
    """Read-only commands work for a user without TEMP (they used to fail: every connection created staging tables)."""
    environment = clean_environment(places.home)
    environment["DATABASE_URL"] = postgres_roles["no_temp"]
    result = subprocess.run([sys.executable, "-m", "consumer", *command], cwd=places.cwd, env=environment,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


def test_serve_needs_no_temp_privilege(places, postgres_roles):
    environment = clean_environment(places.home)
    environment["DATABASE_URL"] = postgres_roles["no_temp"]
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "consumer", "serve", "--port", str(port)], cwd=places.cwd, env=environment,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline, status = time.monotonic() + 60, None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                    status = response.status
                    break
            except OSError:
                time.sleep(0.2)
        assert status == 200, server.stderr.read().decode()[-3000:] if server.poll() is not None else "no answer"
    finally:
        server.terminate()
        server.wait(30)
    assert server.returncode == 0


@pytest.mark.parametrize("command", [("generate", "--events", "1000"), ("rejected", "list")])
def test_a_reader_that_goes_away_is_not_an_error(command, places):
    """`canvas-progress generate | head -1`: no traceback, nothing on stderr, the status other Unix tools give (141)."""
    environment = clean_environment(places.home)
    environment["DATABASE_URL"] = f"sqlite:///{places.home / 'pipe.db'}"
    subprocess.run([sys.executable, "-m", "consumer", "migrate"], cwd=places.cwd, env=environment, capture_output=True, check=True)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line is written
    try:
        result = subprocess.run([sys.executable, "-m", "consumer", *command], cwd=places.cwd, env=environment, stdout=write_end,
                                stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert result.stderr == ""
    assert result.returncode == 141
