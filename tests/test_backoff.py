import random

from consumer.backoff import Backoff


def test_delays_grow_exponentially_with_jitter_up_to_the_cap():
    backoff = Backoff(base=0.5, cap=8.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(8)]
    ceilings = [0.5, 1, 2, 4, 8, 8, 8, 8]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays)) == len(delays)  # jittered, so restarts do not stampede


def test_reset_starts_over():
    backoff = Backoff(base=1.0, cap=30.0, rng=random.Random(2))
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() <= 1.0
