"""One test per auth rule: no token, a bad token, a revoked token, and another account's token (404, never 403)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests
from canvasapi import Canvas
from sqlalchemy import create_engine, text

from tests.api.server import create_token, until_done


def ready_report(api, report: str = "course_completion_csv") -> int:
    response = requests.post(f"{api.url}/api/v1/accounts/79/reports/{report}", headers=api.headers(), timeout=10)
    assert response.status_code == 200, response.text
    report_id = response.json()["id"]
    until_done(Canvas(api.url, api.token), report_id)
    return report_id


def course_report(api) -> int:
    response = requests.post(f"{api.url}/api/v1/courses/565/reports/course_progress_csv", headers=api.headers(), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["id"]


def every_route(api) -> list[tuple[str, str]]:
    """Every route that reaches account 79's data, with ids that exist."""
    account_report, course_report_id = ready_report(api), course_report(api)
    reports = "/api/v1/accounts/79/reports"
    return [
        ("GET", reports),
        ("GET", "/api/v1/accounts/79"),
        ("GET", "/api/v1/courses/565"),
        ("POST", f"{reports}/course_completion_csv"),
        ("GET", f"{reports}/course_completion_csv"),
        ("GET", f"{reports}/course_completion_csv/{account_report}"),
        ("PUT", f"{reports}/course_completion_csv/{account_report}/abort"),
        ("POST", "/api/v1/courses/565/reports/course_progress_csv"),
        ("GET", f"/api/v1/courses/565/reports/course_progress_csv/{course_report_id}"),
        ("GET", "/api/v1/courses/565/reports/course_progress_csv"),
        ("GET", f"/api/v1/progress/{account_report}"),
        ("POST", f"/api/v1/progress/{course_report_id}/cancel"),
        ("GET", f"/api/lti/courses/565/progress/{course_report_id}"),
        ("GET", f"/files/{account_report}/download"),
        ("DELETE", f"{reports}/course_completion_csv/{account_report}"),  # last: it ends the report
    ]


def test_no_token_gets_401_in_canvas_shape(api) -> None:
    for method, path in every_route(api):
        response = requests.request(method, api.url + path, timeout=10)
        assert response.status_code == 401, (method, path, response.text)
        assert response.json() == {"errors": [{"message": "user authorization required"}], "status": "unauthenticated"}
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_an_unknown_token_gets_401(api) -> None:
    for method, path in every_route(api):
        for headers in ({"Authorization": "Bearer cpt_not-a-real-token"}, {"Authorization": f"Bearer {api.token}x"}):
            response = requests.request(method, api.url + path, headers=headers, timeout=10)
            assert response.status_code == 401, (method, path, response.text)
            assert response.json() == {"errors": [{"message": "Invalid access token."}]}


def test_a_revoked_token_gets_401(api) -> None:
    token = create_token(api.database_url, 79)
    assert requests.get(f"{api.url}/api/v1/accounts/79/reports", headers=api.headers(token), timeout=10).status_code == 200
    token_id = max(t["id"] for t in _token_list(api))
    revoked = subprocess.run([sys.executable, "-m", "consumer", "token", "revoke", str(token_id)],
                             env={**os.environ, "DATABASE_URL": api.database_url}, capture_output=True, timeout=60)
    assert revoked.returncode == 0, revoked.stderr
    assert requests.get(f"{api.url}/api/v1/accounts/79/reports", headers=api.headers(token), timeout=10).status_code == 401


def test_another_accounts_token_gets_404_everywhere_never_403(api) -> None:
    routes = every_route(api)
    for method, path in routes:
        response = requests.request(method, api.url + path, headers=api.headers(api.other_token), timeout=10)
        assert response.status_code == 404, (method, path, response.status_code, response.text)
        assert response.json() == {"errors": [{"message": "The specified resource does not exist."}]}
    # ...and the same routes still answer the owner (the 404s were not for missing ids).
    owner = [requests.request(m, api.url + p, headers=api.headers(), timeout=10).status_code for m, p in routes]
    assert owner.count(404) == 0, list(zip(routes, owner, strict=True))


def test_unknown_ids_and_foreign_ids_answer_alike(api) -> None:
    """A foreign report id and one that never existed give the same answer, so ids do not leak."""
    foreign = requests.post(f"{api.url}/api/v1/accounts/80/reports/course_completion_csv",
                            headers=api.headers(api.other_token), timeout=10).json()["id"]
    for report_id in (foreign, 10**9):
        response = requests.get(f"{api.url}/api/v1/progress/{report_id}", headers=api.headers(), timeout=10)
        assert (response.status_code, response.json()) == (404, {"errors": [{"message": "The specified resource does not exist."}]})


def test_the_access_token_query_parameter_works_as_canvas_allows(api) -> None:
    response = requests.get(f"{api.url}/api/v1/accounts/79/reports", params={"access_token": api.token}, timeout=10)
    assert response.status_code == 200
    assert requests.get(f"{api.url}/api/v1/accounts/80/reports", params={"access_token": api.token}, timeout=10).status_code == 404


def test_a_token_for_two_accounts_sees_both_and_self_needs_one_account(api) -> None:
    both = create_token(api.database_url, 79, 80)
    for account in (79, 80):
        assert requests.get(f"{api.url}/api/v1/accounts/{account}/reports", headers=api.headers(both), timeout=10).status_code == 200
    assert requests.get(f"{api.url}/api/v1/accounts/self/reports", headers=api.headers(both), timeout=10).status_code == 404
    assert requests.get(f"{api.url}/api/v1/accounts/self/reports", headers=api.headers(), timeout=10).status_code == 200


def test_only_a_hash_of_the_token_is_stored(api) -> None:
    engine = create_engine(api.database_url)
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT token_hash FROM api_tokens")).scalars().all()
        dump = " ".join(str(row) for row in connection.execute(text("SELECT * FROM api_tokens")))
    engine.dispose()
    assert api.token not in dump and api.token[4:] not in dump
    assert len(stored) >= 2 and all(len(h) == 64 for h in stored)


def _token_list(api) -> list[dict]:
    import json

    listed = subprocess.run([sys.executable, "-m", "consumer", "token", "list", "--json"],
                            env={**os.environ, "DATABASE_URL": api.database_url}, capture_output=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "bearer "])
def test_malformed_authorization_headers_get_401(api, header: str) -> None:
    response = requests.get(f"{api.url}/api/v1/accounts/79/reports", headers={"Authorization": header}, timeout=10)
    assert response.status_code == 401


def test_a_token_in_the_query_string_is_not_written_to_the_access_log(api) -> None:
    marker = f"/api/v1/accounts/79/reports?probe={id(api)}"
    assert requests.get(f"{api.url}{marker}&access_token={api.token}", timeout=10).status_code == 200
    from tests.helpers import wait_until

    wait_until(lambda: str(id(api)) in api.server.log.read_text(), 5, "the access log line")
    logged = api.server.log.read_text()
    assert api.token not in logged and "access_token=[redacted]" in logged
