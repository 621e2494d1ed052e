"""A child process for tests/test_spool.py: another process that owns a spool (consumer/spool.py).

    python tests/spool_writer.py append DIR PREFIX SEED SEGMENT_BYTES
        appends batches of records PREFIX:0, PREFIX:1, ... for ever (batch sizes and payloads from SEED), and
        prints the id of each record once `append` has returned (acknowledged), one a line, flushed; the
        kill -9 test kills it at random moments.
    python tests/spool_writer.py hold DIR
        appends a few batches, drains one segment, appends again, prints its `stats()` as JSON, then keeps the
        spool (and its lock) until stdin is closed.
    python tests/spool_writer.py try DIR
        opens the spool and prints "opened", or "locked: <the SpoolLocked message>".
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import sys

from consumer.core import Input
from consumer.spool import Spool, SpoolLocked


def payload_for(source: str) -> bytes:
    """The payload of record `source`: derived from it (so a check needs only the id), 0 to ~24 KB, any bytes."""
    digest = hashlib.sha256(source.encode()).digest()
    size = int.from_bytes(digest[:2], "big") % 24_000
    return (digest * (size // len(digest) + 1))[:size]


def append_forever(directory: str, prefix: str, seed: int, segment_bytes: int) -> None:
    rng = random.Random(seed)
    spool = Spool(directory, max_bytes=1 << 40, segment_bytes=segment_bytes)
    number = 0
    while True:
        sources = [f"{prefix}:{number + offset}" for offset in range(rng.randint(1, 40))]
        spool.append([Input(source, payload_for(source)) for source in sources])
        sys.stdout.write("".join(f"{source}\n" for source in sources))
        sys.stdout.flush()
        number += len(sources)


def hold(directory: str) -> None:
    spool = Spool(directory, max_bytes=1 << 30, segment_bytes=4096)
    for batch in range(6):
        sources = [f"hold:{batch}:{offset}" for offset in range(batch + 1)]
        spool.append([Input(source, payload_for(source)) for source in sources])
    segment = spool.oldest()
    assert segment is not None
    spool.consumed(segment)
    spool.append([Input("hold:last", b"\0\xff")])
    print(json.dumps(dataclasses.asdict(spool.stats())), flush=True)
    sys.stdin.read()
    spool.close()


def try_open(directory: str) -> None:
    try:
        Spool(directory, max_bytes=1 << 20).close()
    except SpoolLocked as error:
        print(f"locked: {error}", flush=True)
        return
    print("opened", flush=True)


if __name__ == "__main__":
    mode, directory, *rest = sys.argv[1:]
    if mode == "append":
        append_forever(directory, rest[0], int(rest[1]), int(rest[2]))
    elif mode == "hold":
        hold(directory)
    else:
        try_open(directory)
