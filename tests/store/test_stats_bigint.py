"""Counts up to 2**31 - 1 are applied on both databases: the dashboard counters' buckets are computed in BIGINT."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import select, text

from consumer.store.migrate import alembic_config
from consumer.store.tables import course_progress, course_progress_stats
from tests.factory import progress_event
from tests.helpers import apply_events

pytestmark = pytest.mark.integration
LARGEST = 2**31 - 1  # the largest count the parser accepts (consumer/events/fields.py)


@pytest.mark.parametrize(("done", "total", "bucket"), [
    (LARGEST - 1, LARGEST, "bucket_75_100"),  # (done * 4) and (total * 3) both overflow a 32-bit integer
    (2**29 - 1, LARGEST, "bucket_0_24"),  # just under a quarter: done * 4 is 2**31 - 4
    (2**30 - 1, LARGEST, "bucket_25_49"),
])
def test_the_largest_counts_are_applied_and_counted_in_their_bucket(engine, done, total, bucket):
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM course_progress"))
        connection.execute(text("DELETE FROM course_progress_stats"))
    counts = apply_events(engine, [progress_event("2019-11-02T00:00:00Z", course_id="9001", done=done, total=total)])
    assert (counts.applied, counts.rejected) == (1, 0)
    with engine.connect() as connection:
        stored = connection.execute(select(course_progress.c.requirement_completed_count)).scalar_one()
        stats = connection.execute(select(course_progress_stats).where(course_progress_stats.c.course_id == 9001)).one()
    assert stored == done
    assert getattr(stats, bucket) == 1 and stats.students == 1


@pytest.mark.postgres
def test_migration_0009_replaces_trigger_functions_that_overflow(pg_engine):
    """A database whose 0004 functions compute in integer (as before the fix) gets BIGINT ones from 0009."""
    with pg_engine.begin() as connection:
        for name in ("insert", "update"):
            source = connection.execute(text(
                "SELECT pg_get_functiondef(p.oid) FROM pg_proc p WHERE p.proname = :name"
            ), {"name": f"course_progress_stats_{name}"}).scalar_one()
            connection.execute(text(source.replace("CAST(t.requirement_completed_count AS BIGINT)", "t.requirement_completed_count")
                                          .replace("CAST(t.requirement_count AS BIGINT)", "t.requirement_count")))
        connection.execute(text("DELETE FROM course_progress"))
        connection.execute(text("DELETE FROM course_progress_stats"))
    event = progress_event("2019-11-02T00:00:00Z", course_id="9002", done=LARGEST - 1, total=LARGEST)
    assert apply_events(pg_engine, [event]).rejected == 1  # the old arithmetic: "integer out of range"
    config = alembic_config()
    with pg_engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0008")
        command.upgrade(config, "head")
    event = progress_event("2019-11-02T00:00:01Z", course_id="9002", done=LARGEST - 1, total=LARGEST)
    assert apply_events(pg_engine, [event]).applied == 1
