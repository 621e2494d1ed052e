"""The OpenAPI document: every operation of the app (whatever router added it) named, described, with its real errors.

The document checks run in-process on create_app(); the last tests make each documented error status happen
on a seeded database (and a dead one, for 503), so no status is documented that the route cannot answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.routing import APIRoute

from consumer.api.app import DOCS_STATIC, create_app
from consumer.api.body_limit import MAX_BODY_BYTES
from consumer.api.errors import Errors
from consumer.reports.catalogue import REPORTS
from consumer.reports.jobs import FINISHED, PENDING, PROGRESS_STATE
from consumer.reports.runner import ReportRunner
from consumer.store.engine import make_engine
from consumer.tokens import create_token
from tests.api import asgi
from tests.api.asgi import Answer
from tests.ports import free_port

ERRORS_REF = "#/components/schemas/Errors"
HEALTH_REF = "#/components/schemas/Health"
# Path parameters of a resource no token may see (404): account 1 and course 1 are in no token's accounts.
UNSEEN = {"account_id": "1", "course_id": "1", "report": "no_such_report", "report_type": "no_such_report",
          "id": "987654321"}
# Path parameters the seeded database's account 79 token may see (tests/api/seed.py).
SEEN = {"account_id": "79", "course_id": "565", "report": "course_progress_csv", "report_type": "course_progress_csv",
        "id": "1"}


def call(*args: Any, **kwargs: Any) -> Answer:
    """asgi.call in a thread of its own: a session's Playwright (tests/browser/) keeps an event loop running in the
    main thread, where asyncio.run() refuses to start."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asgi.call, *args, **kwargs).result()


def api_routes(app) -> list[Any]:
    """Every APIRoute of the app, those of included routers too (FastAPI 0.16x keeps those behind an _IncludedRouter)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: include_router copies the routes into app.routes
        return [route for route in app.routes if isinstance(route, APIRoute)]
    return [context for context in iter_route_contexts(app.routes) if isinstance(context.original_route, APIRoute)]


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, items in document["paths"].items():
        for method, operation in items.items():
            if method in ("get", "put", "post", "delete", "patch", "head", "options", "trace"):
                yield path, method, operation


def label(path: str, method: str) -> str:
    return f"{method.upper()} {path}"


@pytest.fixture(scope="module")
def offline_app():
    """The app on an empty in-memory database: enough for the document, /docs and /redoc (none reads a table)."""
    engine = make_engine("sqlite://")
    app = create_app(engine, ReportRunner(engine))
    yield app
    engine.dispose()


@pytest.fixture(scope="module")
def document(offline_app) -> dict[str, Any]:
    answer = call(offline_app, "GET", "/openapi.json")
    assert answer.status == 200, answer.body[:300]
    return json.loads(answer.body)


def test_the_served_document_is_app_openapi_and_covers_every_route(offline_app, document) -> None:
    assert document == json.loads(json.dumps(offline_app.openapi()))
    routes = {(route.path_format, method.lower()) for route in api_routes(offline_app) if route.include_in_schema
              for method in route.methods}
    assert routes == {(path, method) for path, method, _ in operations(document)}
    assert len(routes) >= 18


def test_every_operation_id_is_its_function_name_and_unique(offline_app, document) -> None:
    names = {(route.path_format, method.lower()): route.name for route in api_routes(offline_app) for method in route.methods}
    ids = []
    for path, method, operation in operations(document):
        assert operation.get("operationId") == names[path, method], label(path, method)
        assert re.fullmatch(r"[a-z][a-z0-9_]*", operation["operationId"]), operation["operationId"]
        ids.append(operation["operationId"])
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert {"list_accounts", "show_account", "start_account_report", "index_reports", "show_report",
            "start_course_report", "show_progress", "cancel_progress", "download"} <= set(ids)


def test_every_operation_has_a_summary_and_a_description(document) -> None:
    for path, method, operation in operations(document):
        assert operation.get("summary", "").strip(), label(path, method)
        assert len(operation.get("description", "").strip()) >= 40, (label(path, method), operation.get("description"))


def test_no_422_anywhere(document) -> None:
    for path, method, operation in operations(document):
        assert "422" not in operation["responses"], label(path, method)
    schemas = document["components"]["schemas"]
    assert not {"HTTPValidationError", "ValidationError"} & set(schemas)
    assert "ValidationError" not in json.dumps(document)


def test_every_error_response_is_in_canvass_shape(document) -> None:
    errors = document["components"]["schemas"]["Errors"]
    assert errors["required"] == ["errors"]
    assert errors["properties"]["errors"]["items"] == {"$ref": "#/components/schemas/ErrorMessage"}
    assert document["components"]["schemas"]["ErrorMessage"]["required"] == ["message"]
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            where = f"{label(path, method)} {status}"
            schema = response["content"]["application/json"]["schema"]
            if operation["operationId"] == "readyz":  # a probe answers its status, not an error object
                assert (status, schema) == ("503", {"$ref": HEALTH_REF}), where
                continue
            assert schema == {"$ref": ERRORS_REF}, where
            assert response["description"].strip(), where
            example = response["content"]["application/json"]["example"]
            assert Errors.model_validate(example).errors[0].message, where


def test_the_documented_error_statuses_follow_the_rules(document) -> None:
    """400 and 503 wherever 401 is (a token, a Host and the database are read); 413 exactly where a body is read;
    429 exactly where report jobs start (with Retry-After); 401 exactly where a token is asked for."""
    starting = {"start_account_report", "start_course_report"}
    for path, method, operation in operations(document):
        where = label(path, method)
        statuses = {int(s) for s in operation["responses"] if int(s) >= 400}
        takes_token = bool(operation.get("security"))
        assert (401 in statuses) == takes_token, where
        if takes_token:
            assert {400, 401, 503} <= statuses, where
        assert (413 in statuses) == ("requestBody" in operation), where
        assert (429 in statuses) == (operation["operationId"] in starting), where
        for status in (429, 503):
            if status in statuses and operation["operationId"] != "readyz":
                assert "Retry-After" in operation["responses"][str(status)]["headers"], (where, status)
        assert statuses <= {400, 401, 404, 413, 429, 503}, where
    starts = {o["operationId"] for _, _, o in operations(document) if "429" in o["responses"]}
    assert starts == starting


def test_report_types_and_statuses_are_enums(document) -> None:
    names = list(REPORTS)
    report_parameters = 0
    for path, method, operation in operations(document):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["name"] in ("report", "report_type"):
                assert parameter["schema"]["enum"] == names, label(path, method)
                report_parameters += 1
    assert report_parameters >= 8
    schemas = document["components"]["schemas"]
    assert schemas["Report"]["properties"]["report"]["enum"] == names
    assert schemas["AvailableReport"]["properties"]["report"]["enum"] == names
    assert set(schemas["Report"]["properties"]["status"]["enum"]) == {*PENDING, *FINISHED, "deleted"}
    assert set(schemas["Progress"]["properties"]["workflow_state"]["enum"]) == set(PROGRESS_STATE.values())
    assert set(schemas["Progress"]["properties"]["context_type"]["enum"]) == {"Account", "Course"}
    assert set(schemas["Progress"]["properties"]["tag"]["enum"]) == {"account_report", "course_report"}


# --- /docs and /redoc in-process (the browser test, tests/browser/test_docs_offline.py, loads them in chromium) ---


def test_docs_and_redoc_name_only_files_this_server_serves(offline_app) -> None:
    for page in ("/docs", "/redoc"):
        answer = call(offline_app, "GET", page)
        assert answer.status == 200 and answer.headers["content-type"].startswith("text/html"), page
        html = answer.text()
        assert "googleapis" not in html and "cdn.jsdelivr" not in html and "fastapi.tiangolo" not in html, page
        linked = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
        assert linked and all(url.startswith(f"{DOCS_STATIC}/") for url in linked), (page, linked)
        for url in linked:
            served = call(offline_app, "GET", url)
            # (call() ends the request at once, so a file's body is not sent: its length is.)
            assert served.status == 200 and int(served.headers["content-length"]) > 1000, (page, url, served.status)
    assert '"validatorUrl": null' in call(offline_app, "GET", "/docs").text()


def test_docs_and_redoc_forbid_loading_anything_from_elsewhere(offline_app) -> None:
    for page in ("/docs", "/redoc"):
        answer = call(offline_app, "GET", page)
        policy = dict(part.strip().split(" ", 1) for part in answer.headers["content-security-policy"].split(";"))
        assert policy["default-src"] == "'none'" and policy["connect-src"] == "'self'", page
        assert policy["img-src"] == "'self' data:" and policy["frame-ancestors"] == "'none'", page
        nonce = re.fullmatch(r"'self' 'nonce-([A-Za-z0-9_-]{16,})'", policy["script-src"]).group(1)
        inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", answer.text())
        assert all(attributes == f' nonce="{nonce}"' for attributes in inline), (page, inline)
        assert len(inline) == (1 if page == "/docs" else 0), (page, inline)  # Swagger UI's start; ReDoc has none


def test_the_docs_files_answer_in_canvass_shape_and_only_to_get_and_head(offline_app) -> None:
    missing = call(offline_app, "GET", f"{DOCS_STATIC}/nothing.js")
    assert missing.status == 404 and Errors.model_validate_json(missing.body).errors[0].message
    posted = call(offline_app, "POST", f"{DOCS_STATIC}/swagger-ui.css")
    assert posted.status == 405 and posted.headers["allow"] == "GET, HEAD"
    assert call(offline_app, "GET", f"{DOCS_STATIC}/swagger-ui.css/").status == 200  # as every path: a trailing slash
    refused = call(offline_app, "GET", f"{DOCS_STATIC}/swagger-ui.css", host="evil.example")
    assert refused.status == 400 and Errors.model_validate_json(refused.body).errors[0].message.startswith("Host: ")


# --- every documented error status happens --------------------------------------------------------------------


def fill(path: str, values: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            pytest.fail(f"{path}: no test value for the path parameter {name!r}: add one to UNSEEN and SEEN")
        return values[name]

    return re.sub(r"\{([^}]+)\}", value, path)


def is_errors(answer: Answer, status: int, where: str) -> Errors:
    assert answer.status == status, (where, answer.status, answer.body[:300])
    return Errors.model_validate_json(answer.body)


@pytest.fixture(scope="module")
def seeded_app(api_database: str):
    """The app on the seeded database, admitting one queued report job per account (the runner is not started)."""
    engine = make_engine(api_database)
    app = create_app(engine, ReportRunner(engine, jobs_per_account=1))
    _, token = create_token(engine, [79], "openapi")
    yield app, {"Authorization": f"Bearer {token}"}
    engine.dispose()


def test_every_documented_400_401_and_404_is_answered(seeded_app, document) -> None:
    app, auth = seeded_app
    for path, method, operation in operations(document):
        statuses = {int(s) for s in operation["responses"]}
        where = label(path, method)
        if 400 in statuses:
            answer = call(app, method.upper(), fill(path, SEEN), headers=auth, host="evil.example")
            assert is_errors(answer, 400, where).errors[0].message.startswith("Host: ")
            integers = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"
                        and p["schema"].get("type") == "integer"]
            for name in integers:
                answer = call(app, method.upper(), fill(path, SEEN), query=f"{name}=ten".encode(), headers=auth)
                assert is_errors(answer, 400, where).errors[0].message.startswith(f"{name}: "), where
        if 401 in statuses:
            answer = call(app, method.upper(), fill(path, SEEN))
            assert is_errors(answer, 401, where).status == "unauthenticated"
            assert answer.headers["www-authenticate"].startswith("Bearer")
            answer = call(app, method.upper(), fill(path, SEEN), headers={"Authorization": "Bearer not-a-token"})
            assert is_errors(answer, 401, where).errors[0].message == "Invalid access token."
        else:
            assert call(app, method.upper(), fill(path, SEEN)).status != 401, where
        if 404 in statuses:
            is_errors(call(app, method.upper(), fill(path, UNSEEN), headers=auth), 404, where)


def test_an_unknown_report_type_is_still_a_404_naming_the_available_ones(seeded_app) -> None:
    app, auth = seeded_app
    for method, path in (("POST", "/api/v1/accounts/79/reports/grades_csv"), ("GET", "/api/v1/accounts/79/reports/grades_csv"),
                         ("GET", "/api/v1/courses/565/reports/grades_csv"), ("POST", "/api/v1/courses/565/reports/grades_csv"),
                         ("GET", "/api/v1/accounts/79/reports/grades_csv/1")):
        (error,) = is_errors(call(app, method, path, headers=auth), 404, path).errors
        assert error.message == f"unknown report 'grades_csv'; available: {', '.join(REPORTS)}", (method, path)


def test_every_documented_413_and_429_is_answered(seeded_app, document) -> None:
    app, auth = seeded_app
    limited = []
    for path, method, operation in operations(document):
        statuses = {int(s) for s in operation["responses"]}
        where = label(path, method)
        if 413 in statuses:
            answer = call(app, method.upper(), fill(path, SEEN), headers={**auth, "Content-Type": "application/json"},
                          body=b" " * (MAX_BODY_BYTES + 1))
            assert "larger than" in is_errors(answer, 413, where).errors[0].message
        if 429 in statuses:
            # One job may be queued per account: the first start (of an account's or a course's report) is admitted.
            answers = [call(app, method.upper(), fill(path, SEEN), headers=auth)]
            if answers[0].status == 200:
                answers.append(call(app, method.upper(), fill(path, SEEN), headers=auth))
            assert "REPORT_JOBS_PER_ACCOUNT" in is_errors(answers[-1], 429, where).errors[0].message
            assert int(answers[-1].headers["retry-after"]) > 0
            limited.append((operation["operationId"], len(answers)))
    assert sorted(limited) == [("start_account_report", 2), ("start_course_report", 1)]


def test_every_documented_503_is_answered_when_the_database_is_down(document) -> None:
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/postgres")  # nothing listens there
    app = create_app(engine, ReportRunner(engine))
    try:
        for path, method, operation in operations(document):
            answer = call(app, method.upper(), fill(path, SEEN), headers={"Authorization": "Bearer any-token"})
            where = label(path, method)
            if "503" not in operation["responses"]:
                assert answer.status == 200, (where, answer.status)
            elif operation["operationId"] == "readyz":
                assert (answer.status, json.loads(answer.body)) == (503, {"status": "unavailable"}), where
            else:
                assert "database is unavailable" in is_errors(answer, 503, where).errors[0].message
                assert answer.headers["retry-after"] == "5"
    finally:
        engine.dispose()
