"""Stream inputs out of an S3 archive of Live Events (Firehose-style objects), in key order, in flat memory.

Institutions archive the stream to S3: objects gzip-compressed or not, JSON
values newline-separated or concatenated with no separator, under
date-partitioned keys (`prefix/2026/11/30/17/stream-1-2026-11-30-17-05-12-uuid.gz`).
Each object is read exactly as a local file is (`files.stream_batches`: the
same formats told by content, sources `s3://bucket/key:LINE` or
`s3://bucket/key:LINE#N`, the same one-line problem reports), straight from
its GetObject body: neither an object, of any size, nor the listing is ever
held in memory.

What a URL names (`parse_url`, `S3Archive.check`), as a local path names a
file or a directory:
- `s3://bucket` and `s3://bucket/`: every object in the bucket;
- `s3://bucket/path`: the object `path` when there is one, else every object
  under `path/` (so `.../2026/11/3` never takes in `.../2026/11/30/`);
- `s3://bucket/path/`: every object under `path/`.
Objects are read in S3's key order (UTF-8 binary, as ListObjectsV2 lists
them); folder markers (empty keys ending in `/`) are passed over.

Dates (`Window`, `--since` / `--until`): an object's date is the period of
its key's date partition, the last `YYYY/MM/DD[/HH]` run of path segments
before its name (a day, or an hour), else its LastModified instant. An object
is read when that period overlaps [since, until), both UTC: `--since`
inclusive, `--until` exclusive. This selects objects, not events: every
event of an object read is applied (replay is idempotent, so overlap is
harmless), and an hour partition that straddles `--since` is read whole.

Failures:
- before any work (`S3Archive.check`): a bad URL, no credentials, or a
  configuration boto3 cannot use raise ConfigurationError (exit status 2);
  a URL under which there is nothing raises NothingThere (2, as a missing
  local path does); no such bucket, access denied, or S3 unreachable raise
  S3Unavailable (1). Each message names the URL and the bucket.
- while reading, one line each into the ReadReport, and the run goes on with
  the next object: an object S3 will not serve (unreadable; skipped when it
  was deleted after the listing), a connection that breaks part way through
  an object (unreadable, everything before the break kept), a listing that
  fails part way (unreadable, under the URL; the objects listed before it
  were read).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from consumer.core import ConfigurationError, Input
from consumer.sources.files import SKIPPED, UNREADABLE, Batches, ReadReport, display_name, stream_batches
from consumer.text import one_line

log = logging.getLogger(__name__)

SCHEME = "s3://"
PAGE_SIZE = 1000  # ListObjectsV2's largest page
# What botocore itself accepts as a bucket name (legacy us-east-1 names included): anything else cannot be one.
_BUCKET = re.compile(r"[A-Za-z0-9._-]{1,255}")
# A date partition: YYYY/MM/DD, maybe /HH, as whole path segments followed by more of the key.
_PARTITION = re.compile(r"(?<![^/])(\d{4})/(\d{2})/(\d{2})(?:/(\d{2}))?(?=/)")
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_CREDENTIALS_HELP = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with an instance or pod role"


class S3Unavailable(Exception):
    """S3 refuses or cannot be reached for a URL (no such bucket, access denied, network): exit status 1."""


class NothingThere(ConfigurationError):
    """A URL under which there is no object: a mistyped path, like a local path that does not exist."""


# -- URLs, dates, the window: pure ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class S3Url:
    bucket: str
    path: str  # the key or prefix as written after the bucket; "" is the whole bucket

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.path}"


def is_s3_url(source: str) -> bool:
    """Whether a replay source is an S3 URL rather than a local path."""
    return source.startswith(SCHEME)


def parse_url(text: str) -> S3Url:
    """`s3://BUCKET[/PATH]`; ConfigurationError naming the URL when it names no usable bucket."""
    bucket, _, path = text.removeprefix(SCHEME).partition("/")
    if not bucket:
        raise ConfigurationError(f"bad S3 URL {display_name(text)}: it names no bucket (write s3://BUCKET or s3://BUCKET/PREFIX)")
    if not _BUCKET.fullmatch(bucket):
        raise ConfigurationError(
            f"bad S3 URL {display_name(text)}: '{display_name(bucket)}' is not a bucket name "
            "(letters, digits, '.', '-' and '_', at most 255)"
        )
    return S3Url(bucket, path)


def listing_prefix(path: str) -> str:
    """The prefix that lists what `path` names when it is not itself an object: the "directory" `path/`."""
    return path if not path or path.endswith("/") else path + "/"


def partition_period(key: str) -> tuple[datetime, datetime] | None:
    """The hour or day (UTC) the key's last date partition `YYYY/MM/DD[/HH]/` stands for; None without one."""
    for match in reversed(list(_PARTITION.finditer(key))):
        year, month, day, hour = match.groups()
        try:
            start = datetime(int(year), int(month), int(day), tzinfo=UTC)
        except ValueError:  # 2026/13/45: digits, not a date
            continue
        if hour is None or int(hour) > 23:  # 2026/11/30/99/: a day, then another directory
            return start, start + timedelta(days=1)
        start += timedelta(hours=int(hour))
        return start, start + timedelta(hours=1)
    return None


def object_period(key: str, last_modified: datetime) -> tuple[datetime, datetime]:
    """The object's date: its partition's period, else its LastModified as an instant (start == end)."""
    period = partition_period(key)
    if period is not None:
        return period
    instant = last_modified.astimezone(UTC)
    return instant, instant


def parse_time(text: str) -> datetime:
    """`YYYY-MM-DD` (its midnight, UTC) or an ISO 8601 time (UTC unless it has an offset), as an aware UTC time.

    ValueError saying what is accepted.
    """
    try:
        if _DATE_ONLY.fullmatch(text):
            value = datetime.combine(date.fromisoformat(text), time(), UTC)
        else:
            value = datetime.fromisoformat(text)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError(
            f"{one_line(text, 80)!r} is not a date (YYYY-MM-DD) or an ISO 8601 time (e.g. 2026-11-30T17:00:00Z)"
        ) from None


@dataclass(frozen=True, slots=True)
class Window:
    """The objects to read: those whose date overlaps [since, until) (None: unbounded)."""

    since: datetime | None = None
    until: datetime | None = None

    @property
    def everything(self) -> bool:
        return self.since is None and self.until is None

    def admits(self, start: datetime, end: datetime) -> bool:
        """Whether the period [start, end) overlaps the window; an instant (start == end) must lie in it."""
        if self.since is not None and self.until is not None and self.since >= self.until:
            return False  # an empty window
        if self.until is not None and start >= self.until:
            return False
        if self.since is not None:
            return end > self.since if end > start else start >= self.since
        return True


# -- reading ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class S3Object:
    key: str
    size: int
    last_modified: datetime


@dataclass
class S3Tally:
    """What has been read from S3 so far, for the progress line and the summary."""

    objects: int = 0  # objects fetched (read whole or not)
    outside_window: int = 0  # objects listed but not read: their date is outside --since/--until
    bytes: int = 0  # as stored (compressed), received so far

    def as_dict(self) -> dict[str, int]:
        return {"s3_objects": self.objects, "s3_objects_outside_window": self.outside_window, "s3_bytes": self.bytes}

    def __str__(self) -> str:
        return f"{self.objects:,} object{'' if self.objects == 1 else 's'}  {_size(self.bytes)} from S3"


def _size(count: int) -> str:
    """1,234 B, 12.3 MB, 4.5 GB."""
    if count < 1000:
        return f"{count:,} B"
    value, unit = count / 1000, "KB"
    for larger in ("MB", "GB"):
        if value < 1000:
            break
        value, unit = value / 1000, larger
    return f"{value:,.1f} {unit}"


@dataclass(frozen=True, slots=True)
class _Target:
    """A checked URL: one object, or a prefix to list."""

    url: S3Url
    prefix: str
    single: S3Object | None = None


def make_client() -> Any:
    """A boto3 S3 client from the standard AWS environment (region, credentials, AWS_PROFILE, AWS_ENDPOINT_URL_S3)."""
    from botocore.config import Config

    from consumer.sources.aws import aws_client

    config = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=10, read_timeout=60)
    return aws_client("s3", config, "AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL")


class S3Archive:
    """Reads s3:// sources with one client: checks them before any work, then streams their objects.

    `client` defaults to `make_client()` (made on first use); `page_size` is
    ListObjectsV2's MaxKeys (small in tests, to exercise paging cheaply).
    `tally` counts objects and bytes as they are read.
    """

    def __init__(self, client: Any = None, window: Window = Window(), page_size: int = PAGE_SIZE) -> None:
        self._client = client
        self.window = window
        self.page_size = page_size
        self.tally = S3Tally()
        self._targets: dict[str, _Target] = {}

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = make_client()
        return self._client

    def check(self, urls: Iterable[str]) -> None:
        """Resolve every URL before any work: all are parsed first (a bad one fails fast), then listed.

        Raises ConfigurationError (a bad URL, no credentials: exit 2), NothingThere (2) or S3Unavailable (1).
        """
        urls = list(urls)
        for text in urls:
            parse_url(text)
        for text in urls:
            self._resolve(text)

    def read(self, urls: Iterable[str], report: ReadReport) -> Iterator[Input]:
        """Every input of every object the URLs name, URL after URL, each in key order; see the module docstring."""
        for text in urls:
            target = self._resolve(text)
            for item in self._objects(target, report):
                if not self.window.admits(*object_period(item.key, item.last_modified)):
                    self.tally.outside_window += 1
                    continue
                for batch in self._read_object(target.url.bucket, item, report):
                    yield from batch

    # -- listing ----------------------------------------------------------------------------------

    def _resolve(self, text: str) -> _Target:
        target = self._targets.get(text)
        if target is None:
            target = self._targets[text] = self._find(parse_url(text))
        return target

    def _find(self, url: S3Url) -> _Target:
        """One object, or a prefix with something under it (see the module docstring)."""
        first = self._first(url, url.path)
        if url.path and not url.path.endswith("/") and first is not None and first.key == url.path:
            return _Target(url, url.path, single=first)
        prefix = listing_prefix(url.path)
        if prefix != url.path:
            first = self._first(url, prefix)
        if first is None:
            where = "the bucket holds no objects" if not prefix else (
                f"no key is '{display_name(url.path)}' or starts with '{display_name(prefix)}'")
            raise NothingThere(f"nothing to read at {display_name(str(url))}: {where}")
        return _Target(url, prefix)

    def _first(self, url: S3Url, prefix: str) -> S3Object | None:
        """The first object whose key starts with `prefix`; S3's refusals as S3Unavailable / ConfigurationError."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            page = self.client.list_objects_v2(Bucket=url.bucket, Prefix=prefix, MaxKeys=1)
        except (BotoCoreError, ClientError) as error:
            raise _refusal(error, url) from error
        contents = page.get("Contents") or []
        return _object(contents[0]) if contents else None

    def _objects(self, target: _Target, report: ReadReport) -> Iterator[S3Object]:
        """The target's objects in key order, page by page; a listing that fails part way is reported."""
        if target.single is not None:
            yield target.single
            return
        from botocore.exceptions import BotoCoreError, ClientError

        url, listed, last = target.url, 0, None
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=url.bucket, Prefix=target.prefix, PaginationConfig={"PageSize": self.page_size}
        )
        try:
            for page in pages:
                for entry in page.get("Contents") or []:
                    item = _object(entry)
                    listed, last = listed + 1, item.key
                    if item.key.endswith("/") and item.size == 0:
                        continue  # a folder marker (the console's "Create folder"), not an object of events
                    yield item
        except (BotoCoreError, ClientError) as error:
            after = f"after {listed:,} objects (the last '{display_name(last)}')" if last is not None else "at its start"
            report.add(UNREADABLE, display_name(str(url)), f"the listing failed {after}: {_describe(error)}; "
                       "the objects listed before it were read")

    # -- one object -------------------------------------------------------------------------------

    def _read_object(self, bucket: str, item: S3Object, report: ReadReport) -> Batches:
        from botocore.exceptions import BotoCoreError, ClientError

        name = display_name(f"{SCHEME}{bucket}/{item.key}")
        try:
            response = self.client.get_object(Bucket=bucket, Key=item.key)
        except ClientError as error:
            if _code(error) == "NoSuchKey":
                report.add(SKIPPED, name, "it was deleted after the listing, before it could be read")
            elif _code(error) == "InvalidObjectState":
                report.add(UNREADABLE, name, f"archived (Glacier, Deep Archive): restore it first ({_describe(error)})")
            else:
                report.add(UNREADABLE, name, f"S3 will not serve it: {_describe(error)}")
            return
        except BotoCoreError as error:
            report.add(UNREADABLE, name, f"cannot fetch it: {_describe(error)}")
            return
        self.tally.objects += 1
        log.debug("reading %s (%d bytes)", name, item.size)
        body = _Body(response["Body"], self.tally)
        try:
            yield from stream_batches(body, name, report)  # type: ignore[arg-type]  # it has read(): all that is used
        finally:
            body.close()


class _Body:
    """A GetObject body for the file reader: counts the bytes, and turns a broken connection into an OSError.

    The reader reports an OSError from `read` as a read error at that byte,
    keeping everything before it; botocore raises its own errors instead
    (ResponseStreamingError, ReadTimeoutError, IncompleteReadError, a
    checksum that does not match).
    """

    def __init__(self, body: Any, tally: S3Tally) -> None:
        self._body = body
        self._tally = tally

    def read(self, size: int = -1) -> bytes:
        from botocore.exceptions import BotoCoreError
        from urllib3.exceptions import HTTPError

        try:
            chunk = self._body.read(size if size >= 0 else None)
        except (BotoCoreError, HTTPError, OSError) as error:
            raise OSError(f"the transfer from S3 broke off ({_describe(error)})") from error
        self._tally.bytes += len(chunk)
        return chunk

    def close(self) -> None:
        try:
            self._body.close()
        except Exception:  # a connection already broken: nothing more to release
            log.debug("closing an S3 body failed", exc_info=True)


def _object(entry: dict[str, Any]) -> S3Object:
    return S3Object(entry["Key"], int(entry.get("Size") or 0), entry["LastModified"])


def _code(error: Exception) -> str:
    return str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))


def _describe(error: Exception) -> str:
    """A botocore error in one line: S3's code and message, or the client's own error."""
    from botocore.exceptions import ClientError

    if isinstance(error, ClientError):
        message = str(error.response.get("Error", {}).get("Message", "")) or str(error)
        return f"{_code(error) or 'error'}: {one_line(message)}"
    return one_line(str(error)) or type(error).__name__


def _refusal(error: Exception, url: S3Url) -> Exception:
    """The one-line error for a URL S3 cannot list: no such bucket, access denied, no credentials, unreachable."""
    from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError

    where = display_name(str(url))
    if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
        return ConfigurationError(f"no usable AWS credentials to read {where} ({one_line(str(error))}): {_CREDENTIALS_HELP}")
    if not isinstance(error, ClientError):
        return S3Unavailable(f"cannot reach S3 to read {where}: {_describe(error)}")
    code = _code(error)
    if code == "NoSuchBucket":
        return S3Unavailable(f"no such bucket: {url.bucket} ({where})")
    if code in ("AccessDenied", "AllAccessDisabled") or error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 403:
        return S3Unavailable(
            f"access denied to {where}: listing bucket {url.bucket} needs s3:ListBucket (and reading its objects "
            f"s3:GetObject) ({_describe(error)})"
        )
    return S3Unavailable(f"S3 refused to list {where} ({_describe(error)})")
