"""uvicorn's httptools protocol with the limits it lacks: a deadline and a size bound on each request's head.

uvicorn's httptools path starts no timer until a first response (its
keep-alive timer), and bounds neither the request line and headers nor
chunked trailers. So, without this, a client could hold a connection slot
forever by sending nothing or half a head (500 of them make every delivery
and probe a 503), or grow the process's memory without bound with one
endless header. Here:
- the head (request line and headers) must be complete within
  `HEAD_DEADLINE` seconds of the connection, or of the first byte of the
  next request on a kept-alive one, else the connection is closed;
- a head over `MAX_HEAD` bytes is answered 400 at once;
- one request may not take more than `MAX_REQUEST` bytes on the wire (a
  1 MiB body, its chunk framing, a head and trailers fit many times over):
  past it, 400 and the connection closes.
The body's own limits (413 over 1 MiB, a deadline to arrive) are the
application's (`consumer/receiver/app.py`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEAD_DEADLINE = 10.0
MAX_HEAD = 64 * 1024
MAX_REQUEST = 3 << 20


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_bytes = 0
        self._request_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = self.loop.call_later(HEAD_DEADLINE, self._head_too_slow)

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(HEAD_DEADLINE, self._head_too_slow)

    def data_received(self, data: bytes) -> None:
        self._request_bytes += len(data)
        if self._request_bytes > MAX_REQUEST:
            self._stop_head_timer()
            self.send_400_response("Request too large.")
            return
        in_head = self._head_timer is not None
        super().data_received(data)
        if in_head and self._head_timer is not None:  # still inside the head after this data
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD:
                self._stop_head_timer()
                self.send_400_response("Request head too large.")

    def on_headers_complete(self) -> None:
        self._stop_head_timer()
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._request_bytes = 0
        super().on_message_complete()

    def connection_lost(self, exc: Any) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)
