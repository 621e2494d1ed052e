"""Calling the ASGI app in-process, as uvicorn would: one request in, the status, headers and body out.

For property tests that make thousands of requests (a real server is used
where the HTTP layer itself matters). Starlette's TestClient needs httpx2,
which the project does not install.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import quote

from starlette.types import ASGIApp, Message

from consumer.api.app import create_app
from consumer.reports.runner import ReportRunner
from consumer.store.engine import make_engine
from consumer.tokens import create_token


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def text(self) -> str:
        return self.body.decode("utf-8")


def call(app: ASGIApp, method: str, path: str, *, query: bytes = b"", headers: dict[str, str] | None = None,
         body: bytes = b"", host: str = "localhost") -> Answer:
    """`path` is the decoded path (as uvicorn puts it in the scope); the raw path is its %-quoting."""
    sent = {"host": host, "content-length": str(len(body)), **(headers or {})}
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": quote(path).encode("ascii"), "root_path": "", "query_string": query,
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in sent.items()],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {},
    }
    messages: list[Message] = []
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Message:
        return pending.pop() if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        messages.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in messages if m["type"] == "http.response.start")
    return Answer(start["status"], {k.decode("latin-1"): v.decode("latin-1") for k, v in start["headers"]},
                  b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body"))


class App:
    """The app on a database, with a token for account 79: each call must not answer 5xx."""

    def __init__(self, database_url: str) -> None:
        self.engine = make_engine(database_url)
        self.app = create_app(self.engine, ReportRunner(self.engine))  # the runner is not started: jobs stay queued
        _, self.token = create_token(self.engine, [79], "hostile values")

    def __call__(self, method: str, path: str, *, query: bytes = b"", body: bytes = b"",
                 content_type: str | None = None) -> Answer:
        headers = {"Authorization": f"Bearer {self.token}"}
        if content_type:
            headers["Content-Type"] = content_type
        answer = call(self.app, method, path, query=query, headers=headers, body=body)
        assert answer.status < 500, (method, path, query[:200], body[:200], answer.status, answer.body[:500])
        return answer
