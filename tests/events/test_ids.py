import pytest

from consumer.events.ids import parse_canvas_id, to_local


def test_global_ids_beyond_2_53_stay_exact():
    assert parse_canvas_id("21070000000000565") == 21070000000000565
    assert parse_canvas_id(21070000000000565) == 21070000000000565
    assert to_local(parse_canvas_id("21070000000000565")) == 565


def test_local_ids_stay_local():
    assert to_local(parse_canvas_id("565")) == 565
    assert to_local(parse_canvas_id(9999999999999)) == 9999999999999
    assert to_local(10**13) == 0
    assert to_local(None) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (565.0, "float"),
        (2.107e16, "float"),
        ("12a", "digits"),
        ("-5", "digits"),
        ("", "digits"),
        (True, "boolean"),
        ([565], "array"),
        (2**63, "out of range"),
        ("99999999999999999999", "out of range"),
    ],
)
def test_refuses_what_is_not_an_id(value, message):
    with pytest.raises(ValueError, match=message):
        parse_canvas_id(value)


@pytest.mark.parametrize("value", ["\u00a0565", "565\u3000", "\x1c5", "\x85565", "\t565", "565\n"])
def test_ids_wrapped_in_other_whitespace_or_controls_are_refused(value):
    with pytest.raises(ValueError, match="digits"):
        parse_canvas_id(value)
