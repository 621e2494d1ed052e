"""What the worker holds: the inbox between receivers and writer, and the messages in flight."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence

from consumer.sources.sqs import Message


class Inbox:
    """Received messages waiting for the writer, in order; bounded, so receivers wait while the writer is behind.

    `arrived` is set while messages wait (and by `wake`), so the writer can
    sleep on it with a timeout of its own clock.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.arrived = threading.Event()
        self._messages: deque[Message] = deque()
        self._space = threading.Condition()

    def put(self, messages: Sequence[Message], stopping: threading.Event) -> list[Message]:
        """Add messages, waiting for room; once `stopping` is set, returns those it could not add."""
        for n, message in enumerate(messages):
            with self._space:
                while len(self._messages) >= self.capacity:
                    if stopping.is_set():
                        return list(messages[n:])
                    self._space.wait(0.5)
                self._messages.append(message)
                self.arrived.set()
        return []

    def take(self, most: int) -> list[Message]:
        """Up to `most` waiting messages, oldest first, without waiting."""
        with self._space:
            taken = [self._messages.popleft() for _ in range(min(most, len(self._messages)))]
            if not self._messages:
                self.arrived.clear()
            if taken:
                self._space.notify_all()
        return taken

    def drain(self) -> list[Message]:
        """Every waiting message."""
        return self.take(len(self))

    def wake(self) -> None:
        """Wake the writer (stop, a commit ended, a receiver finished)."""
        self.arrived.set()

    def __len__(self) -> int:
        with self._space:
            return len(self._messages)


class InFlight:
    """Messages received and not yet deleted or released, with when their visibility was last set."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: dict[str, tuple[Message, float]] = {}

    def add(self, messages: Sequence[Message]) -> None:
        with self._lock:
            for message in messages:
                self._messages[message.receipt_handle] = (message, message.received_at)

    def forget(self, messages: Sequence[Message]) -> None:
        with self._lock:
            for message in messages:
                self._messages.pop(message.receipt_handle, None)

    def due_for_extension(self, now: float, older_than: float) -> list[Message]:
        """Messages whose visibility was last set `older_than` seconds or more before `now` (marked as set now)."""
        due = []
        with self._lock:
            for handle, (message, since) in self._messages.items():
                if now - since >= older_than:
                    due.append(message)
                    self._messages[handle] = (message, now)
        return due

    def __len__(self) -> int:
        with self._lock:
            return len(self._messages)
