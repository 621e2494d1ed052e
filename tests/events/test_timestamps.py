from datetime import datetime, timezone

import pytest

from consumer.events.timestamps import parse_timestamp


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-11-01T19:11:26.615Z", datetime(2019, 11, 1, 19, 11, 26, 615000, tzinfo=timezone.utc)),
        ("2019-11-01T13:11:26.615-06:00", datetime(2019, 11, 1, 19, 11, 26, 615000, tzinfo=timezone.utc)),
        ("2019-11-05 07:38:00 -0800", datetime(2019, 11, 5, 15, 38, 0, tzinfo=timezone.utc)),
        ("2019-11-05 07:38:00 UTC", datetime(2019, 11, 5, 7, 38, 0, tzinfo=timezone.utc)),
        ("2019-11-05T07:38:00+0530", datetime(2019, 11, 5, 2, 8, 0, tzinfo=timezone.utc)),
        ("2019-11-05T07:38:00", datetime(2019, 11, 5, 7, 38, 0, tzinfo=timezone.utc)),  # no offset: UTC
        ("2019-11-05T07:38:00.123456789Z", datetime(2019, 11, 5, 7, 38, 0, 123456, tzinfo=timezone.utc)),
        ("2019-12-31T23:30:00-01:00", datetime(2020, 1, 1, 0, 30, tzinfo=timezone.utc)),
    ],
)
def test_parses_to_aware_utc_keeping_milliseconds(text, expected):
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.tzinfo is timezone.utc


@pytest.mark.parametrize("text", ["", "yesterday", "2019-13-01T00:00:00Z", "2019-11-01T25:00:00Z", "2019-11-01T10:00:00+25:00", "1572635486"])
def test_rejects_unparseable_text(text):
    with pytest.raises(ValueError):
        parse_timestamp(text)


def test_rejects_non_strings():
    with pytest.raises(ValueError, match="expected an ISO 8601 timestamp string, got int"):
        parse_timestamp(1572635486)


def test_out_of_range_after_offset_is_a_value_error():
    with pytest.raises(ValueError, match="not a valid date or time"):
        parse_timestamp("0001-01-01T00:00:00+06:00")


@pytest.mark.parametrize("value", ["\u0662\u0660\u0662\u0660-01-01T00:00:00Z", "\uff12\uff10\uff12\uff10-01-01 00:00", "2020-01-01T00:00:0\u0661Z"])
def test_digits_other_than_ascii_are_not_a_time(value):
    # \d without re.ASCII matched Arabic-Indic and full-width digits: a time Canvas never sent
    with pytest.raises(ValueError, match="ASCII"):
        parse_timestamp(value)
