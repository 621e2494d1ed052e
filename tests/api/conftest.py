"""A Reports API server on a seeded database (tests/api/seed.py), and tokens for two accounts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.api.asgi import App
from tests.api.seed import seeded
from tests.api.server import ApiServer, create_token


@dataclass
class Api:
    server: ApiServer
    database_url: str
    token: str  # account 79
    other_token: str  # account 80

    @property
    def url(self) -> str:
        return self.server.url

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}


@pytest.fixture(scope="module")
def api_database(new_pg_database) -> str:
    return seeded(new_pg_database())


@pytest.fixture(scope="module")
def api(api_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    server = ApiServer(api_database, tmp_path_factory.mktemp("api") / "serve.log", "--report-workers", "2").start()
    try:
        yield Api(server, api_database, create_token(api_database, 79), create_token(api_database, 80))
    finally:
        server.stop()


@pytest.fixture(scope="module")
def app(api_database: str) -> Iterator[App]:
    """The app in-process (tests/api/asgi.py), for property tests that make thousands of requests."""
    made = App(api_database)
    yield made
    made.engine.dispose()
