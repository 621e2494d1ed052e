"""benchmarks/receive.py: `python -m benchmarks receive` runs a real receiver end to end and reports every figure
(no thresholds: figures are for people; CI prints real ones), including whether every 2xx'd event is in the tables."""

from __future__ import annotations

from benchmarks.receive import missing_rows
from consumer.synthetic import generate
from tests.benchmarks.tables import row_counts
from tests.helpers import apply_events


def test_receive_reports_throughput_latency_and_the_spool_and_checks_every_acknowledged_event(figures, new_pg_database):
    database = new_pg_database()
    result = figures("receive", "--events", "300", "--senders", "8", "--spool-events", "120", "--database-url", database)
    throughput, spool = result["throughput"], result["spool"]
    assert throughput["statuses"] == {"200": 300} and throughput["acknowledged"] == 300
    assert throughput["events_per_second"] > 0 and 0 < throughput["p50_ms"] <= throughput["p99_ms"]
    assert 1 <= throughput["groups"] <= 300 and throughput["all_present"]
    assert spool["held"] == 120 and spool["acknowledged"] == 120 and spool["all_present"]
    assert spool["drain_events_per_second"] > 0
    assert set(row_counts(database).values()) == {0}  # it empties its scratch database after


def test_the_presence_check_finds_an_event_the_tables_lack(sqlite_engine):
    """The check can fail: with the newest event of a key missing from the tables, that key is counted."""
    events = list(generate(60, 3))
    apply_events(sqlite_engine, events[:-20])
    missing = missing_rows(sqlite_engine, events)
    assert sum(missing.values()) > 0
    apply_events(sqlite_engine, events[-20:])
    assert sum(missing_rows(sqlite_engine, events).values()) == 0
