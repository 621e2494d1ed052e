"""The request body limit: 413 for a body over 1 MiB, decided before it is read in full.

A Content-Length over the limit is answered at once, without reading any of
the body; a chunked body (no Content-Length) is counted as its chunks arrive
and refused at the chunk that crosses the limit. uvicorn then discards the
rest of the body as it arrives, without keeping it. Report requests are a few
hundred bytes, so the limit only ever stops abuse.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from consumer.api.errors import CanvasError, error_response

MAX_BODY_BYTES = 1 << 20


class BodyTooLarge(CanvasError):
    def __init__(self, limit: int, how: str) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes, the most this API accepts ({how})")


def declared_too_large(headers: list[tuple[bytes, bytes]], limit: int) -> bytes | None:
    """The Content-Length header when it is over the limit (h11 has checked it holds digits), else None."""
    for name, value in headers:
        value = value.strip(b" \t")  # optional whitespace around a field value (RFC 9110 5.5)
        if name == b"content-length" and (len(value) > 18 or (value.isdigit() and int(value) > limit)):
            return value
    return None


class LimitBody:
    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = declared_too_large(scope["headers"], self.limit)
        if declared is not None:
            refusal = BodyTooLarge(self.limit, f"Content-Length: {declared.decode('latin-1')[:40]}")
            await error_response(413, refusal.message)(scope, receive, send)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit, f"{received} bytes received so far")
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge as error:
            # Raised while a route read the body; normally the CanvasError handler has answered already.
            if started:
                raise
            await error_response(413, error.message)(scope, receive, send)
