"""parse_event: envelopes, validation, normalisation and rejection reasons, without a server."""

from datetime import datetime, timezone

import pytest

from consumer.core import Ignored, Rejected, Tracked
from consumer.events.course import CourseRow
from consumer.events.parse import parse_event
from consumer.events.progress import CourseMentionRow, HistoryRow, ProgressRow, UserRow
from consumer.events.section import SectionRow
from tests.factory import course_event, encode, payload, progress_event, sample, section_event, wrapped


def tracked(event) -> Tracked:
    outcome = parse_event(event if isinstance(event, bytes) else encode(event))
    assert isinstance(outcome, Tracked), outcome
    return outcome


def rejected(event) -> str:
    outcome = parse_event(event if isinstance(event, bytes) else encode(event))
    assert isinstance(outcome, Rejected), outcome
    return outcome.reason


def test_documented_course_completed_example():
    outcome = tracked(sample("course_completed"))
    progress, user, course, history = outcome.rows
    assert progress == ProgressRow(
        course_id=565,
        user_id=123,
        requirement_count=6,
        requirement_completed_count=6,
        next_requirement_url="http://oxana.instructure.com/courses/565/modules/items/12345",
        completed_at=datetime(2019, 11, 5, 13, 38, 0, 218000, tzinfo=timezone.utc),
        is_completed=True,
        progress_error=None,
        last_event_name="course_completed",
        last_event_time=datetime(2019, 11, 1, 19, 11, 26, 615000, tzinfo=timezone.utc),
        last_event_rank=progress.last_event_rank,
    )
    assert user == UserRow(123, "Isaac Newton", "inewton@example.edu", outcome.event_time, progress.last_event_rank)
    assert course == CourseMentionRow(565, 79, "Computer Science I", "2017.100.101.101-1", outcome.event_time, progress.last_event_rank)
    assert history == HistoryRow(
        course_id=565, user_id=123, event_time=outcome.event_time, event_name="course_completed", requirement_count=6,
        requirement_completed_count=6, completed_at=progress.completed_at, is_completed=True, progress_error=None,
        event_rank=history.event_rank,
    )
    # The history's rank is the same rule without the student's name and email: still a completion, still content.
    assert history.event_rank >> 60 == 1 and history.event_rank != progress.last_event_rank


def test_course_event_keeps_global_id_and_stores_local_ids():
    (row,) = tracked(sample("course_updated")).rows
    assert isinstance(row, CourseRow)
    assert (row.id, row.global_id, row.account_id) == (565, 21070000000000565, 79)
    assert row.updated_at == datetime(2019, 10, 30, 13, 15, 42, tzinfo=timezone.utc)  # from -04:00


def test_section_event_fields():
    (row,) = tracked(section_event("2019-10-29T16:40:12Z", stuck_sis_fields=["name"], integration_id="", sis_batch_id=88)).rows
    assert isinstance(row, SectionRow)
    assert row.stuck_sis_fields == ["name"]
    assert row.integration_id == ""  # empty strings stay empty strings
    assert row.sis_batch_id == 88
    assert row.nonxlist_course_id is None  # null stays NULL


def test_ids_may_arrive_as_numbers():
    (row,) = tracked(course_event("2019-10-29T16:40:12Z", course_id=21070000000000565)).rows
    assert row.id == 565 and row.global_id == 21070000000000565


def test_cross_shard_user_id_is_made_local():
    progress, user, _, _ = tracked(progress_event("2019-10-29T16:40:12Z", user_id="21070000000000202")).rows
    assert progress.user_id == 202 and user.id == 202


def test_completed_event_without_completed_at_takes_event_time():
    progress, _, _, history = tracked(progress_event("2019-09-20T21:45:31.900-04:00", event_name="course_completed", done=5, total=5)).rows
    assert progress.is_completed is True
    assert progress.completed_at == datetime(2019, 9, 21, 1, 45, 31, 900000, tzinfo=timezone.utc)


def test_progress_event_is_never_completed():
    progress, _, _, history = tracked(progress_event("2019-09-20T00:00:00Z", done=5, total=5, completed_at="2019-09-19T00:00:00Z")).rows
    assert progress.is_completed is False
    assert progress.completed_at == datetime(2019, 9, 19, tzinfo=timezone.utc)


def test_error_body_nulls_counts_and_keeps_message():
    progress, _, _, history = tracked(progress_event("2019-09-20T00:00:00Z", error="no progress available")).rows
    assert progress.progress_error == "no progress available"
    assert (history.progress_error, history.requirement_count, history.is_completed) == ("no progress available", None, False)
    assert (progress.requirement_count, progress.requirement_completed_count, progress.next_requirement_url, progress.completed_at) == (
        None,
        None,
        None,
        None,
    )


def test_unknown_fields_are_ignored():
    event = course_event("2019-10-29T16:40:12Z", account_uuid="x", brand_new_field={"nested": [1, 2]})
    event["metadata"]["something_new"] = True
    assert tracked(event).event_name == "course_updated"


def test_untracked_event_is_ignored_without_validation():
    outcome = parse_event(b'{"metadata": {"event_name": "asset_accessed"}, "body": "anything"}')
    assert outcome == Ignored("asset_accessed")


def test_sns_notification_is_unwrapped():
    assert tracked(payload("sns-notification")).rows == tracked(sample("course_completed")).rows


@pytest.mark.parametrize("envelope", ["sns", "sns2"])
def test_every_sample_event_in_sns_gives_the_rows_of_the_bare_event(envelope):
    for name in ("course_created", "course_updated", "course_section_created", "course_section_updated", "course_progress"):
        assert tracked(wrapped(sample(name), envelope)).rows == tracked(sample(name)).rows


def test_caliper_envelope_is_refused_by_name():
    reason = rejected(payload("caliper-envelope"))
    assert "Caliper" in reason and "format to 'Canvas'" in reason


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty input"),
        (b"   \n", "empty input"),
        (b'{"metadata": {"event_name": "course_updated"', "invalid JSON"),
        (b'{"metadata": {"event_name": "\xff\xfe"}}', "invalid JSON"),
        (b"[1, 2]", "expected a JSON object, got an array"),
        (b'"course_updated"', "expected a JSON object, got a string"),
        (payload("sns-message-not-json"), "SNS notification field Message is not valid JSON"),
        (payload("sns-message-not-a-string"), "SNS notification field Message is not a string"),
        (b'{"body": {}}', "metadata: required object is missing"),
        (b'{"metadata": [], "body": {}}', "metadata: expected an object, got an array (got [])"),
        (b'{"metadata": {"event_time": "2019-11-01T00:00:00Z"}, "body": {}}', "metadata.event_name: required field is missing"),
        (b'{"metadata": {"event_name": "course_updated"}, "body": {}}', "metadata.event_time: required field is missing"),
        (b'{"metadata": {"event_name": "course_updated", "event_time": "2019-11-01T00:00:00Z"}}', "body: required object is missing"),
    ],
)
def test_malformed_inputs_are_rejected_with_a_reason(payload, reason):
    assert reason in rejected(payload)


@pytest.mark.parametrize(
    ("event", "field", "value"),
    [
        (course_event("not a time"), "metadata.event_time", '"not a time"'),
        (course_event("2019-11-01T00:00:00Z", course_id=565.0), "body.course_id", "565.0"),
        (course_event("2019-11-01T00:00:00Z", course_id="abc"), "body.course_id", '"abc"'),
        (course_event("2019-11-01T00:00:00Z", updated_at="last tuesday"), "body.updated_at", '"last tuesday"'),
        (course_event("2019-11-01T00:00:00Z", name="bad\u0000name"), "body.name", "NUL"),
        (section_event("2019-11-01T00:00:00Z", default_section="maybe"), "body.default_section", '"maybe"'),
        (section_event("2019-11-01T00:00:00Z", course_id=None), "body.course_id", "null"),
        (section_event("2019-11-01T00:00:00Z", end_at=""), "body.end_at", '""'),
        (progress_event("2019-11-01T00:00:00Z", done="three"), "body.progress.requirement_completed_count", '"three"'),
        (progress_event("2019-11-01T00:00:00Z", user_id=1.5), "body.user.id", "1.5"),
        (progress_event("2019-11-01T00:00:00Z", completed_at="soon"), "body.progress.completed_at", '"soon"'),
    ],
)
def test_rejection_names_the_field_and_the_value(event, field, value):
    reason = rejected(event)
    assert reason.startswith(field + ":") or f"; {field}:" in reason, reason
    assert value in reason


def test_missing_required_body_parts_are_named():
    event = progress_event("2019-11-01T00:00:00Z")
    del event["body"]["user"]
    assert rejected(event) == "body.user: required field is missing"


def test_the_outcome_does_not_depend_on_the_callers_stack_depth():
    # An unknown field nested 960 deep, and a float that only the exact decoder reads: the exact
    # decoder once ran out of recursion at some stack depths and fell back to orjson's rounded floats.
    event = section_event("2019-11-01T00:00:00Z", stuck_sis_fields=[1.5])
    event["x_new_field"] = "@@"
    payload = encode(event).replace(b'"@@"', b"[" * 960 + b"]" * 960)

    def at_depth(depth: int):
        return parse_event(payload) if depth == 0 else at_depth(depth - 1)

    outcomes = [at_depth(depth) for depth in (0, 50, 300, 900)]
    assert all(outcome == outcomes[0] for outcome in outcomes)
    assert isinstance(outcomes[0], Tracked) and outcomes[0].rows[0].stuck_sis_fields == [1.5]
