"""Virtual time for the worker's threads (consumer.clock.Clock): it moves only when the test moves it.

A thread waiting on the clock sleeps until its event is set or the virtual
time reaches its deadline. The clock knows who sleeps until when, so a test
can tell when every thread of the worker is asleep (nothing will happen
until time moves) and move time to the next deadline: the worker then runs
as fast as it can, and its timing is exactly the one it would have in real time.
"""

from __future__ import annotations

import threading

_POLL = 0.002  # real seconds between two looks at a sleeper's event


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self._sleepers: dict[threading.Thread, tuple[float, threading.Event]] = {}

    def now(self) -> float:
        with self._lock:
            return self._now

    def wait(self, event: threading.Event, timeout: float) -> bool:
        me = threading.current_thread()
        with self._lock:
            deadline = self._now + max(0.0, timeout)
            self._sleepers[me] = (deadline, event)
        try:
            while True:
                if event.is_set():
                    return True
                with self._lock:
                    if self._now >= deadline:
                        return False
                event.wait(_POLL)
        finally:
            with self._lock:
                self._sleepers.pop(me, None)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def advance_to(self, moment: float) -> None:
        with self._lock:
            self._now = max(self._now, moment)

    def asleep(self, thread: threading.Thread) -> bool:
        """`thread` waits on this clock, and nothing will wake it before time moves (or its event is set)."""
        with self._lock:
            sleeper = self._sleepers.get(thread)
            return sleeper is not None and sleeper[0] > self._now and not sleeper[1].is_set()

    def next_deadline(self) -> float | None:
        """The earliest moment a sleeping thread wakes at."""
        with self._lock:
            return min((deadline for deadline, _ in self._sleepers.values()), default=None)
