"""Request bodies over 1 MiB get 413 before they are read in full (issue 11, item 5).

Against a real server: the memory figures are the server process's RSS from
/proc/<pid>/status (printed; run with -s to see them), and the raw-socket
tests stop sending part-way, so a 413 can only come from a server that did
not wait for the whole body.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest
import requests

from consumer.api.body_limit import MAX_BODY_BYTES

PATH = "/api/v1/accounts/79/reports/course_completion_csv"
MiB = 1 << 20


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def assert_413(response: requests.Response) -> None:
    assert response.status_code == 413, (response.status_code, response.text[:300])
    (error,) = response.json()["errors"]
    assert error["message"].startswith(f"the request body is larger than {MAX_BODY_BYTES} bytes"), error["message"]


def answer_while_sending(api, head: str, parts: Iterator[bytes], timeout: float = 20) -> bytes:
    """Send a request head and body parts on a raw socket, stopping as soon as the server answers; the answer."""
    with socket.create_connection(("127.0.0.1", api.server.port), timeout=timeout) as sock:
        sock.sendall(head.encode("latin-1"))
        sock.setblocking(False)
        answer = b""
        for part in parts:
            try:
                answer += sock.recv(65536)
                break  # the server answered before the body was complete
            except BlockingIOError:
                pass
            sock.setblocking(True)
            sock.sendall(part)
            sock.setblocking(False)
        sock.setblocking(True)
        sock.settimeout(timeout)
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < _length(answer):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def _length(answer: bytes) -> int:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def head(api, *lines: str) -> str:
    return "\r\n".join([f"POST {PATH} HTTP/1.1", f"Host: 127.0.0.1:{api.server.port}",
                        f"Authorization: Bearer {api.token}", "Content-Type: application/json", *lines, "", ""])


def test_a_30_mb_body_gets_413_and_the_server_does_not_grow(api) -> None:
    headers = {**api.headers(), "Content-Type": "application/json"}
    assert requests.post(api.url + PATH, headers=headers, data=b'{"parameters": {}}', timeout=10).status_code == 200
    before = rss_kib(api.server.process.pid)
    body = b'{"parameters": {}, "padding": "' + b"x" * (30 * MiB) + b'"}'
    started = time.monotonic()
    response = requests.post(api.url + PATH, headers=headers, data=body, timeout=60)
    seconds = time.monotonic() - started
    after = rss_kib(api.server.process.pid)
    print(f"\n30 MB body: {response.status_code} in {seconds:.2f} s; server RSS {before / 1024:.1f} -> {after / 1024:.1f} MiB")
    assert_413(response)
    assert after - before < 8 * 1024, f"the server grew by {(after - before) / 1024:.1f} MiB"


def test_413_comes_before_a_declared_body_is_sent(api) -> None:
    # Content-Length says 30 MB; 64 KiB of it are sent, then nothing: the answer cannot have waited for the body.
    parts = (b"x" * 65536 for _ in range(1))
    answer = answer_while_sending(api, head(api, f"Content-Length: {30 * MiB}"), iter([*parts, b""]))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["errors"][0]["message"].endswith(f"(Content-Length: {30 * MiB})")


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=xyz"])
def test_a_chunked_body_is_refused_once_it_passes_the_limit(api, content_type: str) -> None:
    """No Content-Length: counted as chunks arrive. 2 MiB are offered, the terminating chunk never is."""
    opening = b'--xyz\r\nContent-Disposition: form-data; name="upload"; filename="a.csv"\r\n\r\n'
    chunks = [opening if content_type.startswith("multipart") else b"", *[b"x" * 65536] * 32]
    frames = (f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for chunk in chunks if chunk)
    request_head = head(api, "Transfer-Encoding: chunked").replace("Content-Type: application/json",
                                                                    f"Content-Type: {content_type}")
    before = rss_kib(api.server.process.pid)
    answer = answer_while_sending(api, request_head, frames)
    after = rss_kib(api.server.process.pid)
    print(f"\nchunked {content_type}: server RSS {before / 1024:.1f} -> {after / 1024:.1f} MiB")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    message = json.loads(answer.split(b"\r\n\r\n", 1)[1])["errors"][0]["message"]
    assert message.startswith(f"the request body is larger than {MAX_BODY_BYTES} bytes"), message


def test_requests_chunked_upload_over_the_limit_gets_413(api) -> None:
    # What a client streaming a generator sends: Transfer-Encoding: chunked, all of it.
    def body() -> Iterator[bytes]:
        yield b'{"parameters": {}, "padding": "'
        for _ in range(3 * 16):
            yield b"x" * 65536
        yield b'"}'

    response = requests.post(api.url + PATH, headers={**api.headers(), "Content-Type": "application/json"}, data=body(),
                             timeout=60)
    assert_413(response)


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_of_exactly_the_limit_is_read_and_one_byte_more_is_not(api, chunked: bool) -> None:
    document = b'{"parameters": {"include_deleted": true}}'

    def padded(size: int) -> bytes:
        return document + b" " * (size - len(document))

    def send(data: bytes) -> requests.Response:
        payload = iter([data[: len(data) // 2], data[len(data) // 2 :]]) if chunked else data
        return requests.post(api.url + PATH, headers={**api.headers(), "Content-Type": "application/json"},
                             data=payload, timeout=30)

    accepted = send(padded(MAX_BODY_BYTES))
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["parameters"] == {"include_deleted": True}
    assert_413(send(padded(MAX_BODY_BYTES + 1)))
