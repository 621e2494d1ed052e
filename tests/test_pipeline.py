"""The pipeline isolates an input whose write fails, on both databases, and never blames the database for it."""

from __future__ import annotations

from consumer.core import Input, Tracked
from consumer.events.parse import parse_event
from consumer.pipeline import Pipeline
from tests.factory import encode, progress_event
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
