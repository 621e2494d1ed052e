"""Free TCP ports on loopback for the servers the tests start.

Asking the kernel for port 0 and closing the socket leaves a window before the
server binds the port: under pytest-xdist another worker's port 0 could be
handed the same number, and any outgoing connection may take it as its
ephemeral port. So each worker draws from a block of its own, below the
kernel's ephemeral range (never given to outgoing connections), starting at
a random place in it (other test runs on the machine draw too), handing each
port out once per pass through the block, and checking that nothing holds it.
"""

from __future__ import annotations

import itertools
import os
import random
import socket
from pathlib import Path

FIRST = 10000  # below: well-known and registered services
BLOCK = 1000


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # the Linux default


def _worker_index() -> int:
    """0 without xdist, N + 1 for xdist's worker gwN."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(worker[2:]) + 1 if worker.startswith("gw") and worker[2:].isdigit() else 0


def _block() -> range:
    blocks = max(1, (_ephemeral_start() - FIRST) // BLOCK)
    start = FIRST + (_worker_index() % blocks) * BLOCK
    return range(start, start + BLOCK)


def _candidates() -> itertools.cycle:
    block = _block()
    offset = random.Random(os.getpid()).randrange(len(block))
    return itertools.cycle([*block[offset:], *block[:offset]])


_next = _candidates()


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port on 127.0.0.1 that nothing holds now, not returned by this process in its last BLOCK calls."""
    for _ in range(BLOCK):
        port = next(_next)
        if _is_free(port):
            return port
    raise RuntimeError(f"no free port in {_block()} (worker {os.environ.get('PYTEST_XDIST_WORKER', 'main')})")
