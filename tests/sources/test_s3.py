"""The pure rules of reading an S3 archive: what a URL names, an object's date, which objects a window keeps.

The listing and reading themselves run against a real S3 endpoint in tests/test_replay_s3.py.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumer.core import ConfigurationError
from consumer.sources.s3 import (
    S3Tally,
    S3Url,
    Window,
    is_s3_url,
    listing_prefix,
    object_period,
    parse_time,
    parse_url,
    partition_period,
)
from tests.helpers import budget

BUCKETS = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABC0123456789.-_"), min_size=1, max_size=63)
# Path segments that are not dates (letters in them), and any text for keys.
WORDS = st.text(st.sampled_from("abcxyz-_.=0123456789"), min_size=1, max_size=8).filter(lambda word: not word.isdigit())
HOURS = st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9998, 12, 30)).map(
    lambda moment: moment.replace(minute=0, second=0, microsecond=0, tzinfo=UTC)
)
# Fixed offsets: a zone's imaginary local times (in a DST gap) do not compare as instants.
OFFSET_ZONES = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(lambda minutes: timezone(timedelta(minutes=minutes)))
AWARE = st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9998, 12, 30), timezones=OFFSET_ZONES)


# -- URLs ------------------------------------------------------------------------------------------------


@budget(200)
@given(BUCKETS, st.text(max_size=40))
def test_a_url_is_its_bucket_then_the_path_exactly_as_written(bucket, path):
    url = parse_url(f"s3://{bucket}/{path}")
    assert url == S3Url(bucket, path)
    assert parse_url(str(url)) == url


@pytest.mark.parametrize("text", ["s3://bucket", "s3://bucket/"])
def test_the_bucket_alone_is_the_whole_bucket(text):
    assert parse_url(text) == S3Url("bucket", "")
    assert listing_prefix(parse_url(text).path) == ""


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("s3://", "bad S3 URL s3://: it names no bucket"),
        ("s3:///live/2026", "bad S3 URL s3:///live/2026: it names no bucket"),
        ("s3://my bucket/x", "bad S3 URL s3://my bucket/x: 'my bucket' is not a bucket name"),
        ("s3://arn:aws:s3:::b/x", "is not a bucket name"),
        ("s3://b\x1b[2J/x", "bad S3 URL s3://b\\x1b[2J/x: 'b\\x1b[2J' is not a bucket name"),
    ],
)
def test_a_bad_url_is_one_line_naming_it(text, says):
    with pytest.raises(ConfigurationError) as raised:
        parse_url(text)
    message = str(raised.value)
    assert says in message and "\n" not in message and "\x1b" not in message


def test_only_the_s3_scheme_is_a_url():
    assert is_s3_url("s3://bucket") and is_s3_url("s3://")
    assert not any(map(is_s3_url, ["s3:/bucket", "S3://bucket", "./s3://bucket", "bucket", "-", "/data/s3"]))


@budget(100)
@given(st.lists(WORDS, min_size=1, max_size=4).map("/".join))
def test_a_path_not_ending_in_a_slash_lists_as_a_directory(path):
    """`.../2026/11/3` must not take in `.../2026/11/30/`: the prefix listed is the directory `path/`."""
    assert listing_prefix(path) == path + "/"
    assert listing_prefix(path + "/") == path + "/"


# -- an object's date -------------------------------------------------------------------------------------


@budget(200)
@given(st.lists(WORDS, max_size=3), HOURS, st.booleans(), WORDS)
def test_a_date_partition_gives_its_hour_or_day(prefix, start, with_hour, name):
    partition = start.strftime("%Y/%m/%d/%H" if with_hour else "%Y/%m/%d")
    key = "/".join([*prefix, partition, name])
    day = start.replace(hour=0)
    expected = (start, start + timedelta(hours=1)) if with_hour else (day, day + timedelta(days=1))
    assert partition_period(key) == expected


def test_firehose_keys():
    key = "live-events/2026/11/30/17/stream-1-2026-11-30-17-05-12-0b4e1f5c.gz"
    assert partition_period(key) == (datetime(2026, 11, 30, 17, tzinfo=UTC), datetime(2026, 11, 30, 18, tzinfo=UTC))
    assert partition_period("2026/01/31/x") == (datetime(2026, 1, 31, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("key", "period"),
    [
        ("live/stream-2026-11-30-17.gz", None),  # a date in the name is not a partition
        ("live/2026/11/30", None),  # the date is the object's name, not a directory
        ("live/2026/13/01/x", None),  # digits, not a date
        ("live/2026/02/30/x", None),
        ("live/2026/11/30/24/x", (datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))),  # no hour 24
        ("live/12026/11/30/x", None),  # five digits
        ("live/2026/11/30x/y", None),
        ("live/2026/11/30/1700/x", (datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))),
        # Two partitions (a re-archived archive): the one nearest the object.
        ("2019/01/01/copy/2026/11/30/05/x", (datetime(2026, 11, 30, 5, tzinfo=UTC), datetime(2026, 11, 30, 6, tzinfo=UTC))),
        ("2026/11/30/2026/13/99/x", (datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))),
    ],
)
def test_what_is_and_is_not_a_date_partition(key, period):
    assert partition_period(key) == period


@budget(100)
@given(st.lists(WORDS, max_size=4).map("/".join), AWARE)
def test_without_a_partition_the_date_is_last_modified_as_an_instant(key, modified):
    start, end = object_period(key + "/object.gz", modified)
    assert start == end == modified and start.utcoffset() == timedelta(0)


# -- --since / --until ------------------------------------------------------------------------------------


@budget(200)
@given(AWARE)
def test_an_iso_time_is_read_in_its_offset_and_given_as_utc(moment):
    parsed = parse_time(moment.isoformat())
    assert parsed == moment and parsed.utcoffset() == timedelta(0)


@budget(100)
@given(st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)))
def test_a_date_is_its_midnight_utc(day):
    assert parse_time(day.isoformat()) == datetime(day.year, day.month, day.day, tzinfo=UTC)


def test_times_without_an_offset_are_utc_and_z_is_accepted():
    assert parse_time("2026-11-30T17:05") == datetime(2026, 11, 30, 17, 5, tzinfo=UTC)
    assert parse_time("2026-11-30T17:05:00Z") == datetime(2026, 11, 30, 17, 5, tzinfo=UTC)
    assert parse_time("2026-11-30T09:05:00-08:00") == datetime(2026, 11, 30, 17, 5, tzinfo=UTC)


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "2026-11-31", "", "0001-01-01T00:00+01:00", "2026-11-30\x1b[2J"])
def test_anything_else_is_refused_naming_the_value_and_the_forms(text):
    with pytest.raises(ValueError) as raised:
        parse_time(text)
    message = str(raised.value)
    assert "is not a date (YYYY-MM-DD) or an ISO 8601 time" in message and "\x1b" not in message


def _minutes(start: datetime, end: datetime) -> list[datetime]:
    return [start + timedelta(minutes=n) for n in range(int((end - start).total_seconds() // 60))]


BASE = datetime(2026, 11, 30, tzinfo=UTC)
OFFSETS = st.integers(min_value=0, max_value=3 * 24 * 60).map(lambda minutes: BASE + timedelta(minutes=minutes))


@budget(300)
@given(OFFSETS, st.sampled_from([timedelta(0), timedelta(hours=1), timedelta(days=1)]), st.none() | OFFSETS, st.none() | OFFSETS)
def test_an_object_is_read_exactly_when_its_period_meets_the_window(start, length, since, until):
    """A period is read when one of its minutes is in [since, until); an instant when it is in it itself."""
    window = Window(since, until)

    def inside(moment: datetime) -> bool:
        return (since is None or moment >= since) and (until is None or moment < until)

    expected = inside(start) if not length else any(inside(minute) for minute in _minutes(start, start + length))
    assert window.admits(start, start + length) == expected


def test_since_is_inclusive_and_until_exclusive_on_partitions():
    hour = partition_period("live/2026/11/30/17/x.gz")
    assert hour is not None
    assert Window(since=datetime(2026, 11, 30, 17, tzinfo=UTC)).admits(*hour)
    assert Window(since=datetime(2026, 11, 30, 17, 59, tzinfo=UTC)).admits(*hour)  # straddles: read whole
    assert not Window(since=datetime(2026, 11, 30, 18, tzinfo=UTC)).admits(*hour)
    assert not Window(until=datetime(2026, 11, 30, 17, tzinfo=UTC)).admits(*hour)
    assert Window(until=datetime(2026, 11, 30, 17, 0, 1, tzinfo=UTC)).admits(*hour)
    day = partition_period("live/2026/11/30/x.gz")
    assert day is not None
    assert Window(since=parse_time("2026-11-30"), until=parse_time("2026-12-01")).admits(*day)
    assert not Window(since=parse_time("2026-12-01")).admits(*day)
    assert Window().everything and not Window(until=BASE).everything


def test_instants_from_another_offset_compare_as_utc():
    modified = datetime(2026, 11, 30, 9, 0, tzinfo=timezone(timedelta(hours=-8)))  # 17:00 UTC
    assert Window(since=parse_time("2026-11-30T17:00Z")).admits(*object_period("x.gz", modified))
    assert not Window(until=parse_time("2026-11-30T17:00Z")).admits(*object_period("x.gz", modified))


def test_the_tally_shows_objects_and_bytes():
    assert str(S3Tally(objects=3, bytes=999)) == "3 objects  999 B from S3"
    assert str(S3Tally(objects=1, bytes=1000)) == "1 object  1.0 KB from S3"
    assert str(S3Tally(objects=1200, bytes=12_345_678)) == "1,200 objects  12.3 MB from S3"
    assert str(S3Tally(bytes=4_500_000_000_000)) == "0 objects  4,500.0 GB from S3"
    assert S3Tally(2, 1, 10).as_dict() == {"s3_objects": 2, "s3_objects_outside_window": 1, "s3_bytes": 10}
