"""/docs (Swagger UI) and /redoc (ReDoc) of a real `serve`, in chromium: they render every operation with nothing
loaded from off this machine (the `watched_page` fixture refuses, and fails the test on, any such request)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from consumer.api.app import DOCS_STATIC
from consumer.reports.catalogue import REPORTS
from tests.api.seed import seeded
from tests.api.server import ApiServer

TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def server(new_pg_database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    started = ApiServer(seeded(new_pg_database()), tmp_path_factory.mktemp("docs") / "serve.log").start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def operations(server: ApiServer) -> list[dict]:
    document = requests.get(f"{server.url}/openapi.json", timeout=10).json()
    return [operation for item in document["paths"].values() for operation in item.values()]


def loaded_locally(watched, server: ApiServer, *files: str) -> None:
    for name in files:
        assert f"{server.url}{DOCS_STATIC}/{name}" in watched.requests, (name, watched.requests)
    assert all(url.startswith(server.url) for url in watched.requests), watched.requests


def test_swagger_ui_renders_every_operation_offline(watched_page, server: ApiServer, operations: list[dict]) -> None:
    page = watched_page.page
    failed: list[str] = []
    page.on("response", lambda response: failed.append(f"{response.status} {response.url}") if response.status >= 400 else None)
    page.goto(f"{server.url}/docs", wait_until="networkidle", timeout=TIMEOUT_MS)
    page.wait_for_selector(".opblock", timeout=TIMEOUT_MS)
    assert page.locator(".opblock").count() == len(operations)
    for operation in operations:
        assert page.locator(f"#operations-{operation['tags'][0].replace(' ', '_')}-{operation['operationId']}").count() == 1, \
            operation["operationId"]
    assert page.get_by_text("canvas-progress Reports API").first.is_visible()

    # Open "Start a Report" (accounts): the report type is a list of the catalogue's names; no 422 among the answers.
    block = page.locator("#operations-Account_Reports-start_account_report")
    block.locator(".opblock-summary").click()
    block.locator(".responses-table").first.wait_for(timeout=TIMEOUT_MS)
    responses = block.locator(".responses-table").first.locator("tr.response").evaluate_all(
        "rows => rows.map(row => row.getAttribute('data-code'))")
    assert responses == ["200", "400", "401", "404", "413", "429", "503"]
    block.get_by_role("button", name="Try it out").click()
    options = block.locator("select").first.locator("option").all_inner_texts()
    assert [o for o in options if o in REPORTS] == list(REPORTS), options
    page.wait_for_load_state("networkidle", timeout=TIMEOUT_MS)
    watched_page.screenshot("docs")

    loaded_locally(watched_page, server, "swagger-ui-bundle.js", "swagger-ui.css")
    assert not failed, failed
    assert not page.locator(".errors-wrapper").count(), page.locator(".errors-wrapper").all_inner_texts()
    assert not page.locator("img[src*='validator']").count()  # no badge from validator.swagger.io


def test_redoc_renders_every_operation_offline(watched_page, server: ApiServer, operations: list[dict]) -> None:
    page = watched_page.page
    failed: list[str] = []
    page.on("response", lambda response: failed.append(f"{response.status} {response.url}") if response.status >= 400 else None)
    page.goto(f"{server.url}/redoc", wait_until="networkidle", timeout=TIMEOUT_MS)
    page.wait_for_selector("h1", timeout=TIMEOUT_MS)
    assert page.locator("h1").first.inner_text().startswith("canvas-progress Reports API")
    # One section per operation, each holding its summary and its description.
    for operation in operations:
        section = page.locator(f"[id='operation/{operation['operationId']}']")
        assert section.count() == 1, operation["operationId"]
        assert operation["summary"] in section.locator("h2").first.inner_text()
    start = page.locator("[id='operation/start_account_report']")
    assert "REPORT_JOBS_PER_ACCOUNT" in start.inner_text()
    for name in REPORTS:
        assert name in start.inner_text(), name
    page.wait_for_load_state("networkidle", timeout=TIMEOUT_MS)
    watched_page.screenshot("redoc")

    loaded_locally(watched_page, server, "redoc.standalone.js")
    assert not failed, failed
    assert not any("fonts.googleapis" in url or "fonts.gstatic" in url for url in watched_page.requests)
