"""rejected list / show / retry / purge: a fixed input leaves the quarantine without loss; one row per distinct input."""

import hashlib
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import insert, select, text, update

from consumer.quarantine import retry
from consumer.store.tables import course_progress, rejected_events
from tests.factory import encode, progress_event
from tests.helpers import apply_events, refuse_user_666, rejected_rows, undo_refusal


def test_retry_after_a_fix_applies_and_removes_in_one_go(engine):
    refuse_user_666(engine)
    apply_events(engine, [progress_event("2019-11-01T00:00:00Z", user_id="666"), b"{broken"])
    assert len(rejected_rows(engine)) == 2
    undo_refusal(engine)  # the fix
    result = retry(engine, None)
    assert (result.retried, result.applied, result.still_rejected) == (2, 1, 1)
    remaining = rejected_rows(engine)
    assert [row["payload"] for row in remaining] == [b"{broken"]
    with engine.connect() as connection:
        assert connection.execute(select(course_progress.c.user_id)).scalars().all() == [666]


def test_retry_isolates_an_input_the_database_still_refuses(engine):
    # Two quarantined inputs that parse; the database still refuses one of them: the other is applied
    # and removed, the refused one stays with the database's reason, and retry does not stop.
    refuse_user_666(engine)
    refused, fine = (progress_event("2019-11-01T00:00:00Z", user_id=user) for user in ("666", "7"))
    with engine.begin() as connection:
        for n, event in enumerate((refused, fine)):
            connection.execute(insert(rejected_events).values(source=f"old:{n}", reason="an old bug", payload=encode(event)))
    try:
        result = retry(engine, None)
    finally:
        undo_refusal(engine)  # the Postgres test database is shared by the tests that follow
    assert (result.retried, result.applied, result.still_rejected) == (2, 1, 1)
    (left,) = rejected_rows(engine)
    assert left["payload"] == encode(refused) and left["reason"].startswith("the database refused this event:")
    with engine.connect() as connection:
        assert connection.execute(select(course_progress.c.user_id)).scalars().all() == [7]


def test_retry_of_an_input_an_older_version_rejected(engine):
    with engine.begin() as connection:
        connection.execute(insert(rejected_events).values(source="old:1", reason="an old bug", payload=encode(progress_event("2019-11-01T00:00:00Z"))))
    result = retry(engine, None)
    assert (result.applied, result.still_rejected) == (1, 0)
    assert rejected_rows(engine) == []


def test_retry_keeps_what_still_fails_with_a_fresh_reason(engine):
    with engine.begin() as connection:
        connection.execute(insert(rejected_events).values(source="old:2", reason="stale reason", payload=b'{"metadata": {}}'))
    result = retry(engine, [1, 999])
    assert (result.retried, result.still_rejected, result.missing) == (1, 1, 1)
    assert rejected_rows(engine)[0]["reason"].startswith("metadata.event_name: required field is missing")


def test_rejected_commands(tmp_path, sqlite_url):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "consumer", *args, "--database-url", sqlite_url], capture_output=True, cwd=tmp_path)

    payload = b'{"metadata": {"event_name": "course_progress", "event_time": "2019-11-01T00:00:00Z"}, "body": {"user": {"name": "\xff"}}}'
    (tmp_path / "bad.ndjson").write_bytes(payload + b"\n")
    assert run("replay", str(tmp_path / "bad.ndjson")).returncode == 0
    listed = json.loads(run("rejected", "list", "--json").stdout)
    assert [row["source"] for row in listed] == [f"{tmp_path / 'bad.ndjson'}:1"]
    assert run("rejected", "show", "1", "--raw").stdout == payload  # byte for byte, invalid UTF-8 included
    assert b"reason" in run("rejected", "show", "1").stdout
    missing = run("rejected", "show", "42")
    assert missing.returncode == 1 and missing.stderr.decode().strip() == "error: no rejected input with id 42"
    assert run("rejected", "retry").returncode == 2
    retried = json.loads(run("rejected", "retry", "--all", "--json").stdout)
    assert retried == {"retried": 1, "applied": 0, "still_rejected": 1, "missing": 0}


# --- One row per distinct payload; purge and retention (issue 10 item 5) ------------------------------------------------

BAD = b'{"metadata": {"event_name": "course_progress"'
OTHER = b"[1, 2]"


def _cli(engine, *args, env=None):
    url = engine.url.render_as_string(hide_password=False)
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SQS_QUEUE_URL", "REJECTED_RETENTION_DAYS")}
    return subprocess.run([sys.executable, "-m", "consumer", *args, "--database-url", url], capture_output=True,
                          env={**clean, **(env or {})}, timeout=120)


def _seen_at(engine, **last_seen: datetime) -> None:
    """Set last_seen_at of the rows whose payload is given by name in PAYLOADS."""
    with engine.begin() as connection:
        for name, when in last_seen.items():
            connection.execute(update(rejected_events).where(rejected_events.c.payload == PAYLOADS[name]).values(last_seen_at=when))


PAYLOADS = {"old": b"{old", "may": b"{may", "june": b"{june", "fresh": b"{fresh"}
UTC = timezone.utc


def _four_ages(engine) -> None:
    apply_events(engine, list(PAYLOADS.values()))
    now = datetime.now(UTC)
    _seen_at(engine, old=datetime(2023, 1, 1, tzinfo=UTC), may=datetime(2024, 4, 30, 23, 59, 59, 999000, tzinfo=UTC),
             june=datetime(2024, 5, 1, tzinfo=UTC), fresh=now - timedelta(days=1))


def _left(engine) -> list[bytes]:
    return sorted(row["payload"] for row in rejected_rows(engine))


def test_list_and_show_tell_how_often_and_when_an_input_was_seen(engine):
    apply_events(engine, [BAD, OTHER, BAD], batch_size=1)
    apply_events(engine, [BAD])
    listed = json.loads(_cli(engine, "rejected", "list", "--json").stdout)
    assert [(row["times_seen"], row["source"]) for row in listed] == [(3, "test:1"), (1, "test:2")]  # most recently seen first
    assert all(row["last_seen_at"] >= row["received_at"] for row in listed)
    table = _cli(engine, "rejected", "list").stdout.decode()
    assert "seen" in table.splitlines()[0] and "last_seen_at" in table.splitlines()[0]
    assert table.rstrip().endswith("2 of 2 quarantined inputs (distinct payloads)")
    shown = _cli(engine, "rejected", "show", str(rejected_rows(engine)[0]["id"])).stdout.decode()
    fields = dict(line.split(None, 1) for line in shown.splitlines()[:9])
    assert (fields["times_seen"], fields["first_source"], fields["source"]) == ("3", "test:1", "test:1")
    assert "last_seen_at" in fields and "received_at" in fields


def test_status_counts_distinct_inputs_and_deliveries(engine):
    from consumer.status import collect

    apply_events(engine, [BAD, BAD, OTHER, BAD])
    with engine.begin() as connection:
        connection.execute(update(rejected_events).where(rejected_events.c.payload == OTHER)
                           .values(last_seen_at=datetime.now(UTC) - timedelta(days=40)))
    status = collect(engine, None, None, 0, rejected_retention_days=30)
    assert (status.rejected, status.rejected_deliveries, status.rejected_expired) == (2, 4, 1)
    assert status.healthy  # inputs past the retention are reported, not a failure
    text = _cli(engine, "status").stdout.decode()
    assert "rejected       2 distinct inputs (4 deliveries), 1 past the retention" in text


def test_retry_all_retries_each_distinct_payload_once(engine):
    fixed = encode(progress_event("2019-11-01T00:00:00Z"))
    with engine.begin() as connection:  # an input an older version rejected, delivered three times
        connection.execute(insert(rejected_events).values(source="old:1", reason="an old bug", payload=fixed))
    apply_events(engine, [BAD, BAD])
    with engine.begin() as connection:
        connection.execute(update(rejected_events).where(rejected_events.c.payload == fixed).values(times_seen=3))
    result = retry(engine, None)
    assert (result.retried, result.applied, result.still_rejected) == (2, 1, 1)
    assert [(row["payload"], row["times_seen"]) for row in rejected_rows(engine)] == [(BAD, 2)]
    with engine.connect() as connection:
        assert connection.execute(select(course_progress.c.user_id)).scalars().all() == [123]


def test_purge_before_a_date_deletes_what_was_last_seen_before_it(engine):
    from consumer.quarantine import purge

    _four_ages(engine)
    assert purge(engine, datetime(2024, 5, 1, tzinfo=UTC), dry_run=True) == 2
    assert len(rejected_rows(engine)) == 4
    assert purge(engine, datetime(2024, 5, 1, tzinfo=UTC)) == 2
    assert _left(engine) == sorted([PAYLOADS["june"], PAYLOADS["fresh"]])  # last seen at midnight exactly: kept
    assert purge(engine, None) == 2
    assert rejected_rows(engine) == []


@pytest.mark.parametrize(("given", "instant"), [
    ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),  # a date: midnight UTC
    ("2024-05-01T00:00:00Z", datetime(2024, 5, 1, tzinfo=UTC)),
    ("2024-05-01 00:00:00", datetime(2024, 5, 1, tzinfo=UTC)),  # no offset: UTC
    ("2024-05-01T02:00:00+02:00", datetime(2024, 5, 1, tzinfo=UTC)),  # the same instant
    (" 2024-04-30T23:59:59.999 ", datetime(2024, 4, 30, 23, 59, 59, 999000, tzinfo=UTC)),
])
def test_purge_before_takes_an_iso_date_or_date_time_in_utc(given, instant):
    from consumer.commands.ops import parse_utc

    assert parse_utc("--before", given) == instant


@pytest.mark.parametrize("given", ["yesterday", "2024-13-01", "01/05/2024", "", "2024-05-01T25:00"])
def test_purge_before_refuses_anything_else_naming_the_option_and_the_value(given):
    from consumer.commands.common import CommandError
    from consumer.commands.ops import parse_utc

    with pytest.raises(CommandError) as refused:
        parse_utc("--before", given)
    assert refused.value.exit_code == 2
    message = str(refused.value)
    assert message.startswith("--before: not an ISO 8601 date or date-time") and message.endswith(f"(got {given!r})")
    assert "\n" not in message


def test_purge_command_variants(engine):
    _four_ages(engine)
    dry = json.loads(_cli(engine, "rejected", "purge", "--before", "2024-05-01", "--dry-run", "--json").stdout)
    assert dry == {"deleted": 2, "last_seen_before": "2024-05-01T00:00:00+00:00", "dry_run": True}
    assert len(rejected_rows(engine)) == 4
    text = _cli(engine, "rejected", "purge", "--before", "2024-05-01T00:00:00Z")
    assert text.returncode == 0 and text.stdout.decode().strip() == "purged 2 quarantined inputs last seen before 2024-05-01T00:00:00+00:00"
    expired = _cli(engine, "rejected", "purge", "--expired", "--json", env={"REJECTED_RETENTION_DAYS": "2"})
    assert json.loads(expired.stdout)["deleted"] == 1  # June 2024; the one seen yesterday stays
    assert _left(engine) == [PAYLOADS["fresh"]]
    assert json.loads(_cli(engine, "rejected", "purge", "--expired", "--json").stdout)["deleted"] == 0  # default: 30 days
    everything = _cli(engine, "rejected", "purge", "--all", "--json")
    assert json.loads(everything.stdout) == {"deleted": 1, "last_seen_before": None, "dry_run": False}
    assert rejected_rows(engine) == []


def test_purge_refuses_what_it_cannot_understand_in_one_line(sqlite_engine):
    apply_events(sqlite_engine, [BAD])
    nothing = _cli(sqlite_engine, "rejected", "purge")  # never "everything" by surprise
    assert nothing.returncode == 2
    assert nothing.stderr.decode() == "error: say what to purge: --expired (older than REJECTED_RETENTION_DAYS), --before DATE, or --all\n"
    bad = _cli(sqlite_engine, "rejected", "purge", "--before", "yesterday")
    assert bad.returncode == 2
    assert bad.stderr.decode() == ("error: --before: not an ISO 8601 date or date-time, e.g. 2024-05-01 or "
                                   "2024-05-01T12:00:00Z (got 'yesterday')\n")
    bad_setting = _cli(sqlite_engine, "rejected", "purge", "--expired", env={"REJECTED_RETENTION_DAYS": "0"})
    assert bad_setting.returncode == 2 and b"Traceback" not in bad_setting.stderr  # one line: the settings sweep (item 9)
    assert "rejected_retention_days" in bad_setting.stderr.decode().lower()
    assert len(rejected_rows(sqlite_engine)) == 1


def test_retention_setting_is_documented_with_a_deliberate_default():
    from consumer.config import Settings

    field = Settings.model_fields["rejected_retention_days"]
    assert field.default == 30 and "personal data" in field.description
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert re.search(r"^\| `REJECTED_RETENTION_DAYS` \| .* \| `30` \|", readme, re.M)
    assert "rejected purge --expired" in readme


def test_the_purge_cronjob_runs_purge_expired_with_the_workers_settings():
    import yaml

    from consumer.cli import build_parser

    k8s = Path(__file__).resolve().parents[1] / "deploy" / "kubernetes"
    (cronjob,) = [doc for doc in yaml.safe_load_all((k8s / "base" / "rejected-purge-cronjob.yaml").read_text()) if doc]
    (worker,) = [doc for doc in yaml.safe_load_all((k8s / "base" / "worker-deployment.yaml").read_text()) if doc]
    (config,) = [doc for doc in yaml.safe_load_all((k8s / "common" / "configmap.yaml").read_text()) if doc]
    base = yaml.safe_load((k8s / "base" / "kustomization.yaml").read_text())
    assert "rejected-purge-cronjob.yaml" in base["resources"]  # deployed with the base
    assert cronjob["kind"] == "CronJob" and cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = build_parser().parse_args(container["args"])
    assert (args.command, args.rejected_command, args.expired) == ("rejected", "purge", True)
    assert container["envFrom"] == worker["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    assert int(config["data"]["REJECTED_RETENTION_DAYS"]) >= 1


# --- Migration 0005 on a quarantine that already holds duplicates ----------------------------------------------------


def _upgrade_to(engine, revision: str, downgrade: bool = False) -> None:
    from alembic import command

    from consumer.store.migrate import alembic_config

    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if downgrade else command.upgrade)(config, revision)


def _rejected_events_differences(engine) -> list:
    """What differs between the database's rejected_events and the model's (other tables are other migrations' business)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from consumer.store.tables import metadata

    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), metadata)
    flat = [item for group in differences for item in (group if isinstance(group, list) else [group])]
    return [item for item in flat if "rejected_events" in repr(item)]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_migration_0005_merges_the_duplicates_already_stored(dialect, sqlite_url, new_pg_database):
    from consumer.store.engine import make_engine
    from consumer.store.migrate import upgrade

    engine = make_engine(sqlite_url if dialect == "sqlite" else new_pg_database())
    _upgrade_to(engine, "0004")

    def at(day: int, second: int = 0) -> str:  # as the old server default wrote them
        return f"2024-05-{day:02d} 10:00:{second:02d}" + ("+00:00" if dialect == "postgresql" else "")

    old_rows = [  # (received_at, source, reason, payload, event_name, receive_count), in id order
        (at(3), "file:1", "reason A1", b"{a", None, None),
        (at(1), "msg-b1", "reason B1", b"{b", "course_updated", 1),
        (at(5), "file:2", "reason A2", b"{a", None, None),
        (at(2), "file:9", "reason C", b"{c", None, None),
        (at(4), "msg-a3", "reason A3", b"{a", "course_progress", 4),  # not the latest: inserted out of order
        (at(1), "msg-b2", "reason B2", b"{b", "course_updated", 2),  # same instant as b1 (one batch): the later id wins
    ]
    with engine.begin() as connection:
        for received_at, source, reason, payload, event_name, receive_count in old_rows:
            connection.execute(
                text("INSERT INTO rejected_events (received_at, source, reason, payload, event_name, receive_count) "
                     "VALUES (:received_at, :source, :reason, :payload, :event_name, :receive_count)"),
                {"received_at": received_at, "source": source, "reason": reason, "payload": payload,
                 "event_name": event_name, "receive_count": receive_count},
            )
    upgrade(engine)
    assert _rejected_events_differences(engine) == []

    def when(day: int) -> datetime:
        return datetime(2024, 5, day, 10, tzinfo=UTC)

    merged = {row["payload"]: row for row in rejected_rows(engine)}
    assert [row["id"] for row in rejected_rows(engine)] == [1, 2, 4]  # the lowest id of each payload survives
    a, b, c = merged[b"{a"], merged[b"{b"], merged[b"{c"]
    assert (a["times_seen"], a["received_at"], a["last_seen_at"]) == (3, when(3), when(5))
    assert (a["first_source"], a["source"], a["reason"], a["event_name"], a["receive_count"]) == ("file:1", "file:2", "reason A2", None, None)
    assert (b["times_seen"], b["received_at"], b["last_seen_at"]) == (2, when(1), when(1))
    assert (b["first_source"], b["source"], b["reason"], b["receive_count"]) == ("msg-b1", "msg-b2", "reason B2", 2)
    assert (c["times_seen"], c["first_source"], c["source"], c["received_at"], c["last_seen_at"]) == (1, "file:9", "file:9", when(2), when(2))
    assert all(row["payload_sha256"] == hashlib.sha256(row["payload"]).digest() for row in merged.values())

    apply_events(engine, [b"{a", b"{d"])  # and from now on a re-delivery is counted on its row
    after = {row["payload"]: row["times_seen"] for row in rejected_rows(engine)}
    assert after == {b"{a": 4, b"{b": 2, b"{c": 1, b"{d": 1}
    engine.dispose()


def test_workers_of_the_previous_version_still_quarantine_during_a_rolling_upgrade(pg_engine):
    """Their INSERT names none of 0005's columns: a trigger counts it on the payload's row (Postgres)."""
    old_insert = text("INSERT INTO rejected_events (source, reason, payload, event_name, receive_count) "
                      "VALUES (:source, :reason, :payload, :event_name, :receive_count)")
    deliveries = [("m1", BAD, 1), ("m2", BAD, 2), ("m3", OTHER, 1)]
    with pg_engine.begin() as connection:
        connection.execute(old_insert, [{"source": source, "reason": "old reason", "payload": payload, "event_name": None,
                                         "receive_count": count} for source, payload, count in deliveries])
    apply_events(pg_engine, [BAD])  # then a new worker gets it too
    stored = rejected_rows(pg_engine)
    assert [(r["payload"], r["times_seen"], r["first_source"], r["source"]) for r in stored] == [(BAD, 3, "m1", "test:1"), (OTHER, 1, "m3", "m3")]
    assert all(r["payload_sha256"] == hashlib.sha256(r["payload"]).digest() for r in stored)
    assert stored[0]["last_seen_at"] >= stored[0]["received_at"]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_migration_0005_downgrades_and_upgrades_again(dialect, sqlite_url, new_pg_database):
    from consumer.store.engine import make_engine

    engine = make_engine(sqlite_url if dialect == "sqlite" else new_pg_database())
    _upgrade_to(engine, "0005")
    apply_events(engine, [BAD, BAD, OTHER])  # only rejections: nothing that later revisions' columns could matter to
    _upgrade_to(engine, "0004", downgrade=True)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM rejected_events")).scalar_one() == 2
    _upgrade_to(engine, "0005")
    assert _rejected_events_differences(engine) == []
    assert [row["times_seen"] for row in rejected_rows(engine)] == [1, 1]  # the counts went with the downgrade
    engine.dispose()


@pytest.mark.parametrize("given", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00"])
def test_purge_before_a_date_beyond_the_range_is_a_usage_error(given):
    from consumer.commands.common import CommandError
    from consumer.commands.ops import parse_utc

    with pytest.raises(CommandError) as refused:
        parse_utc("--before", given)
    assert refused.value.exit_code == 2 and str(refused.value) == f"--before: out of the range of dates (got {given!r})"


def test_show_escapes_what_a_terminal_would_act_on(sqlite_engine):
    hostile = b'{"metadata": {"event_name": "x\x1b]0;pwned\x07\x1b[2J\xc2\x9b"}}\n{"second": "line"}'
    apply_events(sqlite_engine, [hostile])
    shown = _cli(sqlite_engine, "rejected", "show", "1")
    assert shown.returncode == 0
    assert b"\x1b" not in shown.stdout and b"\x07" not in shown.stdout and "\u009b".encode() not in shown.stdout
    assert b"\\u001b]0;pwned\\u0007" in shown.stdout and b'{"second": "line"}' in shown.stdout
    assert _cli(sqlite_engine, "rejected", "show", "1", "--raw").stdout == hostile  # the bytes, for who asks


def test_rejected_payloads_travel_in_statements_of_bounded_size(monkeypatch, engine):
    # Postgres drops the connection on a protocol message over 1 GB, which would look like an outage.
    from consumer.store import quarantine_rows

    monkeypatch.setattr(quarantine_rows, "_MAX_STATEMENT_BYTES", 10_000)
    payloads = [b"junk %d " % n + b"x" * 3000 for n in range(12)]
    counts = apply_events(engine, payloads, batch_size=12)
    assert counts.rejected == 12 and sorted(row["payload"] for row in rejected_rows(engine)) == sorted(payloads)
    assert [len(chunk) for chunk in quarantine_rows._by_size([(b"", p, "", "", "", None, None, 1) for p in payloads])] == [3, 3, 3, 3]
