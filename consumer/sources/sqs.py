"""The queue the worker consumes: the `Queue` protocol, and `SqsQueue`, its thin adapter over boto3's SQS client.

Every call that can fail partially (the *Batch calls) returns the entries
that failed instead of raising, so the worker loop decides what to log and
never crashes on them.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlparse

import orjson
from botocore.config import Config

from consumer.core import Input
from consumer.text import one_line

log = logging.getLogger(__name__)

MAX_BATCH = 10  # SQS's limit for ReceiveMessage and every *Batch call
_MAX_BATCH_BYTES = 256 * 1024


@dataclass(slots=True)
class Message:
    """One received SQS message, and when we got it."""

    message_id: str
    receipt_handle: str
    body: bytes
    receive_count: int | None
    event_name: str | None
    received_at: float = field(default_factory=time.monotonic)
    sent_at: float | None = None  # SQS's SentTimestamp (Unix seconds): when the message was first sent to the queue

    def as_input(self) -> Input:
        return Input(self.message_id, self.body, self.receive_count, self.event_name)


@dataclass(frozen=True, slots=True)
class Failure:
    message_id: str
    code: str
    reason: str


def message_attributes(payload: bytes) -> dict[str, str]:
    """The event_name / event_time attributes Canvas sets, read from the event (none if unreadable).

    A value SQS could not carry unchanged is left out rather than altered:
    the worker then reads the body.
    """
    from consumer.events.envelope import unwrap

    try:
        metadata = unwrap(orjson.loads(payload)).get("metadata")
    except ValueError:  # not JSON (orjson.JSONDecodeError), not a Canvas event (EnvelopeError)
        return {}
    if not isinstance(metadata, dict):
        return {}
    attributes = {}
    for name in ("event_name", "event_time"):
        value = metadata.get(name)
        if isinstance(value, str) and value and unsendable(value.encode("utf-8", "surrogatepass")) is None:
            attributes[name] = value
    return attributes


# SQS carries only #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF. In valid UTF-8 the
# characters outside that are these bytes (surrogates are not valid UTF-8 at all).
_SQS_REFUSES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]|\xef\xbf[\xbe\xbf]")


def unsendable(payload: bytes) -> str | None:
    """Why SQS cannot carry `payload` exactly as it is; None when it can.

    A message body is text: bytes that are not UTF-8, or characters SQS
    refuses, could only be sent altered, and `send` never alters a payload.
    """
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"not valid UTF-8 (byte 0x{payload[error.start]:02x} at offset {error.start:,}); an SQS message is text"
    refused = _SQS_REFUSES.search(payload)
    if refused is not None:
        code = ord(refused.group().decode("utf-8"))
        return f"holds U+{code:04X} (offset {refused.start():,}), a character SQS messages cannot carry"
    return None


def sent_timestamp(raw: dict[str, Any]) -> float | None:
    """A received message's SentTimestamp attribute (epoch milliseconds) in Unix seconds; None when absent or not a number."""
    value = raw.get("Attributes", {}).get("SentTimestamp")
    if value is None:
        return None
    try:
        return int(value) / 1000
    except (TypeError, ValueError):
        log.warning("message %s: SentTimestamp %r is not a number of milliseconds; its age is not measured",
                    raw.get("MessageId"), one_line(str(value))[:40])
        return None


class SendFailure(NamedTuple):
    index: int  # in the list given to `send`
    reason: str


class QueueUnavailable(Exception):
    """The queue cannot be used at all (it does not exist, access is denied, SQS cannot be reached)."""


class QueueError(Exception):
    """One call to the queue failed (network, throttling, SQS refused it): the worker backs off and tries again.

    Only this is retried: any other exception from a Queue is a bug, and stops the worker.
    """


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """SQS's approximate numbers of messages: visible, in flight (received, not deleted) and delayed."""

    visible: int
    in_flight: int
    delayed: int


@dataclass(frozen=True, slots=True)
class RedrivePolicy:
    """Where SQS moves a message received more than `max_receive_count` times: the dead-letter queue."""

    dead_letter_arn: str
    max_receive_count: int

    @property
    def dead_letter_name(self) -> str:
        return self.dead_letter_arn.rsplit(":", 1)[-1]

    @property
    def dead_letter_account(self) -> str:
        return self.dead_letter_arn.split(":")[4]


class Queue(Protocol):
    """A message queue with SQS's semantics, as the worker, `send`, `status` and the benchmarks use it.

    The semantics the worker relies on: a received message becomes invisible
    to other receivers for the queue's visibility timeout, and comes back
    (its receive count one higher) unless it is deleted first; the receiver
    may extend or end that timeout (`change_visibility`); after
    `max_receive_count` receipts the redrive policy moves it to the
    dead-letter queue. `SqsQueue` is SQS itself; tests use an in-memory one
    (tests/worker/stub_queue.py) that keeps these rules on an injected clock.
    The *Batch operations (`delete`, `change_visibility`, `send`) report the
    entries that failed instead of raising.
    """

    url: str

    def visibility_timeout(self) -> int:
        """The queue's VisibilityTimeout, in seconds; raises QueueUnavailable when the queue cannot be used."""
        ...

    def receive(self, wait_seconds: int, max_messages: int = MAX_BATCH) -> list[Message]:
        """Up to `max_messages` visible messages, waiting up to `wait_seconds` for one (long poll).

        Raises QueueError when the call fails (network, throttling, SQS refused it).
        """
        ...

    def delete(self, messages: Sequence[Message]) -> list[Failure]:
        """Delete received messages (by receipt handle); returns those that could not be."""
        ...

    def change_visibility(self, messages: Sequence[Message], timeout: int) -> list[Failure]:
        """Make received messages visible again in `timeout` seconds (0: at once); returns those that could not be."""
        ...

    def send(self, bodies: Sequence[tuple[bytes, dict[str, str]]]) -> list[SendFailure]:
        """Send (body, string attributes) pairs, each body exactly as given; returns those not sent, and why."""
        ...

    def attributes(self, *names: str) -> dict[str, str]:
        """GetQueueAttributes: the named attributes as SQS spells them; raises on failure."""
        ...

    def counts(self) -> QueueCounts:
        """How many messages are visible, in flight and delayed (approximately, as SQS says)."""
        ...

    def redrive_policy(self) -> RedrivePolicy | None:
        """The queue's redrive policy; None when it has no dead-letter queue."""
        ...

    def dead_letter_queue(self) -> Queue | None:
        """The dead-letter queue its redrive policy names; None without one."""
        ...

    def purge(self) -> None:
        """Delete every message (PurgeQueue): only the benchmarks do this, on a scratch queue."""
        ...


def make_client(endpoint_url: str | None = None, queue_url: str | None = None) -> Any:
    """A boto3 SQS client.

    Without an explicit endpoint, boto3's own AWS_ENDPOINT_URL_SQS /
    AWS_ENDPOINT_URL settings apply. Without a configured region, the region
    is read from an AWS queue URL (sqs.<region>.amazonaws.com), else us-east-1.
    """
    from consumer.sources.aws import aws_client

    config = Config(retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=32, connect_timeout=5, read_timeout=30)
    source = "--endpoint-url" if endpoint_url else "AWS_ENDPOINT_URL_SQS / AWS_ENDPOINT_URL"
    return aws_client("sqs", config, source, endpoint_url, region_from_queue_url(queue_url), "us-east-1")


def region_from_queue_url(queue_url: str | None) -> str | None:
    """`us-east-1` from https://sqs.us-east-1.amazonaws.com/123/q (None for other hosts)."""
    host = urlparse(queue_url or "").hostname or ""
    parts = host.split(".")
    if len(parts) >= 4 and parts[0] == "sqs" and parts[2] == "amazonaws":
        return parts[1]
    return None


class SqsQueue:
    """The `Queue` protocol on one SQS queue, through a boto3 client (`make_client`).

    *Batch calls go out 10 entries at a time (SQS's limit), up to
    `concurrency` of them side by side: a 1,000-message batch is 100 calls.
    Nothing outside this class talks to the client.
    """

    def __init__(self, client: Any, queue_url: str, concurrency: int = 8) -> None:
        self.client = client
        self.url = queue_url
        self._concurrency = concurrency
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="sqs-batch")

    def attributes(self, *names: str) -> dict[str, str]:
        return self.client.get_queue_attributes(QueueUrl=self.url, AttributeNames=list(names))["Attributes"]

    def visibility_timeout(self) -> int:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return int(self.attributes("VisibilityTimeout")["VisibilityTimeout"])
        except (BotoCoreError, ClientError) as error:  # no such queue, access denied, SQS unreachable
            raise QueueUnavailable(str(error)) from error

    def counts(self) -> QueueCounts:
        names = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed")
        attributes = self.attributes(*names)
        return QueueCounts(*(int(attributes.get(name, 0)) for name in names))

    def redrive_policy(self) -> RedrivePolicy | None:
        policy = self.attributes("RedrivePolicy").get("RedrivePolicy")
        if not policy:
            return None
        parsed = orjson.loads(policy)
        return RedrivePolicy(parsed["deadLetterTargetArn"], int(parsed["maxReceiveCount"]))

    def dead_letter_queue(self) -> SqsQueue | None:
        policy = self.redrive_policy()
        if policy is None:
            return None
        found = self.client.get_queue_url(QueueName=policy.dead_letter_name, QueueOwnerAWSAccountId=policy.dead_letter_account)
        return SqsQueue(self.client, found["QueueUrl"], self._concurrency)

    def purge(self) -> None:
        self.client.purge_queue(QueueUrl=self.url)

    def receive(self, wait_seconds: int, max_messages: int = MAX_BATCH) -> list[Message]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=max_messages,
                WaitTimeSeconds=wait_seconds,
                MessageAttributeNames=["event_name", "event_time"],
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            )
        except (BotoCoreError, ClientError) as error:  # network, throttling, refused: worth retrying
            raise QueueError(one_line(str(error)) or type(error).__name__) from error
        messages = []
        for raw in response.get("Messages", []):
            count = raw.get("Attributes", {}).get("ApproximateReceiveCount")
            event_name = raw.get("MessageAttributes", {}).get("event_name", {}).get("StringValue")
            messages.append(
                Message(raw["MessageId"], raw["ReceiptHandle"], raw["Body"].encode("utf-8"), int(count) if count else None, event_name,
                        sent_at=sent_timestamp(raw))
            )
        return messages

    def with_timeouts(self, connect: float, read: float) -> SqsQueue:
        """The same queue through a client of its own that gives up after `connect` / `read` seconds, without retries:
        for calls that must not wait long (the worker's queue gauges), on the same endpoint and region."""
        from consumer.sources.aws import aws_client

        config = Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=connect, read_timeout=read)
        meta = self.client.meta
        client = aws_client("sqs", config, "the worker's SQS endpoint", meta.endpoint_url, meta.region_name)
        return SqsQueue(client, self.url, concurrency=1)

    def delete(self, messages: Sequence[Message]) -> list[Failure]:
        return self._batch(
            "delete_message_batch", messages, lambda n, m: {"Id": str(n), "ReceiptHandle": m.receipt_handle}
        )

    def change_visibility(self, messages: Sequence[Message], timeout: int) -> list[Failure]:
        return self._batch(
            "change_message_visibility_batch",
            messages,
            lambda n, m: {"Id": str(n), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": timeout},
        )

    def _batch(self, operation: str, messages: Sequence[Message], entry: Any) -> list[Failure]:
        def call(chunk: Sequence[Message]) -> list[Failure]:
            try:
                response = getattr(self.client, operation)(QueueUrl=self.url, Entries=[entry(n, m) for n, m in enumerate(chunk)])
            except Exception as error:  # network, throttling: report every entry of the chunk
                return [Failure(m.message_id, type(error).__name__, str(error)) for m in chunk]
            return [
                Failure(chunk[int(failed["Id"])].message_id, failed.get("Code", ""), failed.get("Message", ""))
                for failed in response.get("Failed", [])
            ]

        chunks = [messages[start : start + MAX_BATCH] for start in range(0, len(messages), MAX_BATCH)]
        if len(chunks) == 1:
            return call(chunks[0])
        return [failure for failures in self._pool.map(call, chunks) for failure in failures]

    def send(self, bodies: Sequence[tuple[bytes, dict[str, str]]]) -> list[SendFailure]:
        """Send (body, attributes) pairs in batches, each body exactly as given; returns those not sent, and why.

        A body SQS cannot carry unchanged (`unsendable`) is never sent.
        """
        failed, ready = [], []
        for index, (body, attributes) in enumerate(bodies):
            reason = unsendable(body)
            if reason is None:
                ready.append((index, body, attributes))
            else:
                failed.append(SendFailure(index, reason))
        for chunk in _send_batches(ready):
            failed.extend(self._send_batch(chunk))
        return sorted(failed)

    def _send_batch(self, chunk: Sequence[tuple[int, bytes, dict[str, str]]]) -> list[SendFailure]:
        entries = [
            {
                "Id": str(n),
                "MessageBody": body.decode("utf-8"),  # strict: `send` checked it
                "MessageAttributes": {k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
            }
            for n, (_, body, attributes) in enumerate(chunk)
        ]
        try:
            response = self.client.send_message_batch(QueueUrl=self.url, Entries=entries)
        except Exception as error:  # network, throttling, permissions: the whole batch failed
            reason = f"SendMessageBatch failed: {one_line(str(error)) or type(error).__name__}"
            return [SendFailure(index, reason) for index, _, _ in chunk]
        return [
            SendFailure(chunk[int(entry["Id"])][0], f"SQS refused it ({entry.get('Code', '?')}): {entry.get('Message', '')}")
            for entry in response.get("Failed", [])
        ]


def _send_batches(items: Sequence[tuple[int, bytes, dict[str, str]]]) -> Iterator[list[tuple[int, bytes, dict[str, str]]]]:
    """Groups within SendMessageBatch's limits: MAX_BATCH messages, _MAX_BATCH_BYTES (a bigger message goes alone)."""
    chunk: list[tuple[int, bytes, dict[str, str]]] = []
    size = 0
    for item in items:
        item_size = len(item[1]) + sum(len(k) + len(v.encode("utf-8")) for k, v in item[2].items())
        if chunk and (len(chunk) == MAX_BATCH or size + item_size > _MAX_BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += item_size
    if chunk:
        yield chunk
