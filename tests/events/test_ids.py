import argparse

import pytest

from consumer.commands.arguments import account_argument, id_argument
from consumer.events.ids import MAX_ID, parse_canvas_id, parse_id, parse_local_id, to_local


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


# --- Ids a person or a client gives: the CLI's ID arguments, API paths, report parameters -----------------------------


@pytest.mark.parametrize(("text", "number"), [("1", 1), ("565", 565), ("0042", 42), ("21070000000000565", 21070000000000565),
                                              (str(MAX_ID), MAX_ID)])
def test_an_id_is_1_to_19_ascii_digits_up_to_the_largest_bigint(text, number):
    assert parse_id(text) == number


NOT_IDS = ["", "0", "0000", "-1", "+5", " 5", "5 ", "5\n", "1_000", "1e3", "5.0", "0x10", "²", "⑨", "١٢", "٣", "𝟗", "abc",
           str(MAX_ID + 1), "9" * 20, "0" * 19 + "1", "1" * 5000, "\ud800", "self"]


@pytest.mark.parametrize("text", NOT_IDS)
def test_anything_else_is_refused_in_one_line_quoting_the_value(text):
    with pytest.raises(ValueError) as raised:
        parse_id(text)
    message = str(raised.value)
    assert "\n" not in message and " is not an id: expected 1 to 19 digits (0-9)" in message, message
    assert len(message) < 200 and message.isprintable(), message  # a long or hostile value is cut and escaped


def test_a_refused_value_is_quoted_escaped_and_cut():
    with pytest.raises(ValueError, match=r'^"a\\u001b\[31m" is not an id'):
        parse_id("a\x1b[31m")
    with pytest.raises(ValueError, match=r'^"1{40}\.\.\." is not an id'):
        parse_id("1" * 5000)


def test_a_canvas_id_given_global_or_local_is_its_local_id():
    assert parse_local_id("565") == 565
    assert parse_local_id("21070000000000565") == 565


@pytest.mark.parametrize("text", ["10000000000000", "21070000000000000"])
def test_a_global_id_whose_local_part_is_0_names_nothing(text):
    with pytest.raises(ValueError, match=rf'^"{text}" is not an id: its local part'):
        parse_local_id(text)


@pytest.mark.parametrize("text", NOT_IDS)
def test_a_canvas_id_follows_the_same_rules(text):
    with pytest.raises(ValueError, match="is not an id"):
        parse_local_id(text)


def test_an_event_id_and_a_given_id_agree_on_what_a_number_is():
    for text in ["565", "0042", str(MAX_ID), "21070000000000565"]:
        assert parse_canvas_id(text) == parse_id(text)
    for text in ["²", "١٢", "-1", "1_000", str(MAX_ID + 1)]:
        with pytest.raises(ValueError):
            parse_canvas_id(text)


@pytest.mark.parametrize(("argument", "text", "expected"), [
    (id_argument, "12", 12), (id_argument, "21070000000000565", 21070000000000565),
    (account_argument, "79", 79), (account_argument, "21070000000000079", 79),
])
def test_the_command_line_id_types_read_ids(argument, text, expected):
    assert argument(text) == expected


@pytest.mark.parametrize("argument", [id_argument, account_argument])
def test_a_bad_id_on_the_command_line_is_one_line_naming_the_argument_and_the_value(argument, capsys):
    parser = argparse.ArgumentParser(prog="canvas-progress")
    parser.add_argument("id", type=argument)
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(["١٢"])
    assert exited.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith('canvas-progress: error: argument id: "\u0661\u0662" is not an id: expected 1 to 19 digits'), last
