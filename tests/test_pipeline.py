"""consumer/pipeline.py: what a batch writes, what counts as applied, and isolating an input whose write fails.

The database tests run on SQLite and Postgres; the pipeline never blames the database for one input's fault.
"""

from __future__ import annotations

from consumer import pipeline as pipeline_module
from consumer.core import Ignored, Input, Rejected, Tracked
from consumer.events.course import CourseRow
from consumer.events.parse import parse_event
from consumer.events.progress import CourseMentionRow, HistoryRow, ProgressRow, UserRow
from consumer.events.registry import ROW_KINDS
from consumer.pipeline import Pipeline, event_label, rejections, rows_to_write, tally, write_items
from consumer.store.quarantine_rows import Rejection
from tests.factory import course_event, encode, progress_event
from tests.helpers import dump_tables, rejected_rows


def _parsed(user_id: str) -> tuple[Input, Tracked]:
    payload = encode(progress_event("2019-11-01T00:00:00Z", user_id=user_id))
    outcome = parse_event(payload)
    assert isinstance(outcome, Tracked)
    return Input(f"test:{user_id}", payload), outcome


def _spoiled(item: tuple[Input, Tracked], **changes) -> tuple[Input, Tracked]:
    """The same input with its progress row changed into something no database can take."""
    source, outcome = item
    progress, *others = outcome.rows
    return source, Tracked(outcome.event_name, outcome.event_time, (progress._replace(**changes), *others))


def test_an_input_that_cannot_be_encoded_is_quarantined_and_its_neighbours_commit(engine):
    # Parsing never builds such rows; if a bug ever did, one input must not take its batch down.
    items = [_parsed(str(n)) for n in range(1, 7)]
    items[2] = _spoiled(items[2], next_requirement_url="broken \ud800 surrogate")
    items[4] = _spoiled(items[4], requirement_count=2**70)
    counts = Pipeline(engine).commit(items)
    assert (counts.read, counts.applied, counts.rejected) == (6, 4, 2)
    assert sorted(row[1] for row in dump_tables(engine)["course_progress"]) == [1, 2, 4, 6]
    reasons = {row["source"]: row["reason"] for row in rejected_rows(engine)}
    assert set(reasons) == {"test:3", "test:5"}
    assert all("could not be written" in reason or "database refused" in reason for reason in reasons.values()), reasons


# --- What a batch writes, and what counts as applied: decided in pipeline.py, written by the store ------------------------


def _tracked(event: dict, source: str = "test") -> tuple[Input, Tracked]:
    payload = encode(event)
    outcome = parse_event(payload)
    assert isinstance(outcome, Tracked)
    return Input(source, payload), outcome


def test_rows_to_write_keeps_the_newest_row_per_key_grouped_by_kind():
    older = _tracked(progress_event("2019-11-01T00:00:00Z", done=2))
    newer = _tracked(progress_event("2019-11-02T00:00:00Z", done=5))
    other = _tracked(progress_event("2019-11-01T00:00:00Z", user_id="124", done=1))
    rejected = (Input("test:bad", b"{"), Rejected("invalid JSON"))
    rows = rows_to_write([newer, rejected, older, other])
    assert list(rows) == [kind for kind in ROW_KINDS if kind in rows]  # the order writes take
    assert {kind.__name__: len(kind_rows) for kind, kind_rows in rows.items()} == {
        "ProgressRow": 2, "UserRow": 2, "CourseMentionRow": 1, "HistoryRow": 3}
    progress = {row.user_id: row.requirement_completed_count for row in rows[ProgressRow]}
    assert progress == {123: 5, 124: 1}
    # Every distinct progress event is kept in the history, older ones too; without history, none is.
    assert sorted((row.user_id, row.requirement_completed_count) for row in rows[HistoryRow]) == [(123, 2), (123, 5), (124, 1)]
    assert HistoryRow not in rows_to_write([newer, older], history=False)


def test_rejections_are_built_from_the_rejected_inputs_only_as_received():
    good = _tracked(progress_event("2019-11-01T00:00:00Z"))
    payload = b'{"metadata": {"url": "https://x.example/?access_token=abc"}}'
    items = [(Input("msg-1", payload, receive_count=3, event_name="hint"), Rejected("a reason", "course_progress")),
             good, (Input("file:2", b"{"), Rejected("invalid JSON")), (Input("file:3", b"{}"), Ignored("asset_accessed"))]
    assert rejections(items) == [Rejection("msg-1", payload, "a reason", "course_progress", 3),
                                 Rejection("file:2", b"{", "invalid JSON", None, None)]


def test_tally_counts_applied_from_primary_rows_changed_and_the_rest_as_stale():
    items = [_tracked(progress_event("2019-11-01T00:00:00Z", user_id=str(n))) for n in range(3)]
    items += [_tracked(course_event("2019-11-01T00:00:00Z"))]
    items += [(Input("a", b""), Ignored("asset_accessed")), (Input("b", b""), Rejected("bad", "course_progress")),
              (Input("c", b""), Rejected("worse"))]
    # Side kinds (users, a course mentioned by progress) changing rows count nothing.
    counts = tally(items, {ProgressRow: 2, UserRow: 3, CourseMentionRow: 1, CourseRow: 0})
    assert counts.as_dict() == {"read": 7, "applied": 2, "stale_or_duplicate": 2, "ignored": 1, "rejected": 2}
    assert dict(counts.by_type) == {
        ("progress", "applied"): 2, ("progress", "stale_or_duplicate"): 1, ("course", "applied"): 0,
        ("course", "stale_or_duplicate"): 1, ("asset_accessed", "ignored"): 1, ("course_progress", "rejected"): 1,
        ("unknown", "rejected"): 1,
    }


def test_an_untracked_event_name_is_a_bounded_metrics_label():
    assert event_label("asset_accessed") == "asset_accessed"
    assert [event_label(name) for name in ("", "x" * 65, "Asset", "a\x1b[31m", "naïve")] == ["other"] * 5


def test_commit_counts_a_new_event_applied_and_the_same_event_again_a_duplicate(engine):
    pipeline = Pipeline(engine)
    items = [_tracked(progress_event("2019-11-02T00:00:00Z", user_id=str(n)), f"test:{n}") for n in range(3)]
    assert (pipeline.commit(items).applied, pipeline.commit(items).stale_or_duplicate) == (3, 3)
    older = [_tracked(progress_event("2019-11-01T00:00:00Z", user_id="0", done=1))]
    counts = pipeline.commit(older)
    assert (counts.applied, counts.stale_or_duplicate) == (0, 1)
    assert sorted(row[3] for row in dump_tables(engine)["course_progress"]) == [3, 3, 3]  # requirement_completed_count


def test_process_is_parse_then_commit(engine):
    inputs = [Input("test:1", encode(progress_event("2019-11-01T00:00:00Z"))), Input("test:2", b"{"),
              Input("test:3", encode(course_event("2019-11-01T00:00:00Z")))]
    pipeline = Pipeline(engine)
    parsed = pipeline.parse(inputs)
    assert [type(outcome) for _, outcome in parsed] == [Tracked, Rejected, Tracked]
    assert [item for item, _ in parsed] == inputs
    counts = pipeline.process(inputs)
    assert (counts.read, counts.applied, counts.rejected) == (3, 2, 1)
    assert [row["source"] for row in rejected_rows(engine)] == ["test:2"]


def test_without_user_names_no_name_or_email_reaches_the_rows():
    (_, outcome), = Pipeline(None, store_user_names=False).parse([Input("t", encode(progress_event("2019-11-01T00:00:00Z")))])
    (user,) = [row for row in outcome.rows if isinstance(row, UserRow)]
    assert (user.name, user.email) == (None, None)


class Rollback(Exception):
    sqlstate = "40P01"  # deadlock_detected: the database rolled the transaction back


def test_a_transaction_the_database_rolls_back_is_retried(engine, monkeypatch):
    calls = []

    def rolled_back_once(connection, items, history):
        calls.append(len(items))
        if len(calls) == 1:
            raise Rollback("deadlock detected")
        return write_items(connection, items, history)

    monkeypatch.setattr(pipeline_module, "write_items", rolled_back_once)
    counts = Pipeline(engine).commit([_tracked(progress_event("2019-11-01T00:00:00Z"))])
    assert (calls, counts.applied, counts.rejected) == ([1, 1], 1, 0)
    assert rejected_rows(engine) == []


def test_made_up_event_names_cannot_add_metric_series_without_bound(monkeypatch):
    """A sender inventing names (an unsigned receiver, a queue anyone can write) gets at most MAX_EVENT_LABELS
    label values; names seen before keep theirs."""
    import consumer.pipeline as pipeline

    monkeypatch.setattr(pipeline, "_labels_seen", set())
    names = [f"invented_{n}" for n in range(pipeline.MAX_EVENT_LABELS + 50)]
    labels = [event_label(name) for name in names]
    assert labels[: pipeline.MAX_EVENT_LABELS] == names[: pipeline.MAX_EVENT_LABELS]
    assert set(labels[pipeline.MAX_EVENT_LABELS :]) == {"other"}
    assert event_label(names[0]) == names[0]


def test_a_pool_that_has_no_connection_to_give_is_the_databases_fault_not_the_inputs(sqlite_engine, monkeypatch):
    """SQLAlchemy's pool timeout (every connection taken) is not bisected as if one input were at fault (which, if
    the pool recovered between an input's write and its quarantine row, would quarantine a good event)."""
    import pytest
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from consumer.core import DatabaseUnavailable, Input
    from consumer.synthetic import generate

    pipeline = Pipeline(sqlite_engine)

    calls = []

    def exhausted(items):
        calls.append(len(items))
        raise PoolTimeout("QueuePool limit of size 5 overflow 10 reached, connection timed out, timeout 30.00")

    monkeypatch.setattr(pipeline, "_write", exhausted)
    with pytest.raises(DatabaseUnavailable):
        pipeline.process([Input(f"t:{n}", payload) for n, payload in enumerate(generate(10, 1))])
    assert calls == [10]  # one attempt, no bisection
