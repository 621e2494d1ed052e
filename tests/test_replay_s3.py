"""`replay s3://` and `send s3://` end to end: a real S3 endpoint (ministack) on loopback, real processes, both databases.

An object in an S3 archive is read exactly as the same bytes in a local
file: the tables, the counts and the quarantine come out identical. Objects
that cannot be read whole are reported and the run goes on; a URL S3 cannot
serve at all is one line and no work.
"""

from __future__ import annotations

import gzip
import http.client
import io
import json
import socket
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest

from consumer.replay import read_sources
from consumer.sources.files import ReadReport
from consumer.sources.s3 import NothingThere, S3Archive
from consumer.store.engine import make_engine
from consumer.synthetic import generate
from tests.factory import encode, progress_event
from tests.helpers import cli, dump_tables, environment, rejected_rows

EVENTS = list(generate(3000, seed=11, courses=6, students=60))
# Not JSON; each ends at its own closing brace. Two, not one twice: the quarantine keeps one row per payload.
BROKEN = b'{"metadata": {"event_name": "course_progress", oops}}'
BROKEN_TOO = b'{"metadata": {"event_name": "course_completed", oops}}'
# A Firehose-style archive: hour partitions, gzip or not, values concatenated with no separator or one a line.
OBJECTS = {
    "live/2026/11/30/17/stream-1-2026-11-30-17-05-12-aaaa.gz": gzip.compress(b"".join(EVENTS[:800])),
    "live/2026/11/30/17/stream-1-2026-11-30-17-35-12-bbbb.gz": gzip.compress(b"\n".join(EVENTS[800:1600]) + b"\n"),
    "live/2026/11/30/18/stream-1-2026-11-30-18-05-12-cccc": b"".join(EVENTS[1600:1900]) + BROKEN + b"".join(EVENTS[1900:2200]),
    "live/2026/12/01/00/stream-1-2026-12-01-00-05-12-dddd.gz": gzip.compress(b"\r\n".join(EVENTS[2200:2500]))
    + gzip.compress(b"\r\n" + b"\r\n".join([*EVENTS[2500:2600], BROKEN_TOO, *EVENTS[2600:3000]])),  # two gzip members
}
EXTRA = b"".join(encode(progress_event("2026-12-02T00:00:00Z", user_id=str(n))) + b"\n" for n in range(5))


@dataclass
class Archive:
    bucket: str
    local: Path  # the same objects as files: <local>/<key>


def new_bucket(client) -> str:
    name = f"archive-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return name


def put_all(client, bucket: str, objects: dict[str, bytes], local: Path | None = None) -> None:
    for key, body in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)
        if local is not None:
            (local / key).parent.mkdir(parents=True, exist_ok=True)
            (local / key).write_bytes(body)


@pytest.fixture
def archive(s3_client, tmp_path) -> Archive:
    bucket = new_bucket(s3_client)
    local = tmp_path / "local"
    put_all(s3_client, bucket, OBJECTS, local)
    s3_client.put_object(Bucket=bucket, Key="live/", Body=b"")  # a folder marker, as the console makes: not read
    (tmp_path / "extra.ndjson").write_bytes(EXTRA)
    return Archive(bucket, local)


def s3_env(endpoint: str, database_url: str, **more: str) -> dict[str, str]:
    return {**environment(endpoint, database_url), "AWS_ENDPOINT_URL_S3": endpoint, "LOG_FORMAT": "text", **more}


def replay_json(*args: str, env: dict[str, str], expect: int = 0) -> dict:
    result = cli("replay", *args, "--json", env=env)
    assert result.returncode == expect, result.stderr.decode()[-3000:]
    assert b"Traceback" not in result.stderr
    return json.loads(result.stdout)


def quarantine(database_url: str, prefix: str) -> list[tuple[str, str, bytes]]:
    """(source without `prefix`, reason, payload) of every rejected input."""
    return sorted((row["source"].removeprefix(prefix), row["reason"], row["payload"]) for row in rejected_rows(make_engine(database_url)))


def test_an_s3_archive_gives_the_tables_its_files_give_on_both_databases(archive, s3_endpoint, new_pg_database, tmp_path):
    s3_pg, files_pg, s3_sqlite = new_pg_database(), new_pg_database(), f"sqlite:///{tmp_path / 's3.db'}"
    url, extra = f"s3://{archive.bucket}/live/", str(tmp_path / "extra.ndjson")
    from_s3 = replay_json(url, extra, env=s3_env(s3_endpoint, s3_pg))  # mixed: an S3 prefix, then a local file
    from_files = replay_json(str(archive.local / "live"), extra, env=s3_env(s3_endpoint, files_pg))
    assert replay_json(url, extra, env=s3_env(s3_endpoint, s3_sqlite))["read"] == from_s3["read"]

    outcomes = ("read", "applied", "stale_or_duplicate", "ignored", "rejected", "files_skipped", "files_unreadable", "files_damaged")
    assert {key: from_s3[key] for key in outcomes} == {key: from_files[key] for key in outcomes}
    assert (from_s3["read"], from_s3["rejected"]) == (len(EVENTS) + 2 + 5, 2)
    assert (from_s3["s3_objects"], from_s3["s3_objects_outside_window"]) == (4, 0)
    assert from_s3["s3_bytes"] == sum(map(len, OBJECTS.values()))
    tables = dump_tables(make_engine(s3_pg))
    assert sum(map(len, tables.values())) > 100
    assert tables == dump_tables(make_engine(files_pg)) == dump_tables(make_engine(s3_sqlite))

    s3_prefix, file_prefix = f"s3://{archive.bucket}/", f"{archive.local}/"
    assert quarantine(s3_pg, s3_prefix) == quarantine(files_pg, file_prefix) == quarantine(s3_sqlite, s3_prefix)
    assert sorted(row["source"] for row in rejected_rows(make_engine(s3_pg))) == [
        f"{s3_prefix}live/2026/11/30/18/stream-1-2026-11-30-18-05-12-cccc:1#301",  # concatenated: one line, value 301
        f"{s3_prefix}live/2026/12/01/00/stream-1-2026-12-01-00-05-12-dddd.gz:401",  # one a line, across two members
    ]


@pytest.mark.parametrize(
    ("window", "keys"),
    [
        (["--since", "2026-11-30T18:00", "--until", "2026-12-01"], [2]),
        (["--until", "2026-11-30T17:30:00Z"], [0, 1]),  # an hour partition that meets the window is read whole
        (["--since", "2026-11-30T19:00:00+01:00"], [2, 3]),  # 18:00 UTC
        (["--since", "2026-12-01"], [3]),
    ],
)
def test_since_and_until_choose_objects_by_their_date_partition(archive, s3_endpoint, tmp_path, window, keys):
    chosen = [str(archive.local / list(OBJECTS)[index]) for index in keys]
    from_s3 = replay_json(f"s3://{archive.bucket}/live", *window, env=s3_env(s3_endpoint, f"sqlite:///{tmp_path / 's3.db'}"))
    from_files = replay_json(*chosen, env=s3_env(s3_endpoint, f"sqlite:///{tmp_path / 'files.db'}"))
    assert (from_s3["s3_objects"], from_s3["s3_objects_outside_window"]) == (len(keys), len(OBJECTS) - len(keys))
    assert from_s3["read"] == from_files["read"] and from_s3["applied"] == from_files["applied"]
    assert dump_tables(make_engine(f"sqlite:///{tmp_path / 's3.db'}")) == dump_tables(make_engine(f"sqlite:///{tmp_path / 'files.db'}"))


def test_objects_without_a_date_partition_are_chosen_by_last_modified(s3_client, s3_endpoint, tmp_path):
    bucket = new_bucket(s3_client)
    put_all(s3_client, bucket, {"flat/events.ndjson": EXTRA})
    env = s3_env(s3_endpoint, f"sqlite:///{tmp_path / 's3.db'}")
    assert replay_json(f"s3://{bucket}/flat/", "--since", "2000-01-01", env=env)["s3_objects"] == 1  # written just now
    assert replay_json(f"s3://{bucket}/flat/", "--until", "2000-01-01", env=env)["s3_objects_outside_window"] == 1


def _progress_lines(count: int, first_user: int = 0) -> bytes:
    return b"".join(encode(progress_event("2019-11-01T00:00:00Z", user_id=str(first_user + n))) + b"\n" for n in range(count))


def _complete_lines(compressed: bytes) -> int:
    lines = 0
    try:
        for line in gzip.GzipFile(fileobj=io.BytesIO(compressed)):
            lines += line.endswith(b"\n")
    except EOFError:
        pass
    return lines


def test_a_damaged_gzip_object_is_reported_and_the_next_objects_applied(s3_client, s3_endpoint, tmp_path):
    bucket = new_bucket(s3_client)
    whole = gzip.compress(_progress_lines(400))
    truncated = whole[: len(whole) * 3 // 4]
    put_all(s3_client, bucket, {"a/1-truncated.ndjson.gz": truncated, "a/2-after.ndjson": _progress_lines(50, first_user=10_000)})
    result = cli("replay", f"s3://{bucket}/a", "--json", env=s3_env(s3_endpoint, f"sqlite:///{tmp_path / 's3.db'}"))
    assert result.returncode == 1 and b"Traceback" not in result.stderr
    totals = json.loads(result.stdout)
    assert (totals["applied"], totals["rejected"], totals["files_damaged"]) == (_complete_lines(truncated) + 50, 1, 1)
    stderr = result.stderr.decode().splitlines()
    assert sum(f"damaged s3://{bucket}/a/1-truncated.ndjson.gz: the gzip data stops at byte" in line for line in stderr) == 1
    assert stderr[-1].startswith("error: 1 file or S3 object could not be read whole")


@pytest.fixture
def foreign_bucket(s3_endpoint) -> str:
    """A bucket of another account: the test credentials are refused (AccessDenied)."""
    other = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="111111111111",
                         aws_secret_access_key="other")
    return new_bucket(other)


def test_what_s3_cannot_serve_is_one_line_naming_the_bucket(archive, foreign_bucket, s3_endpoint, tmp_path):
    database = f"sqlite:///{tmp_path / 'never.db'}"
    no_credentials = {**{name: "" for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")},
                      "AWS_EC2_METADATA_DISABLED": "true", "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                      "AWS_CONFIG_FILE": str(tmp_path / "none")}
    cases = [
        (["s3://no-such-bucket-here/live/"], {}, 1, "error: no such bucket: no-such-bucket-here (s3://no-such-bucket-here/live/)"),
        ([f"s3://{foreign_bucket}"], {}, 1, f"error: access denied to s3://{foreign_bucket}/: listing bucket {foreign_bucket} needs s3:ListBucket"),
        (["s3://"], {}, 2, "error: bad S3 URL s3://: it names no bucket"),
        ([f"s3://{archive.bucket}/live/2026/11/3"], {}, 2, f"error: nothing to read at s3://{archive.bucket}/live/2026/11/3: no key is"),
        ([f"s3://{archive.bucket}/live"], no_credentials, 2, f"error: no usable AWS credentials to read s3://{archive.bucket}/live"),
        ([f"s3://{archive.bucket}/live", "--since", "2026-12-02", "--until", "2026-12-01"], {}, 2, "error: --since 2026-12-02T00:00:00+00:00 is not before"),
        ([str(tmp_path), "--since", "2026-12-01"], {}, 2, "error: --since and --until select S3 objects by date"),
    ]
    for args, more, code, line in cases:
        env = {key: value for key, value in s3_env(s3_endpoint, database, **more).items() if value != ""}
        result = cli("replay", *args, env=env, timeout=120)
        stderr = result.stderr.decode().strip().splitlines()
        assert (result.returncode, len(stderr)) == (code, 1), (args, result.stderr.decode())
        assert stderr[0].startswith(line), (args, stderr)
    assert not (tmp_path / "never.db").exists()  # checked before the database is opened


def test_a_single_key_is_that_object_and_a_prefix_lists_as_a_directory(archive, s3_client):
    report = ReadReport()
    s3 = S3Archive(client=s3_client)
    key = list(OBJECTS)[2]
    sources = {item.source.rsplit(":", 1)[0] for item in read_sources([f"s3://{archive.bucket}/{key}"], report, s3)}
    assert sources == {f"s3://{archive.bucket}/{key}"} and s3.tally.objects == 1
    with pytest.raises(NothingThere):
        S3Archive(client=s3_client).check([f"s3://{archive.bucket}/live/2026/11/3"])  # not .../30/
    with pytest.raises(NothingThere):
        S3Archive(client=s3_client).check([f"s3://{archive.bucket}/live/2026/11/30/17/stream-1"])  # no raw prefixes


def test_listing_goes_page_by_page_in_key_order(s3_client):
    bucket = new_bucket(s3_client)
    keys = [f"p/{name}" for name in ("b/2.ndjson", "a/1.ndjson", "c.ndjson", "a/0.ndjson", "b/1.ndjson", "caf\u00e9 \x1b[2J.ndjson", "d/", "e")]
    put_all(s3_client, bucket, {key: (b"" if key.endswith("/") else EXTRA[:10] + b"\n" + EXTRA) for key in keys})
    calls = []
    s3_client.meta.events.register("before-call.s3.ListObjectsV2", lambda **kwargs: calls.append(kwargs["params"]))
    report = ReadReport()
    s3 = S3Archive(client=s3_client, page_size=2)
    inputs = list(read_sources([f"s3://{bucket}/p/"], report, s3))
    objects = list(dict.fromkeys(item.source.rsplit(":", 1)[0] for item in inputs))
    expected = sorted((key for key in keys if key != "p/d/"), key=lambda key: key.encode())
    assert objects == [f"s3://{bucket}/{key}".replace("\x1b", "\\x1b") for key in expected]
    assert len(inputs) == 7 * 6 and s3.tally.objects == 7 and not report.problems
    assert len(calls) >= 4 + 1  # the check's probe, then four pages of at most two keys


class _CuttingProxy(BaseHTTPRequestHandler):
    """Forwards to S3; for a GetObject of a key holding "cut", sends the headers and part of the body, then
    drops the connection (what a network failure half way through a download looks like)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=30)  # type: ignore[attr-defined]
        upstream.request(self.command, self.path, body=body, headers={k: v for k, v in self.headers.items() if k.lower() != "connection"})
        response = upstream.getresponse()
        data = response.read()
        upstream.close()
        cut = self.command == "GET" and "cut" in urllib.parse.unquote(self.path.split("?")[0]) and response.status == 200
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if cut:
            self.wfile.write(data[: self.server.cut_at])  # type: ignore[attr-defined]
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
        elif self.command != "HEAD":
            self.wfile.write(data)

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def cutting_proxy(s3_endpoint) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CuttingProxy)
    server.daemon_threads = True
    server.upstream_port = urllib.parse.urlparse(s3_endpoint).port  # type: ignore[attr-defined]
    server.cut_at = 3 << 20  # type: ignore[attr-defined]  # after three 1 MiB reads
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_a_connection_that_breaks_mid_object_is_reported_and_the_run_goes_on(s3_client, cutting_proxy, tmp_path):
    bucket = new_bucket(s3_client)
    big = _progress_lines(12_000)  # about 7 MB: the break comes after three whole 1 MiB chunks
    assert len(big) > cutting_proxy.cut_at + (1 << 20)  # type: ignore[attr-defined]
    put_all(s3_client, bucket, {"x/1-cut.ndjson": big, "x/2-after.ndjson": _progress_lines(50, first_user=50_000)})
    proxy = f"http://127.0.0.1:{cutting_proxy.server_address[1]}"
    result = cli("replay", f"s3://{bucket}/x/", "--json", env=s3_env(proxy, f"sqlite:///{tmp_path / 's3.db'}"))
    assert result.returncode == 1 and b"Traceback" not in result.stderr, result.stderr.decode()[-2000:]
    totals = json.loads(result.stdout)
    received = big[: cutting_proxy.cut_at]  # type: ignore[attr-defined]
    cut_line = 0 if received.endswith(b"\n") else 1  # the line the break cuts is an input of its own: rejected
    assert (totals["applied"], totals["rejected"]) == (received.count(b"\n") + 50, cut_line)
    assert (totals["files_unreadable"], totals["s3_objects"]) == (1, 2)
    stderr = result.stderr.decode().splitlines()
    cut = [line for line in stderr if f"s3://{bucket}/x/1-cut.ndjson" in line and "read error at byte" in line]
    assert len(cut) == 1 and "the transfer from S3 broke off" in cut[0] and "everything before it was read" in cut[0]
    assert stderr[-1].startswith("error: 1 file or S3 object could not be read whole")


def drain(client, queue_url: str) -> list[bytes]:
    bodies = []
    while batch := client.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages"):
        bodies += [message["Body"].encode() for message in batch]
        client.delete_message_batch(QueueUrl=queue_url, Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(batch)])
    return bodies


def test_send_puts_every_input_of_the_archive_on_the_queue(archive, make_queue, sqs_client, s3_endpoint, tmp_path):
    queue_url, _ = make_queue()
    key = list(OBJECTS)[2]  # 600 events and a broken value, concatenated
    result = cli("send", f"s3://{archive.bucket}/{key}", str(tmp_path / "extra.ndjson"), "--queue-url", queue_url, "--json",
                 env=s3_env(s3_endpoint, f"sqlite:///{tmp_path / 'unused.db'}"))
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    totals = json.loads(result.stdout)
    assert (totals["sent"], totals["failed"], totals["s3_objects"]) == (600 + 1 + 5, 0, 1)
    expected = [*EVENTS[1600:2200], BROKEN, *EXTRA.splitlines()]
    assert sorted(drain(sqs_client, queue_url)) == sorted(expected)  # byte for byte, the broken value included
