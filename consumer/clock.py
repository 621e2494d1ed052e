"""The worker's sense of time: a monotonic clock and a timed wait on an event.

Every wait of the worker goes through a `Clock`, so that a test can run it on
virtual time (tests/worker/fake_clock.py): batching by age, back-off and
visibility extension then take no real seconds, and happen exactly when the
test moves the clock.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale (only differences mean anything)."""
        ...

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Wait until `event` is set or `timeout` seconds have passed; True when the event is set."""
        ...


class RealClock:
    """Time as it passes: `time.monotonic` and `Event.wait`."""

    def now(self) -> float:
        return time.monotonic()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(max(0.0, timeout))


REAL_CLOCK = RealClock()
