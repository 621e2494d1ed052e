"""Personal data (issue 11 item 14), on SQLite and Postgres.

- STORE_USER_NAMES=false / --no-user-names: students are stored by id only,
  through every path that writes events (replay, the SQS worker, rejected
  retry), order-independently;
- `scrub-users` clears the names and emails already stored, and the report
  files that list them;
- credentials in query strings never reach the quarantine or a URL column.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import string
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, insert, select, text

from consumer.core import Input, Rejected
from consumer.events.parse import parse_event
from consumer.events.redact import REDACTED
from consumer.pipeline import Pipeline
from consumer.privacy import reports_naming_students
from consumer.quarantine import retry
from consumer.reports import jobs
from consumer.reports.queries import QUERIES, Scope
from consumer.store.tables import (
    course_progress,
    metadata,
    reference_metadata,
    rejected_events,
    report_file_chunks,
    reports,
    users,
)
from tests.factory import encode, progress_event, sns_notification
from tests.helpers import FAST, cli, dump_tables, environment, rejected_rows

NAMES = ("Ada Quillfeather", "Bartholomew Zinnwald", "Cressida Ulverton")
EMAILS = tuple(f"{name.split()[0].lower()}@example.edu" for name in NAMES)  # as tests.factory makes them


def _events() -> list[dict]:
    """Progress events of three students, some of them about the same student at the same time (ties)."""
    events = []
    for n, name in enumerate(NAMES):
        for hour in (1, 2):
            events.append(progress_event(f"2019-11-0{hour}T00:00:00Z", user_id=str(100 + n), user_name=name, done=hour))
    # A tie: the same student and time, another name (Canvas renamed them in between).
    events.append(progress_event("2019-11-02T00:00:00Z", user_id="100", user_name="Ada Q. Renamed", done=2))
    return events


def _rejected_with_a_name() -> dict:
    event = progress_event("2019-11-03T00:00:00Z", user_id="101", user_name=NAMES[1])
    event["body"]["progress"]["requirement_count"] = "six"  # rejected: a count must be an integer
    return event


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _run(engine: Engine, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "STORE_USER_NAMES", "SQS_QUEUE_URL")}
    return subprocess.run([sys.executable, "-m", "consumer", *args, "--database-url", _url(engine)],
                          capture_output=True, env={**clean, **(env or {})}, timeout=300)


def _everything_stored(engine: Engine) -> dict[tuple[str, str], bytes]:
    """Every text and binary value in every table, as bytes, by (table, column)."""
    found: dict[tuple[str, str], bytes] = {}
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)).mappings():
                for column, value in row.items():
                    if isinstance(value, (bytes, memoryview)):
                        found[(table.name, column)] = found.get((table.name, column), b"") + bytes(value) + b"\n"
                    elif value is not None:
                        found[(table.name, column)] = found.get((table.name, column), b"") + str(value).encode() + b"\n"
    return found


def _holding(engine: Engine, needles) -> set[tuple[str, str]]:
    return {where for where, data in _everything_stored(engine).items() if any(n.encode() in data for n in needles)}


def test_replay_with_no_user_names_stores_no_name_or_email_outside_the_quarantine(engine, tmp_path):
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"\n".join(encode(event) for event in [*_events(), _rejected_with_a_name()]) + b"\n")
    result = _run(engine, "replay", str(path), "--no-user-names", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["rejected"] == 1
    with engine.connect() as connection:
        assert connection.execute(select(users.c.id, users.c.name, users.c.email).order_by(users.c.id)).all() == [
            (100, None, None), (101, None, None), (102, None, None)]
        assert connection.execute(select(course_progress.c.user_id)).scalars().all()  # progress is kept, by id
    # The quarantine keeps the rejected input as received (a retry needs it), for REJECTED_RETENTION_DAYS.
    assert _holding(engine, [*NAMES, *EMAILS, "Renamed"]) == {("rejected_events", "payload")}


def test_the_setting_comes_from_the_environment_too(engine, tmp_path):
    path = tmp_path / "events.ndjson"
    path.write_bytes(encode(_events()[0]) + b"\n")
    assert _run(engine, "replay", str(path), env={"STORE_USER_NAMES": "false"}).returncode == 0
    with engine.connect() as connection:
        assert connection.execute(select(users.c.name, users.c.email)).all() == [(None, None)]


def test_by_default_names_are_stored_as_before(engine):
    Pipeline(engine).process([Input("t:1", encode(_events()[0]))])
    with engine.connect() as connection:
        assert connection.execute(select(users.c.name, users.c.email)).all() == [(NAMES[0], EMAILS[0])]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_without_names_any_order_and_duplication_gives_the_same_tables(engine, seed):
    events = [encode(e) for e in _events()]
    rng = random.Random(seed)
    shuffled = [*events, *rng.sample(events, 3)]
    rng.shuffle(shuffled)

    def tables_after(batches: list[list[bytes]]) -> dict:
        with engine.begin() as connection:
            for table in (users, course_progress, metadata.tables["courses"]):
                connection.execute(table.delete())
        pipeline = Pipeline(engine, store_user_names=False)
        for batch in batches:
            pipeline.process([Input(f"t:{n}", payload) for n, payload in enumerate(batch)])
        return dump_tables(engine)

    in_order = tables_after([events])
    assert tables_after([[payload] for payload in shuffled]) == in_order
    assert tables_after([shuffled]) == in_order
    assert all(row[1] is None and row[2] is None for row in in_order["users"])


def test_a_newer_event_does_not_bring_names_back_and_an_older_one_changes_nothing(engine):
    stored = progress_event("2019-11-02T00:00:00Z", user_name=NAMES[0])
    Pipeline(engine).process([Input("t:1", encode(stored))])  # stored while names were kept
    assert _run(engine, "scrub-users").returncode == 0
    pipeline = Pipeline(engine, store_user_names=False)
    older = progress_event("2019-11-01T00:00:00Z", user_name=NAMES[1])
    newer = progress_event("2019-11-03T00:00:00Z", user_name=NAMES[2])
    assert pipeline.process([Input("t:2", encode(older))]).stale_or_duplicate == 1
    assert pipeline.process([Input("t:3", encode(newer))]).applied == 1
    assert pipeline.process([Input("t:4", encode(stored))]).stale_or_duplicate == 1
    with engine.connect() as connection:
        assert connection.execute(select(users.c.name, users.c.email)).all() == [(None, None)]
    assert _holding(engine, [*NAMES, *EMAILS]) == set()


def test_without_names_the_rank_is_no_digest_of_the_name():
    # Two events differing only in the student's name are, without names, the same event: the same rows and rank,
    # so the stored rank cannot be tested against guessed names.
    first, second = (encode(progress_event("2019-11-01T00:00:00Z", user_name=name)) for name in NAMES[:2])
    assert parse_event(first, user_names=False) == parse_event(second, user_names=False)
    assert parse_event(first).rows[0].last_event_rank != parse_event(second).rows[0].last_event_rank


def test_rejected_retry_follows_the_setting(engine):
    with engine.begin() as connection:
        connection.execute(insert(rejected_events).values(source="old:1", reason="an old bug", payload=encode(_events()[0])))
    result = _run(engine, "rejected", "retry", "--all", env={"STORE_USER_NAMES": "false"})
    assert result.returncode == 0, result.stderr
    assert rejected_rows(engine) == []
    with engine.connect() as connection:
        assert connection.execute(select(users.c.id, users.c.name, users.c.email)).all() == [(100, None, None)]


def test_the_worker_stores_no_names_and_no_credentials(make_queue, sqs_client, sqs_endpoint, database):
    queue_url, _ = make_queue()
    rejected = _rejected_with_a_name()
    rejected["metadata"]["url"] = "https://canvas.example.edu/api/v1/courses/565?access_token=7~WorkerSecret&x=1"
    for event in [*_events(), rejected]:
        sqs_client.send_message(QueueUrl=queue_url, MessageBody=encode(event).decode())
    run = cli("run", "--queue-url", queue_url, "--burst", "--json", "--no-user-names", *FAST, env=environment(sqs_endpoint, database))
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout)["rejected"] == 1
    from consumer.store.engine import make_engine

    engine = make_engine(database)
    try:
        with engine.connect() as connection:
            assert connection.execute(select(users.c.name, users.c.email)).all() == [(None, None)] * 3
        assert _holding(engine, [*NAMES, *EMAILS]) == {("rejected_events", "payload")}
        assert _holding(engine, ["WorkerSecret"]) == set()
        assert _holding(engine, [f"access_token={REDACTED}"]) == {("rejected_events", "payload")}
    finally:
        engine.dispose()


# --- scrub-users -----------------------------------------------------------------------------------------


def _report(engine: Engine, report: str, status: str, data: bytes) -> int:
    moment = jobs.now()
    with engine.begin() as connection:
        job_id = connection.execute(insert(reports).values(
            report=report, account_id=79, course_id=None, token_id=1, parameters={}, status=status, created_at=moment,
            updated_at=moment, current_line=0, progress=100 if status == "complete" else 0,
        ).returning(reports.c.id)).scalar_one()
        connection.execute(insert(report_file_chunks).values(report_id=job_id, seq=0, data=data))
    return job_id


def test_scrub_users_clears_names_emails_and_the_report_files_that_list_them(engine):
    Pipeline(engine).process([Input(f"t:{n}", encode(event)) for n, event in enumerate(_events())])
    listing = ("user name\n" + "\n".join(NAMES)).encode()
    progress_done = _report(engine, "course_progress_csv", "complete", listing)
    progress_running = _report(engine, "course_progress_csv", "running", listing)
    completion = _report(engine, "course_completion_csv", "complete", b"course id\n565\n")
    before = dump_tables(engine)

    dry = _run(engine, "scrub-users", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.decode().count("\n") == 1 and "would clear the name and email of 3 users" in dry.stdout.decode()
    assert "would delete 2 report files" in dry.stdout.decode()
    assert dump_tables(engine) == before and _holding(engine, NAMES)

    done = _run(engine, "scrub-users", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"users": 3, "report_files": 2, "dry_run": False, "rejected_retention_days": 30}
    assert b"STORE_USER_NAMES is true" in done.stderr  # names arriving from now on would be stored again
    assert _holding(engine, [*NAMES, *EMAILS, "Renamed"]) == set()
    after = dump_tables(engine)
    assert [row[0] for row in after["users"]] == [row[0] for row in before["users"]]  # ids and times stay
    assert _without_ranks(after) == {**_without_ranks(before), "users": [(row[0], None, None, row[3]) for row in before["users"]]}
    assert jobs.get(engine, progress_done) is None and jobs.get(engine, progress_running) is None  # the API answers 404
    assert jobs.get(engine, completion).status == "complete"
    with engine.connect() as connection:
        assert connection.execute(select(report_file_chunks.c.report_id)).scalars().all() == [completion]

    again = _run(engine, "scrub-users")
    assert again.returncode == 0 and "cleared the name and email of 0 users; deleted 0 report files" in again.stdout.decode()


def _without_ranks(tables: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    """The tables with their rank columns left out."""
    result = {}
    for name, rows in tables.items():
        keep = [n for n, column in enumerate(metadata.tables[name].columns) if not column.name.endswith("_rank")]
        result[name] = [tuple(row[n] for n in keep) for row in rows]
    return result


@pytest.mark.parametrize("seed", [4, 5])
def test_after_scrub_users_no_stored_value_depends_on_a_student_s_name(engine, seed):
    # Two histories that differ only in the students' names and emails: after scrub-users the tables are equal,
    # ranks included (a rank is a digest of its event's content, and could be tested against guessed names).
    rng = random.Random(seed)
    plans = [(f"2019-11-0{rng.randint(1, 3)}T00:00:00Z", str(100 + rng.randrange(3)), rng.randint(0, 6),
              rng.choice(["course_progress", "course_completed"])) for _ in range(12)]

    def tables_after_scrub(names: tuple[str, ...]) -> dict:
        with engine.begin() as connection:
            for table in reversed(metadata.sorted_tables):
                connection.execute(table.delete())
        events = [progress_event(time, user_id=user, done=done, event_name=name, user_name=names[int(user) - 100])
                  for time, user, done, name in plans]
        Pipeline(engine).process([Input(f"t:{n}", encode(event)) for n, event in enumerate(events)])
        assert _run(engine, "scrub-users").returncode == 0
        return dump_tables(engine)

    first, second = tables_after_scrub(NAMES), tables_after_scrub(("Someone Else", "Another One", "A Third"))
    assert first == second
    # Completion still outranks progress at an equal time: each rank kept its completion bit.
    with engine.connect() as connection:
        ranks = connection.execute(select(course_progress.c.last_event_name, course_progress.c.last_event_rank)).all()
    assert ranks and all(rank == (1 << 60 if name == "course_completed" else 0) for name, rank in ranks)


def test_scrub_users_exit_statuses(sqlite_url, tmp_path):
    from consumer.cli import main

    assert main(["scrub-users", "--database-url", f"sqlite:///{tmp_path / 'missing' / 'x.db'}"]) == 2
    unmigrated = f"sqlite:///{tmp_path / 'empty.db'}"
    assert main(["scrub-users", "--database-url", unmigrated]) == 1  # no schema: run migrate first
    with pytest.raises(SystemExit) as exit_status:
        main(["scrub-users", "--bogus"])
    assert exit_status.value.code == 2


def test_the_reports_that_name_students_are_those_with_a_user_name_column():
    assert reports_naming_students() == ("course_progress_csv",)
    for name, build in QUERIES.items():
        assert ("user name" in build(Scope(account_id=0), {}).header) == (name in reports_naming_students())


# --- credentials ---------------------------------------------------------------------------------------------


def test_credentials_never_reach_the_quarantine_and_deliveries_differing_in_a_token_are_one_row(engine):
    def rejected_with_token(token: str) -> bytes:
        event = _rejected_with_a_name()
        event["metadata"]["url"] = f"https://canvas.example.edu/api/v1/courses/565/modules?include%5B%5D=items&access_token={token}"
        return json.dumps(event).replace("/", "\\/").replace("&", "\\u0026").encode()  # as Rails escapes it

    sns = encode(sns_notification(rejected_with_token("7~SnsSecret").decode()))
    Pipeline(engine).process([Input("a", rejected_with_token("7~FirstSecret")), Input("b", rejected_with_token("7~OtherSecret")),
                              Input("c", sns)])
    rows = rejected_rows(engine)
    assert [row["times_seen"] for row in rows] == [2, 1]
    assert _holding(engine, ["FirstSecret", "OtherSecret", "SnsSecret"]) == set()
    for row in rows:
        assert f"access_token={REDACTED}".encode() in row["payload"]
        assert row["payload_sha256"] == hashlib.sha256(row["payload"]).digest()
    assert rows[0]["payload"] == rejected_with_token(REDACTED)  # the rest byte for byte


def test_a_retried_redacted_payload_gives_the_tables_the_original_would(engine):
    event = _events()[0]
    event["metadata"]["url"] = "https://canvas.example.edu/api/v1/courses/565?access_token=7~RetrySecret"
    original = encode(event)
    # Quarantined as if an older version had refused it (the code now accepts it).
    Pipeline(engine).commit([(Input("old:1", original), Rejected("an old bug"))])
    (row,) = rejected_rows(engine)
    assert b"RetrySecret" not in row["payload"]
    assert retry(engine, None).applied == 1
    retried = dump_tables(engine)
    with engine.begin() as connection:
        for table in (users, course_progress, metadata.tables["courses"]):
            connection.execute(table.delete())
    Pipeline(engine).process([Input("new:1", original)])
    assert dump_tables(engine) == retried


def test_a_token_in_next_requirement_url_is_stored_redacted(engine):
    event = progress_event("2019-11-01T00:00:00Z")
    event["body"]["progress"]["next_requirement_url"] = "https://c.example.edu/courses/565/modules/items/9?Signature=abc&module_item_id=9"
    Pipeline(engine).process([Input("t:1", encode(event))])
    with engine.connect() as connection:
        assert connection.execute(select(course_progress.c.next_requirement_url)).scalar_one() == (
            f"https://c.example.edu/courses/565/modules/items/9?Signature={REDACTED}&module_item_id=9")


def test_rejected_show_says_the_payload_is_raw_except_for_credentials(engine):
    event = _rejected_with_a_name()
    event["metadata"]["url"] = "https://canvas.example.edu/x?access_token=7~ShowSecret"
    Pipeline(engine).process([Input("t:1", encode(event))])
    raw = _run(engine, "rejected", "show", "1", "--raw")
    assert raw.returncode == 0 and raw.stdout == encode(event).replace(b"7~ShowSecret", REDACTED.encode())
    assert b"raw except for credentials" in raw.stderr
    shown = _run(engine, "rejected", "show", "1")
    assert b"except credentials in query strings" in shown.stdout and b"ShowSecret" not in shown.stdout
    help_text = _run(engine, "rejected", "show", "--help").stdout.decode()
    assert "byte for byte as received except for credentials" in " ".join(help_text.split())


def test_no_column_holds_a_token_after_a_replay_of_events_carrying_them(engine, tmp_path):
    secret = "7~ReplaySecret"
    events = _events()
    for event in events:
        event["metadata"]["url"] = f"https://canvas.example.edu/api/v1/courses/565?access_token={secret}"
        event["body"]["progress"]["next_requirement_url"] = f"https://c.example.edu/m?access%5Ftoken={secret}"
    broken = encode(events[0])[:-20]  # rejected: cut short
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"\n".join([*(encode(e) for e in events), broken]) + b"\n")
    assert _run(engine, "replay", str(path)).returncode == 0
    assert _holding(engine, [secret, "ReplaySecret"]) == set()
    assert ("course_progress", "next_requirement_url") in _holding(engine, [REDACTED])
    assert ("rejected_events", "payload") in _holding(engine, [REDACTED])


def test_the_scan_for_personal_data_covers_every_table_the_migrations_create(pg_engine):
    # _everything_stored reads the tables in `metadata`: it must be all of them but the reference data
    # the migrations fill (no event's value reaches those).
    with pg_engine.connect() as connection:
        created = set(connection.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars())
    assert {table.name for table in metadata.sorted_tables} >= created - {"alembic_version"} - set(reference_metadata.tables)
    assert set(reference_metadata.tables) == {"calendar_days", "bi_settings"}


def test_the_readme_documents_personal_data_the_setting_and_the_retentions():
    import re

    from consumer.config import Settings

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert Settings.model_fields["store_user_names"].default is True
    assert re.search(r"^\| `STORE_USER_NAMES` \| `--no-user-names` \(`replay`, `run`, `receive`\) \| `true` \|", readme, re.M)
    section = " ".join(readme.split("### Personal data", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0].split())
    for needle in ("STORE_USER_NAMES=false", "scrub-users", "[redacted]", "access_token", "REJECTED_RETENTION_DAYS",
                   "rejected purge --expired", "REPORT_RETENTION_DAYS", "rejected show --raw"):
        assert needle in section, needle


# --- without names, rejection reasons (logs, the quarantine's reason column) quote no name or email --------------

# Ways a progress event can be rejected with the student's name or email where a reason would quote it.
_CORRUPTIONS = [
    lambda e, name, email: e["body"]["user"].__setitem__("name", name + "\x00"),
    lambda e, name, email: e["body"]["user"].__setitem__("name", [name]),
    lambda e, name, email: e["body"]["user"].__setitem__("email", {"address": email}),
    lambda e, name, email: e["body"]["user"].__setitem__("email", email + "\ud800"),
    lambda e, name, email: e["body"].__setitem__("user", f"{name} <{email}>"),
    lambda e, name, email: e["body"].__setitem__("user", [name, email]),
    lambda e, name, email: e.__setitem__("body", [{"user": {"id": "1", "name": name}}]),
    lambda e, name, email: e.__setitem__("body", f"{name} {email}"),
]


@given(
    name=st.text(alphabet=string.ascii_letters + " ", min_size=8, max_size=40).filter(lambda n: n.strip() == n and len(n) >= 8),
    local=st.text(alphabet=string.ascii_lowercase + ".", min_size=6, max_size=20),
    corruption=st.sampled_from(range(len(_CORRUPTIONS))),
    also_bad_count=st.booleans(),
)
@settings(max_examples=150, deadline=None)
def test_without_names_a_rejection_reason_never_quotes_the_name_or_email(name, local, corruption, also_bad_count):
    email = f"{local}@example.edu"
    event = progress_event("2019-11-01T00:00:00Z", user_name="Placeholder Person")
    event["body"]["user"]["email"] = "placeholder@example.edu"
    if also_bad_count:
        event["body"]["progress"]["requirement_count"] = "six"  # a second fault: reasons with several parts
    other = json.loads(json.dumps(event))
    _CORRUPTIONS[corruption](event, name, email)
    # The same damage with another name and email of the same shape: the reason must not change at all.
    # (A plain "name not in reason" check is not enough: a name such as "a string" occurs in "expected a string".)
    other_name = "".join(" " if c == " " else "Q" for c in name)
    _CORRUPTIONS[corruption](other, other_name, f"{'q' * len(local)}@example.edu")
    payload = json.dumps(event).encode()
    kept, dropped = parse_event(payload), parse_event(payload, user_names=False)
    dropped_other = parse_event(json.dumps(other).encode(), user_names=False)
    assert isinstance(kept, Rejected) and isinstance(dropped, Rejected) and isinstance(dropped_other, Rejected)
    assert name in kept.reason or email in kept.reason  # with names kept, the reason quotes what was sent
    assert dropped.reason == dropped_other.reason, (dropped.reason, dropped_other.reason)
    assert email not in dropped.reason, dropped.reason
    assert "not shown" in dropped.reason and dropped.event_name == kept.event_name
    if also_bad_count and isinstance(event["body"], dict):
        assert '(got "six")' in dropped.reason  # other fields are still quoted


def test_without_names_replay_logs_and_quarantine_reasons_hold_no_name_or_email(engine, tmp_path):
    events = []
    for n, corrupt in enumerate(_CORRUPTIONS):
        event = progress_event(f"2019-11-0{1 + n % 9}T00:00:00Z", user_id=str(200 + n), user_name="Placeholder Person")
        corrupt(event, NAMES[n % 3], EMAILS[n % 3])
        events.append(json.dumps(event).encode())
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"\n".join(events) + b"\n")
    result = _run(engine, "replay", str(path), "--no-user-names", "--json", env={"LOG_LEVEL": "DEBUG"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["rejected"] == len(_CORRUPTIONS)
    assert result.stderr.count(b"rejected ") >= len(_CORRUPTIONS)  # each rejection was logged
    for needle in (*NAMES, *EMAILS):
        assert needle.encode() not in result.stderr, needle
    assert _holding(engine, [*NAMES, *EMAILS]) == {("rejected_events", "payload")}  # not the reason column
    listing = _run(engine, "rejected", "list", "--limit", "100")
    assert listing.returncode == 0 and not any(n.encode() in listing.stdout for n in (*NAMES, *EMAILS))
