"""Review of issue 14 (demonstration, fails at the time of writing): on Postgres, who is in `stalled_students`
depends on the session's time zone.

The view (migration 0008 `_stalled_view`) tests `last_event_time < now() - N * interval '1 day'`. Subtracting
days from a timestamptz moves the wall clock of the session's zone, so across a daylight-saving change
"N days" is 24 N +- 1 hours; `days_inactive` counts whole 86,400-second days, and SQLite's julianday too.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, insert, select, text

from consumer.store.tables import bi_settings, stalled_students
from tests.factory import progress_event
from tests.helpers import apply_events

ZONE = "America/Los_Angeles"


def days_back_to_a_clock_change(now: datetime) -> int:
    """The fewest whole days N such that the zone's UTC offset changed between now - N days and now."""
    zone = ZoneInfo(ZONE)
    offset = now.astimezone(zone).utcoffset()
    for days in range(1, 400):
        if (now - timedelta(days=days)).astimezone(zone).utcoffset() != offset:
            return days + 1
    raise AssertionError("no clock change in 400 days")


@pytest.mark.postgres
def test_stalled_students_are_the_same_in_any_session_time_zone(pg_engine):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    days = days_back_to_a_clock_change(now)
    stamp = lambda when: when.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    # Two students just either side of N days of 24 hours: one of them is N days +- 1 hour away on the wall clock.
    apply_events(pg_engine, [
        progress_event(stamp(now - timedelta(days=days, minutes=30)), user_id="1", done=1, total=5),
        progress_event(stamp(now - timedelta(days=days, minutes=-30)), user_id="2", done=1, total=5),
    ])
    with pg_engine.begin() as connection:
        connection.execute(delete(bi_settings))
        connection.execute(insert(bi_settings).values(id=1, stalled_after_days=days))
    listed = {}
    try:
        for zone in ("UTC", ZONE):
            with pg_engine.connect() as connection:
                connection.execute(text("SELECT set_config('TimeZone', :zone, false)"), {"zone": zone})
                listed[zone] = sorted(connection.execute(select(stalled_students.c.user_id)).scalars())
    finally:
        with pg_engine.begin() as connection:  # bi_settings is shared reference data: put the default back
            connection.execute(delete(bi_settings))
            connection.execute(insert(bi_settings).values(id=1, stalled_after_days=14))
    assert listed["UTC"] == [1]  # inactive for N days and 30 minutes: stalled; 30 minutes short of N days: not
    assert listed[ZONE] == listed["UTC"]  # fails: [] or [1, 2], one hour off across the clock change
