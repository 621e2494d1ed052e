"""The receiver's HTTP application: `POST /live-events`, `/healthz`, `/readyz`, `/metrics` (plain ASGI, for speed).

`POST /live-events` takes one Canvas Live Event per request:
1. the body: over 1 MiB is 413 (from Content-Length before anything is
   read, or counted as chunks arrive); a body that does not arrive within
   `body_timeout` seconds is 408;
2. verification (`consumer.sources.signatures`): any failure is 401, logged
   as one line with the reason and the remote address, counted, not stored;
   keys that cannot be fetched at all are the receiver's problem: 503;
3. the event, as signed (the JWT's payload bytes) or as sent (unsigned,
   when allowed), goes to the intake with the source `https:REQUEST_ID`;
   the answer waits until it is committed or spooled (200), or could not be
   made durable (503 with Retry-After, so Canvas delivers it again).
A bad event is quarantined by the pipeline and answered 200: Canvas would
only deliver the same bad bytes again.

The application is plain ASGI rather than a framework's routing: it answers
thousands of small POSTs a second on one core, and has four routes.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from consumer.api.body_limit import MAX_BODY_BYTES, declared_too_large
from consumer.core import Input
from consumer.receiver import metrics
from consumer.receiver.intake import Intake, Refused
from consumer.sources.signatures import KeyNotHeld, KeysUnavailable, Unverified, Verifier
from consumer.text import one_line

log = logging.getLogger("consumer.receiver")

Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]
RETRY_AFTER = b"60"
_JSON = (b"content-type", b"application/json")


class ReceiverApp:
    def __init__(self, intake: Intake, verifier: Verifier, *, max_body: int = MAX_BODY_BYTES,
                 body_timeout: float = 10.0, on_shutdown: Callable[[], None] | None = None) -> None:
        self.intake = intake
        self.verifier = verifier
        self.max_body = max_body
        self.body_timeout = body_timeout
        self._on_shutdown = on_shutdown
        self._not_ready: str | None = None

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/live-events" or path == "/live-events/":
            if method != "POST":
                await _answer(send, 405, {"error": "use POST"}, [(b"allow", b"POST")])
                return
            await self._live_event(scope, receive, send)
        elif method not in ("GET", "HEAD"):
            await _answer(send, 405, {"error": "method not allowed"}, [(b"allow", b"GET, HEAD")])
        elif path == "/healthz":
            await _answer(send, 200, {"status": "ok"})
        elif path == "/readyz":
            await self._readyz(send)
        elif path == "/metrics":
            await _send(send, 200, generate_latest(), [(b"content-type", CONTENT_TYPE_LATEST.encode())])
        else:
            await _answer(send, 404, {"error": "not found: events go to POST /live-events"})

    async def _live_event(self, scope: dict, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_id = uuid.uuid4().hex
        outcome, status, body, extra = await self._take(scope, receive, request_id)
        metrics.REQUESTS.labels(outcome).inc()
        metrics.REQUEST_SECONDS.observe(time.perf_counter() - started)
        await _answer(send, status, {**body, "request_id": request_id}, [(b"x-request-id", request_id.encode()), *extra])

    async def _take(self, scope: dict, receive: Receive, request_id: str) -> tuple[str, int, dict, list]:
        """(metrics outcome, status, JSON body, extra headers) for one POST."""
        declared = declared_too_large(scope["headers"], self.max_body)
        if declared is not None:
            return "too_large", 413, {"error": f"the body is larger than {self.max_body} bytes"}, [(b"connection", b"close")]
        try:
            body = await asyncio.wait_for(self._read_body(receive), self.body_timeout)
        except _TooLarge:
            return "too_large", 413, {"error": f"the body is larger than {self.max_body} bytes"}, [(b"connection", b"close")]
        except TimeoutError:
            return "bad_request", 408, {"error": f"the body did not arrive within {self.body_timeout:.0f} s"}, [(b"connection", b"close")]
        except _Disconnected:
            return "bad_request", 400, {"error": "the client went away"}, []
        try:
            try:
                payload = self.verifier.verify(body, fetch=False)
            except KeyNotHeld:  # a key not held: the fetch must not stall the event loop
                payload = await asyncio.get_running_loop().run_in_executor(None, self.verifier.verify, body)
        except Unverified as error:
            metrics.UNVERIFIED.labels(error.kind).inc()
            remote = _remote(scope)
            log.warning("refused request %s from %s: %s", request_id, remote, error.reason,
                        extra={"request_id": request_id, "remote": remote, "reason": error.kind})
            return "unverified", 401, {"error": f"not accepted: {error.reason}"}, []
        except KeysUnavailable as error:
            log.error("cannot verify request %s: %s", request_id, one_line(str(error)))
            return "unavailable", 503, {"error": "the signing keys cannot be fetched; deliver again later"}, [(b"retry-after", RETRY_AFTER)]
        try:
            state = await asyncio.wrap_future(self.intake.submit(Input(f"https:{request_id}", payload)))
        except Refused as error:
            return "unavailable", 503, {"error": error.reason}, [(b"retry-after", RETRY_AFTER)]
        return state, 200, {"status": state}, []

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _readyz(self, send: Send) -> None:
        """Ready while an event can be made durable: the intake accepts and the database or the spool can take it."""
        stats = self.intake.spool.stats()
        database_ok = self.intake.database_ok
        # Room for one more event of the largest size, and the last append was not refused (full, disk error).
        spool_room = not self.intake.spool_failing and stats.bytes + self.max_body + 4096 <= self.intake.spool.max_bytes
        problem = None
        if not self.intake.accepting:
            problem = "stopping"
        elif not database_ok and not spool_room:
            problem = "the database is unavailable and the spool is full or cannot be written"
        if problem != self._not_ready:
            if problem is None:
                log.info("ready again")
            else:
                log.warning("not ready: %s", problem)
            self._not_ready = problem
        age = stats.age(time.time())
        body = {
            "status": "ok" if problem is None else "unavailable",
            "database": "ok" if database_ok else "spooling",
            "spool_records": stats.records,
            "spool_bytes": stats.bytes,
            "spool_oldest_age_seconds": round(age, 3) if age is not None else None,
        }
        await _answer(send, 200 if problem is None else 503, body)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # uvicorn has stopped accepting and answered what was in flight; now finish the intake.
                if self._on_shutdown is not None:
                    await asyncio.get_running_loop().run_in_executor(None, self._on_shutdown)
                await send({"type": "lifespan.shutdown.complete"})
                return


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


def _remote(scope: dict) -> str:
    client = scope.get("client")
    return f"{client[0]}" if client else "unknown"


async def _answer(send: Send, status: int, body: dict, headers: list | None = None) -> None:
    await _send(send, status, orjson.dumps(body) + b"\n", [_JSON, *(headers or [])])


async def _send(send: Send, status: int, body: bytes, headers: list) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})
