#!/usr/bin/env python3
"""Coverage-guided fuzzing of parse_event with raw bytes (atheris + libFuzzer).

    python fuzz/parse_event.py -max_total_time=600 fuzz/corpus

Each input is the payload as it would arrive (an SQS body, a file line); one
that starts with NUL also carries an event_name hint (the SQS attribute), see
`split`. A crash is parse_event raising anything, or an outcome breaking the
invariants of tests/events/test_total_parsing.py (AssertionError). See
fuzz/README.md.
"""

from __future__ import annotations

import _harness
from _harness import total

TRACKED = sorted(total.TRACKED_EVENTS)


def split(data: bytes) -> tuple[bytes, str | None]:
    """The payload, and the SQS event_name attribute (the hint).

    An input starting with NUL carries a hint: the next byte chooses it (a
    tracked name, an empty string, or the following 12 bytes as any str, NUL,
    controls and lone surrogates included) and the payload follows. Any other
    input is the payload itself with no hint, so that the seeds are read as
    they are.
    """
    if not data.startswith(b"\x00") or len(data) < 2:
        return data, None
    selector, rest = data[1], data[2:]
    if selector % 4 == 0:
        return rest, TRACKED[selector // 4 % len(TRACKED)]
    if selector % 4 == 1:
        return rest, ""
    return rest[12:], rest[:12].decode("utf-8", "surrogateescape")


def test_one_input(data: bytes) -> None:
    payload, hint = split(data)
    total.parse_checked(payload, hint)


if __name__ == "__main__":
    _harness.run(test_one_input, max_len=8192)
