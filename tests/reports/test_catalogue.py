"""Report parameters, as Canvas clients send them, become one normalised dict or an error naming the parameter."""

from __future__ import annotations

import pytest

from consumer.reports.catalogue import REPORTS, ParameterError, empty_window, parameters_from_pairs, validate_parameters
from consumer.reports.csv_cells import csv_value

PROGRESS = REPORTS["course_progress_csv"]


def test_form_fields_become_parameters_and_other_fields_are_left_alone():
    pairs = [("parameters[course_id]", "2"), ("parameters[include_deleted]", "true"), ("access_token", "x"),
             ("parameters[section_ids][]", "1"), ("parameters[section_ids][]", "2"), ("parameters", "odd")]
    assert parameters_from_pairs(pairs) == {"course_id": "2", "include_deleted": "true", "section_ids": ["1", "2"]}


@pytest.mark.parametrize(("raw", "clean"), [
    ({}, {}),
    (None, {}),
    ({"include_deleted": "TRUE"}, {"include_deleted": True}),
    ({"include_deleted": 0}, {"include_deleted": False}),
    ({"course_id": " 42 "}, {"course_id": 42}),
    ({"course_id": 42, "skip_message": "true"}, {"course_id": 42}),
    ({"course_id": 42.0}, {"course_id": 42}),  # an integer to JSON Schema
    ({"course_id": "20000000000042"}, {"course_id": 42}),  # a global id
    ({"course_id": None, "include_deleted": None}, {}),
    ({"start_at": "2019-09-01T08:00:00-04:00"}, {"start_at": "2019-09-01T12:00:00Z"}),
    ({"start_at": "2019-09-01 08:00:00 -0400", "end_at": "2019-09-02"}, {"start_at": "2019-09-01T12:00:00Z", "end_at": "2019-09-02T00:00:00Z"}),
    ({"start_at": None}, {}),
    ({"start_at": "2019-09-02", "end_at": "2019-09-01"}, {"start_at": "2019-09-02T00:00:00Z", "end_at": "2019-09-01T00:00:00Z"}),
])
def test_valid_parameters_are_normalised(raw, clean):
    assert validate_parameters(PROGRESS, raw) == clean


@pytest.mark.parametrize(("raw", "named"), [
    ({"include_deleted": "perhaps"}, "include_deleted"),
    ({"course_id": 2.5}, "course_id"),
    ({"course_id": True}, "course_id"),
    ({"course_id": 2.0**60}, "course_id"),  # a float this large may already be another id
    ({"course_id": "-3"}, "course_id"),
    ({"course_id": str(2**63)}, "course_id"),
    ({"start_at": 20190901}, "start_at"),
    ({"start_at": "2019-13-01"}, "start_at"),
    ({"start_at": ""}, "start_at"),  # in JSON; an empty form field never gets here (see parameters_from_pairs)
    ({"course_id": ""}, "course_id"),
    ({"users": "true"}, "users"),
])
def test_bad_parameters_are_refused_naming_the_parameter_and_value(raw, named):
    with pytest.raises(ParameterError) as refused:
        validate_parameters(PROGRESS, raw)
    assert str(refused.value).startswith(f"parameters[{named}]")
    assert repr(raw[named]) in str(refused.value)


@pytest.mark.parametrize(("window", "empty"), [
    ({}, False),
    ({"start_at": "2019-09-01T00:00:00Z"}, False),
    ({"start_at": "2019-09-01T00:00:00Z", "end_at": "2019-09-02T00:00:00Z"}, False),
    ({"start_at": "2019-09-01T00:00:00Z", "end_at": "2019-09-01T00:00:00Z"}, True),  # [t, t) holds nothing
    ({"start_at": "2019-09-02T00:00:00Z", "end_at": "2019-09-01T00:00:00Z"}, True),
])
def test_an_empty_window_is_recognised(window, empty):
    assert empty_window(window) is empty


def test_empty_form_fields_are_left_out():
    assert parameters_from_pairs([("parameters[start_at]", ""), ("parameters[course_id]", "7")]) == {"start_at": None, "course_id": "7"}


def test_a_course_report_takes_only_its_own_course_as_course_id():
    assert validate_parameters(PROGRESS, {"include_deleted": True}, course_id=5) == {"include_deleted": True}
    for same in (5, "5", 5.0, "20000000000005", None):  # local, text, integral float, global, left out
        assert validate_parameters(PROGRESS, {"course_id": same}, course_id=5) == {}
    with pytest.raises(ParameterError, match=r"^parameters\[course_id\]: a course report covers course 5 only \(got 2\)$"):
        validate_parameters(PROGRESS, {"course_id": 2}, course_id=5)
    with pytest.raises(ParameterError, match=r"^parameters\[course_id\]: is not an id \(got ''\)$"):
        validate_parameters(PROGRESS, {"course_id": ""}, course_id=5)


def test_csv_values_are_canvas_like():
    from datetime import datetime, timezone
    from decimal import Decimal

    assert [csv_value(v) for v in (None, True, False, 0.123456, Decimal("83.3"), 7, "x")] == ["", "true", "false", 0.1235, Decimal("83.3"), 7, "x"]
    assert csv_value(datetime(2019, 9, 1, 12, 0, 0, 615000, tzinfo=timezone.utc)) == "2019-09-01T12:00:00.615000Z"
