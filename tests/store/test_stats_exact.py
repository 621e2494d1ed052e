"""The per-course counters (course_progress_stats, course_completion) are the same for any order of the events.

They were a float sum of shares, whose last bits depended on the order rows changed in (migration 0010 made it
integer billionths, as the daily figures): the contract's rule is the same tables for any order, any split.
"""

from __future__ import annotations

import random

import pytest
from alembic import command
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from consumer.store.migrate import alembic_config
from tests.factory import progress_event
from tests.helpers import apply_events, budget

pytestmark = pytest.mark.integration
UNIT = 1_000_000_000
STATS = "SELECT * FROM course_progress_stats ORDER BY course_id"
COMPLETION = "SELECT course_id, students, completed, completion_rate, mean_share_done FROM course_completion ORDER BY course_id"


def _empty(engine) -> None:
    with engine.begin() as connection:
        for table in ("course_progress", "course_progress_stats", "course_progress_history",
                      "course_progress_daily_changes", "users", "courses"):
            connection.execute(text(f"DELETE FROM {table}"))


def _figures(engine) -> tuple[list[tuple], list[tuple]]:
    with engine.connect() as connection:
        return ([tuple(row) for row in connection.execute(text(STATS))],
                [tuple(row) for row in connection.execute(text(COMPLETION))])


events = st.lists(
    st.builds(
        lambda second, course, user, done, total, error: progress_event(
            f"2019-11-02T00:{second // 60:02d}:{second % 60:02d}Z", course_id=str(course), user_id=str(user),
            done=min(done, total), total=total, error="boom" if error else None),
        st.integers(0, 3599), st.integers(1, 3), st.integers(1, 40), st.integers(0, 13), st.integers(0, 13),
        st.integers(0, 9).map(lambda n: n == 0),  # an error body, now and then
    ),
    min_size=1, max_size=120,
)


@budget(25)
@given(events=events, seed=st.integers(0, 2**32 - 1), batch=st.sampled_from([1, 3, 7, 1000]))
def test_the_counters_are_the_same_for_any_order_and_split(engine, events, seed, batch):
    """Shares like 1/3, 5/7, 11/13 do not add up to the same float in every order; billionths do."""
    _empty(engine)
    apply_events(engine, events)
    first = _figures(engine)
    shuffled = list(events)
    random.Random(seed).shuffle(shuffled)
    _empty(engine)
    apply_events(engine, shuffled, batch_size=batch)
    assert _figures(engine) == first


def test_a_course_of_many_students_has_the_same_counters_in_any_order(engine):
    """Hundreds of students with shares that are no binary fraction, each updated a few times: the float sum
    came out different in its last bits for a reversed or shuffled delivery, on both databases."""
    rng = random.Random(16)
    deliveries = [progress_event(f"2019-11-02T{hour:02d}:00:00Z", course_id="79", user_id=str(user),
                                 done=rng.randint(0, 12), total=rng.choice([3, 7, 11, 12, 13]) + 12)
                  for user in range(1, 401) for hour in range(rng.randint(1, 3))]
    figures = []
    for order in (deliveries, deliveries[::-1], rng.sample(deliveries, len(deliveries))):
        _empty(engine)
        apply_events(engine, order, batch_size=97)
        figures.append(_figures(engine))
    assert figures[1] == figures[0] and figures[2] == figures[0]


def test_the_mean_share_done_is_exact_to_a_billionth(engine):
    """Three students at 1/3, 2/7 and 12/13: the mean is the sum of floor(share * 10^9) over 3 * 10^9."""
    _empty(engine)
    apply_events(engine, [progress_event("2019-11-02T00:00:00Z", course_id="77", user_id=str(user), done=done, total=total)
                          for user, (done, total) in enumerate([(1, 3), (2, 7), (12, 13)], 1)])
    with engine.connect() as connection:
        share_sum, share_count = connection.execute(
            text("SELECT share_sum, share_count FROM course_progress_stats WHERE course_id = 77")).one()
        mean = connection.execute(text("SELECT mean_share_done FROM course_completion WHERE course_id = 77")).scalar_one()
    assert (share_sum, share_count) == (1 * UNIT // 3 + 2 * UNIT // 7 + 12 * UNIT // 13, 3)
    assert mean == pytest.approx(share_sum / (3 * UNIT), rel=1e-6)  # SQLite's REAL division is a double too


def test_migration_0010_recomputes_the_counters_and_goes_back(engine):
    """A database with counters as floats (0009) gets them in billionths, computed from its rows; down and up
    again leaves the same figures."""
    _empty(engine)
    apply_events(engine, [progress_event("2019-11-02T00:00:00Z", course_id="78", user_id=str(user), done=done, total=total)
                          for user, (done, total) in enumerate([(1, 3), (5, 7), (0, 4)], 1)])
    after = _figures(engine)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0009")
    with engine.connect() as connection:
        old_sum = connection.execute(text("SELECT share_sum FROM course_progress_stats WHERE course_id = 78")).scalar_one()
    assert old_sum == pytest.approx(1 / 3 + 5 / 7, rel=1e-6)  # 0004's float (a REAL share on Postgres)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    assert _figures(engine) == after
    with engine.connect() as connection:
        share_sum = connection.execute(text("SELECT share_sum FROM course_progress_stats WHERE course_id = 78")).scalar_one()
    assert share_sum == UNIT // 3 + 5 * UNIT // 7  # in billionths


@pytest.mark.postgres
def test_migration_0010_keeps_what_was_granted_on_the_views(pg_engine):
    """course_completion is replaced in place: a BI role's SELECT on it survives the upgrade."""
    config = alembic_config()
    with pg_engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0009")
        connection.execute(text("DROP ROLE IF EXISTS stats_exact_reader"))
        connection.execute(text("CREATE ROLE stats_exact_reader NOLOGIN"))
        connection.execute(text("GRANT SELECT ON course_completion, account_completion TO stats_exact_reader"))
        command.upgrade(config, "head")
    try:
        with pg_engine.connect() as connection:
            granted = connection.execute(text(
                "SELECT has_table_privilege('stats_exact_reader', 'course_completion', 'SELECT'), "
                "has_table_privilege('stats_exact_reader', 'account_completion', 'SELECT')")).one()
        assert tuple(granted) == (True, True)
    finally:
        with pg_engine.begin() as connection:
            connection.execute(text("DROP OWNED BY stats_exact_reader"))
            connection.execute(text("DROP ROLE stats_exact_reader"))


def test_completed_counts_above_the_requirement_count_count_as_done_and_never_overflow(engine):
    """A share done is capped at 1, as in the daily figures: six students at 2**31 - 1 of 1 are all applied (an
    uncapped sum of billionths would pass a BIGINT's range at the fifth), the mean is 1, and the current figures
    agree with the course's last day."""
    _empty(engine)
    largest = 2**31 - 1
    counts = apply_events(engine, [progress_event("2019-11-02T00:00:00Z", course_id="80", user_id=str(user),
                                                  done=largest, total=1) for user in range(1, 7)])
    assert (counts.applied, counts.rejected) == (6, 0)
    with engine.connect() as connection:
        share_sum, share_count = connection.execute(
            text("SELECT share_sum, share_count FROM course_progress_stats WHERE course_id = 80")).one()
        mean = connection.execute(text("SELECT mean_share_done FROM course_completion WHERE course_id = 80")).scalar_one()
        daily = connection.execute(text(
            "SELECT mean_share_done FROM course_progress_daily WHERE course_id = 80 ORDER BY day DESC LIMIT 1")).scalar_one()
    assert (share_sum, share_count) == (6 * UNIT, 6) and isinstance(share_sum, int)
    assert mean == 1.0 and daily == 1.0


def test_a_failed_sqlite_upgrade_leaves_the_database_as_it_was(sqlite_engine):
    """The SQLite upgrade runs in one transaction: when it fails half-way (here a user's view on
    account_completion, which the table copy's rename refuses to leave dangling), the views, the triggers and
    the revision are those of 0009, writes still keep the counters, and once the view is gone the upgrade runs."""
    config = alembic_config()
    with sqlite_engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0009")
        connection.execute(text("CREATE VIEW my_accounts AS SELECT account_id, students FROM account_completion"))
    with pytest.raises(Exception, match="my_accounts"):
        with sqlite_engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    with sqlite_engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0009"
        objects = {row[0] for row in connection.execute(text("SELECT name FROM sqlite_master WHERE type IN ('view', 'trigger')"))}
        assert {"course_completion", "account_completion", "progress_distribution", "my_accounts",
                "course_progress_stats_insert", "course_progress_stats_update", "course_progress_stats_delete"} <= objects
        assert not connection.execute(text("SELECT name FROM sqlite_master WHERE name LIKE '_alembic_tmp%'")).all()
    _empty(sqlite_engine)
    apply_events(sqlite_engine, [progress_event("2019-11-02T00:00:00Z", course_id="81", done=1, total=3)])
    with sqlite_engine.connect() as connection:
        assert connection.execute(text("SELECT students FROM course_progress_stats WHERE course_id = 81")).scalar_one() == 1
    with sqlite_engine.begin() as connection:
        connection.execute(text("DROP VIEW my_accounts"))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    with sqlite_engine.connect() as connection:
        assert connection.execute(text("SELECT share_sum FROM course_progress_stats WHERE course_id = 81")).scalar_one() == UNIT // 3
