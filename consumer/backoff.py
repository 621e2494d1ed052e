"""Exponential backoff with full jitter, so that restarting workers do not stampede."""

from __future__ import annotations

import random


class Backoff:
    """Delays of 0..min(cap, base * 2**n) seconds for the n-th consecutive failure."""

    def __init__(self, base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * 2**self.failures)
        self.failures += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0
