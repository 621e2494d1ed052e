"""What a client cannot do to a real receiver (found by a hostile review): hold connection slots with heads that never
end, grow its memory with an endless header, or slip a large body past the early 413 with odd whitespace."""

from __future__ import annotations

import socket
import time

import pytest

from consumer.receiver.protocol import HEAD_DEADLINE, MAX_HEAD
from tests.jwks_keys import CANVAS_ISSUER
from tests.receiver.server import Receiver

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def receiver(tmp_path_factory, canvas, new_pg_database):
    folder = tmp_path_factory.mktemp("limits")
    with Receiver(new_pg_database(), folder / "spool", folder / "receiver.log", "--jwks-file", str(canvas.file),
                  "--issuer", CANVAS_ISSUER).running() as running:
        yield running  # and, after the attacks, it still stops cleanly on SIGTERM


def _connect(receiver: Receiver) -> socket.socket:
    return socket.create_connection(("127.0.0.1", receiver.port), timeout=HEAD_DEADLINE + 10)


def _closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed `sock` (reading nothing or an answer, then EOF), None if it stayed open."""
    started = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def test_connections_that_never_finish_their_head_are_closed_and_deliveries_go_on(receiver, canvas):
    idle = [_connect(receiver) for _ in range(20)]
    partial = [_connect(receiver) for _ in range(20)]
    for sock in partial:
        sock.sendall(b"POST /live-events HTTP/1.1\r\nHost: x\r\n")
    deadline = time.monotonic() + HEAD_DEADLINE + 5
    waited = [_closed_within(sock, max(0.1, deadline - time.monotonic())) for sock in idle + partial]
    assert all(seconds is not None for seconds in waited), waited  # every one closed by the server, in time
    for sock in idle + partial:
        sock.close()
    assert receiver.post(canvas.sign({"metadata": {"event_name": "x"}, "body": {}}).token).status == 200


def test_a_head_over_the_bound_is_refused_at_once_and_memory_is_not_spent_on_it(receiver):
    sock = _connect(receiver)
    sock.sendall(b"POST /live-events HTTP/1.1\r\nHost: x\r\nX-A: ")
    started = time.monotonic()
    try:
        for _ in range(64):  # up to 4 MiB of one endless header, in 64 KiB pieces
            sock.sendall(b"a" * 65536)
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused and closed while we were still sending
    sock.settimeout(5)
    try:
        answer = sock.recv(200)  # without the bound the server would wait for the rest of the head: a timeout
    except ConnectionResetError:
        answer = b"(reset)"
    sock.close()
    assert answer.startswith(b"HTTP/1.1 400") or answer in (b"", b"(reset)"), answer
    assert time.monotonic() - started < 5
    assert MAX_HEAD < 4 << 20
    assert receiver.get("/healthz").status == 200


@pytest.mark.parametrize("value", [b"2000000 ", b" 2000000", b"\t2000000\t"])
def test_a_large_content_length_with_whitespace_around_it_is_refused_before_the_body(receiver, value):
    sock = _connect(receiver)
    sock.sendall(b"POST /live-events HTTP/1.1\r\nHost: x\r\nContent-Length:" + value + b"\r\n\r\n")
    sock.settimeout(5)
    assert sock.recv(200).startswith(b"HTTP/1.1 413")
    sock.close()
