"""An in-memory queue with SQS's semantics on an injected clock: the `Queue` protocol for in-process worker tests.

What it keeps of SQS (tests/worker/test_stub_queue.py checks each rule):
- a received message is invisible for the visibility timeout, then comes
  back with its receive count one higher and a new receipt handle;
- `receive` long-polls: it returns as soon as a message is visible (sent,
  released, or back from its timeout), or empty after `wait_seconds`;
- `delete` and `change_visibility` take receipt handles: a handle SQS never
  issued fails (ReceiptHandleIsInvalid); deleting with a superseded handle
  succeeds without deleting (as SQS documents); changing the visibility of a
  message that is not in flight fails (MessageNotInflight);
- with a redrive policy, a receive that would take a message past
  `max_receive_count` moves it to the dead-letter queue instead;
- at most 10 messages per receive, and bodies SQS could not carry are refused.
Faults to inject: receive errors, failed delete or visibility entries, a queue
that cannot be used at all (`visibility_timeout` raises QueueUnavailable).
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from consumer.clock import Clock
from consumer.sources.sqs import (
    MAX_BATCH,
    Failure,
    Message,
    QueueCounts,
    QueueUnavailable,
    RedrivePolicy,
    SendFailure,
    unsendable,
)

ACCOUNT = "000000000000"


@dataclass
class Stored:
    message_id: str
    body: bytes
    attributes: dict[str, str]
    receive_count: int = 0
    visible_at: float = float("-inf")
    receipt_handle: str | None = None


class StubQueue:
    def __init__(self, clock: Clock, name: str = "live-events", visibility_timeout: int = 30,
                 max_receive_count: int | None = None) -> None:
        self.clock = clock
        self.name = name
        self.url = f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/{name}"
        self._visibility_timeout = visibility_timeout
        self.max_receive_count = max_receive_count
        self.dead_letters = StubQueue(clock, f"{name}-dlq", visibility_timeout) if max_receive_count else None
        self._lock = threading.Lock()
        self._messages: dict[str, Stored] = {}
        self._issued: set[str] = set()
        self._watchers: list[threading.Event] = []
        self._ids = itertools.count(1)
        self.deleted: list[str] = []  # message ids, in the order they were deleted
        self.calls: Counter[str] = Counter()
        # faults
        self.receive_errors: list[Exception] = []  # raised by the next receives, one each
        self.failing_deletes = 0  # the next this many delete entries fail
        self.failing_visibility = 0  # the next this many change_visibility entries fail
        self.unusable: str | None = None  # visibility_timeout raises QueueUnavailable with this

    # the Queue protocol ------------------------------------------------------------

    def visibility_timeout(self) -> int:
        self.calls["visibility_timeout"] += 1
        if self.unusable is not None:
            raise QueueUnavailable(self.unusable)
        return self._visibility_timeout

    def receive(self, wait_seconds: int, max_messages: int = MAX_BATCH) -> list[Message]:
        self.calls["receive"] += 1
        with self._lock:
            if self.receive_errors:
                raise self.receive_errors.pop(0)
            end = self.clock.now() + wait_seconds
        while True:
            with self._lock:
                now = self.clock.now()
                received = self._take_visible(now, min(max_messages, MAX_BATCH))
                if received or now >= end:
                    return received
                comes_back = min((m.visible_at for m in self._messages.values() if m.visible_at > now), default=end)
                watcher = threading.Event()
                self._watchers.append(watcher)
            try:
                self.clock.wait(watcher, min(end, comes_back) - now)
            finally:
                with self._lock:
                    self._watchers.remove(watcher)

    def delete(self, messages: Sequence[Message]) -> list[Failure]:
        self.calls["delete"] += 1
        failures = []
        with self._lock:
            for message in messages:
                if self.failing_deletes:
                    self.failing_deletes -= 1
                    failures.append(Failure(message.message_id, "InternalError", "injected failure"))
                    continue
                if message.receipt_handle not in self._issued:
                    failures.append(Failure(message.message_id, "ReceiptHandleIsInvalid", "unknown receipt handle"))
                    continue
                stored = self._messages.get(message.message_id)
                if stored is not None and stored.receipt_handle == message.receipt_handle:
                    del self._messages[message.message_id]
                    self.deleted.append(message.message_id)
        return failures

    def change_visibility(self, messages: Sequence[Message], timeout: int) -> list[Failure]:
        self.calls["change_visibility"] += 1
        failures = []
        with self._lock:
            now = self.clock.now()
            for message in messages:
                stored = self._messages.get(message.message_id)
                if self.failing_visibility:
                    self.failing_visibility -= 1
                    failures.append(Failure(message.message_id, "InternalError", "injected failure"))
                elif stored is None or stored.receipt_handle != message.receipt_handle:
                    failures.append(Failure(message.message_id, "ReceiptHandleIsInvalid", "not the latest receipt handle"))
                elif stored.visible_at <= now:
                    failures.append(Failure(message.message_id, "MessageNotInflight", "the message is visible"))
                else:
                    stored.visible_at = now + timeout
            self._wake()
        return failures

    def send(self, bodies: Sequence[tuple[bytes, dict[str, str]]]) -> list[SendFailure]:
        self.calls["send"] += 1
        failures = []
        with self._lock:
            for index, (body, attributes) in enumerate(bodies):
                reason = unsendable(body)
                if reason is not None:
                    failures.append(SendFailure(index, reason))
                    continue
                self._store(body, attributes)
            self._wake()
        return failures

    def attributes(self, *names: str) -> dict[str, str]:
        counts = self.counts()
        known = {
            "ApproximateNumberOfMessages": str(counts.visible),
            "ApproximateNumberOfMessagesNotVisible": str(counts.in_flight),
            "ApproximateNumberOfMessagesDelayed": "0",
            "VisibilityTimeout": str(self._visibility_timeout),
            "QueueArn": self.arn,
        }
        if self.dead_letters is not None:
            known["RedrivePolicy"] = f'{{"deadLetterTargetArn": "{self.dead_letters.arn}", "maxReceiveCount": {self.max_receive_count}}}'
        return {name: known[name] for name in names if name in known}

    def counts(self) -> QueueCounts:
        with self._lock:
            now = self.clock.now()
            visible = sum(1 for m in self._messages.values() if m.visible_at <= now)
            return QueueCounts(visible, len(self._messages) - visible, 0)

    def redrive_policy(self) -> RedrivePolicy | None:
        if self.dead_letters is None or self.max_receive_count is None:
            return None
        return RedrivePolicy(self.dead_letters.arn, self.max_receive_count)

    def dead_letter_queue(self) -> StubQueue | None:
        return self.dead_letters

    def purge(self) -> None:
        with self._lock:
            self._messages.clear()

    # for the tests -------------------------------------------------------------------

    @property
    def arn(self) -> str:
        return f"arn:aws:sqs:us-east-1:{ACCOUNT}:{self.name}"

    def send_bodies(self, *bodies: bytes, event_name: str | None = None) -> list[str]:
        """Send bodies (with an event_name attribute, if given); returns their message ids."""
        attributes = {"event_name": event_name} if event_name else {}
        assert all(unsendable(body) is None for body in bodies), "a body SQS could not carry"
        with self._lock:
            ids = [self._store(body, attributes) for body in bodies]
            self._wake()
        return ids

    def receive_counts(self) -> dict[str, int]:
        with self._lock:
            return {message_id: m.receive_count for message_id, m in self._messages.items()}

    def __len__(self) -> int:
        with self._lock:
            return len(self._messages)

    def _store(self, body: bytes, attributes: dict[str, str]) -> str:
        message_id = f"{self.name}-{next(self._ids):05d}"
        self._messages[message_id] = Stored(message_id, body, dict(attributes))
        return message_id

    def _take_visible(self, now: float, most: int) -> list[Message]:
        taken: list[Message] = []
        for stored in list(self._messages.values()):
            if len(taken) == most:
                break
            if stored.visible_at > now:
                continue
            if self.dead_letters is not None and self.max_receive_count and stored.receive_count >= self.max_receive_count:
                del self._messages[stored.message_id]
                self.dead_letters._arrive(stored)
                continue
            stored.receive_count += 1
            stored.receipt_handle = f"{stored.message_id}/{stored.receive_count}"
            self._issued.add(stored.receipt_handle)
            stored.visible_at = now + self._visibility_timeout
            event_name = stored.attributes.get("event_name")
            taken.append(Message(stored.message_id, stored.receipt_handle, stored.body, stored.receive_count, event_name, now))
        return taken

    def _arrive(self, stored: Stored) -> None:
        """A message moved here by a redrive policy (it keeps its id and body, and starts visible)."""
        with self._lock:
            self._messages[stored.message_id] = Stored(stored.message_id, stored.body, stored.attributes)
            self._wake()

    def _wake(self) -> None:
        for watcher in self._watchers:
            watcher.set()
