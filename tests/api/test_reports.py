"""Report parameters, Course Reports, Progress (cancel, LTI form), pagination and error shapes, over HTTP."""

from __future__ import annotations

import pytest
import requests
from canvasapi import Canvas

from tests.api.expected import csv_progress_keys, parse_csv, progress_keys
from tests.api.server import create_token, until_done


def post(api, path: str, headers: dict | None = None, **kwargs) -> requests.Response:
    return requests.post(api.url + path, headers={**api.headers(), **(headers or {})}, timeout=10, **kwargs)


def get(api, path: str, **kwargs) -> requests.Response:
    return requests.get(api.url + path, headers=api.headers(), timeout=10, **kwargs)


def finished_rows(api, report_id: int) -> list[dict[str, str]]:
    progress = until_done(Canvas(api.url, api.token), report_id)
    assert progress.workflow_state == "completed", progress.message
    return parse_csv(requests.get(progress.results["file_url"], headers=api.headers(), timeout=10).content)


def test_an_unknown_report_is_404_in_canvas_shape(api) -> None:
    for response in (post(api, "/api/v1/accounts/79/reports/grade_export_csv"), get(api, "/api/v1/accounts/79/reports/nope"),
                     post(api, "/api/v1/courses/565/reports/nope")):
        assert response.status_code == 404
        (error,) = response.json()["errors"]
        assert "unknown report" in error["message"] and "course_progress_csv" in error["message"]


def test_a_trailing_slash_is_answered_not_redirected(api) -> None:
    # Canvas's documented curl example for the report list ends in a slash; curl does not follow redirects.
    listed = requests.get(f"{api.url}/api/v1/accounts/79/reports/", headers=api.headers(), timeout=10,
                          allow_redirects=False)
    assert listed.status_code == 200, listed.status_code
    assert {entry["report"] for entry in listed.json()} >= {"course_progress_csv", "course_completion_csv"}
    started = post(api, "/api/v1/accounts/79/reports/course_sections_csv/", allow_redirects=False)
    assert started.status_code == 200 and started.json()["report"] == "course_sections_csv"


@pytest.mark.parametrize(("path", "allowed"), [
    ("/api/v1/accounts/79/reports/course_progress_csv", "GET, POST"),
    ("/api/v1/accounts/79/reports/course_progress_csv/1", "DELETE, GET"),
    ("/api/v1/courses/565/reports/course_progress_csv", "GET, POST"),
    ("/api/v1/progress/1/cancel", "POST"),
])
def test_a_wrong_method_is_405_listing_every_method_of_the_path(api, path: str, allowed: str) -> None:
    response = requests.request("PATCH", api.url + path, headers=api.headers(), timeout=10)
    assert response.status_code == 405
    assert response.headers["Allow"] == allowed
    assert response.json()["errors"][0]["message"]


@pytest.mark.parametrize(("fields", "named"), [
    ({"parameters[start_at]": "last tuesday"}, "parameters[start_at]"),
    ({"parameters[include_deleted]": "maybe"}, "parameters[include_deleted]"),
    ({"parameters[course_id]": "abc"}, "parameters[course_id]"),
    ({"parameters[term]": "1"}, "parameters[term]"),
])
def test_a_bad_parameter_is_400_naming_it(api, fields: dict, named: str) -> None:
    response = post(api, "/api/v1/accounts/79/reports/course_progress_csv", data=fields)
    assert response.status_code == 400, response.text
    (error,) = response.json()["errors"]
    assert error["message"].startswith(named), error["message"]
    value = next(v for k, v in fields.items() if k == named)
    assert repr(value) in error["message"] or value in error["message"]


@pytest.mark.parametrize("course_id", ["900", "123456"])  # another account's course; no such course
def test_a_course_id_parameter_the_token_cannot_see_is_404_naming_it(api, course_id: str) -> None:
    response = post(api, "/api/v1/accounts/79/reports/course_progress_csv", data={"parameters[course_id]": course_id})
    assert response.status_code == 404, response.text
    assert response.json()["errors"][0]["message"] == f"parameters[course_id]: no course {course_id} in account 79"


def test_a_malformed_body_is_400(api) -> None:
    for body in (b"{not json", b"[1, 2]", b'{"parameters": [1]}'):
        response = post(api, "/api/v1/accounts/79/reports/course_progress_csv", data=body,
                        headers={"Content-Type": "application/json"})
        assert response.status_code == 400 and response.json()["errors"][0]["message"]


def test_json_multipart_and_urlencoded_bodies_give_the_same_report(api) -> None:
    path = "/api/v1/accounts/79/reports/course_progress_csv"
    wanted = {"course_id": 777, "include_deleted": True}
    made = [
        post(api, path, json={"parameters": wanted}),
        post(api, path, data={"parameters[course_id]": "777", "parameters[include_deleted]": "true"}),
        post(api, path, files={"parameters[course_id]": (None, "777"), "parameters[include_deleted]": (None, "1")}),
    ]
    assert [r.status_code for r in made] == [200, 200, 200], [r.text for r in made]
    assert all(r.json()["parameters"] == wanted for r in made)
    files = [finished_rows(api, r.json()["id"]) for r in made]
    assert files[0] == files[1] == files[2] and {row["course id"] for row in files[0]} == {"777"}


def test_include_deleted_adds_deleted_courses_and_sections(api) -> None:
    path = "/api/v1/accounts/79/reports/course_sections_csv"
    live = finished_rows(api, post(api, path).json()["id"])
    everything = finished_rows(api, post(api, path, data={"parameters[include_deleted]": "true"}).json()["id"])
    assert [r["section id"] for r in live] == ["1021", "2001"]
    assert [r["section id"] for r in everything] == ["1021", "1022", "2001"]
    progress = finished_rows(api, post(api, "/api/v1/accounts/79/reports/course_progress_csv",
                                       json={"parameters": {"include_deleted": True}}).json()["id"])
    assert "778" in {row["course id"] for row in progress}


def test_start_at_and_end_at_filter_on_last_activity(api) -> None:
    rows = finished_rows(api, post(api, "/api/v1/accounts/79/reports/course_completion_csv",
                                   data={"parameters[start_at]": "2019-10-01T00:00:00Z"}).json()["id"])
    assert [(r["course id"], r["last activity at"]) for r in rows] == [("565", "2019-10-20T10:00:00Z")]


def test_an_empty_window_is_an_empty_report_that_says_why(api) -> None:
    # end_at not after start_at is well formed (schema-valid), so it runs; the Progress message explains the 0 rows.
    report = post(api, "/api/v1/accounts/79/reports/course_completion_csv",
                  json={"parameters": {"start_at": "2020-01-01T00:00:00Z", "end_at": "2019-01-01T00:00:00Z"}}).json()
    assert finished_rows(api, report["id"]) == []
    message = get(api, f"/api/v1/progress/{report['id']}").json()["message"]
    assert message == "0 rows written (end_at is not after start_at, so no row can match)"


def test_an_empty_form_field_leaves_the_parameter_out_but_an_empty_json_string_is_refused(api) -> None:
    path = "/api/v1/accounts/79/reports/course_sections_csv"
    form = post(api, path, data={"parameters[start_at]": "", "parameters[course_id]": "", "parameters[include_deleted]": ""})
    assert form.status_code == 200 and form.json()["parameters"] == {}
    assert post(api, path, json={"parameters": {"start_at": None, "course_id": None}}).json()["parameters"] == {}
    refused = post(api, path, json={"parameters": {"end_at": ""}})
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["message"].startswith("parameters[end_at]: is not an ISO 8601 time")


def test_course_reports_start_show_and_last_for_the_caller(api) -> None:
    started = post(api, "/api/v1/courses/565/reports/course_progress_csv")
    assert started.status_code == 200
    report = started.json()
    rows = finished_rows(api, report["id"])
    assert csv_progress_keys(rows) == progress_keys(api.database_url, 79, 565)

    shown = get(api, f"/api/v1/courses/565/reports/course_progress_csv/{report['id']}").json()
    assert shown["status"] == "complete" and shown["current_line"] == len(rows) == 4
    assert get(api, "/api/v1/courses/565/reports/course_progress_csv").json()["id"] == report["id"]
    # another token of the same account has not started one

    colleague = create_token(api.database_url, 79)
    assert requests.get(f"{api.url}/api/v1/courses/565/reports/course_progress_csv", headers=api.headers(colleague),
                        timeout=10).status_code == 404
    # the course report is not listed among the account's reports, and not reachable on another course
    assert report["id"] not in [r["id"] for r in get(api, "/api/v1/accounts/79/reports/course_progress_csv").json()]
    assert get(api, f"/api/v1/courses/777/reports/course_progress_csv/{report['id']}").status_code == 404
    assert get(api, f"/api/v1/accounts/79/reports/course_progress_csv/{report['id']}").status_code == 404


def test_global_ids_name_the_same_account_and_course(api) -> None:
    # Live Events carry global ids (shard * 10**13 + local id); Canvas answers them like the local id.
    shard = 2 * 10**13
    assert get(api, f"/api/v1/accounts/{shard + 79}").json()["id"] == 79
    assert get(api, f"/api/v1/courses/{shard + 565}").json()["id"] == 565
    started = post(api, f"/api/v1/courses/{shard + 565}/reports/course_progress_csv",
                   data={"parameters[course_id]": str(shard + 565)})
    assert started.status_code == 200, started.text
    rows = finished_rows(api, started.json()["id"])
    assert {row["course id"] for row in rows} == {"565"}
    by_account = post(api, f"/api/v1/accounts/{shard + 79}/reports/course_completion_csv",
                      data={"parameters[course_id]": str(shard + 777)})
    assert by_account.json()["parameters"] == {"course_id": 777}
    assert [row["course id"] for row in finished_rows(api, by_account.json()["id"])] == ["777"]
    # the local part decides: another account's course stays out of sight
    assert get(api, f"/api/v1/courses/{shard + 900}").status_code == 404


def test_a_course_report_refuses_a_different_course_id_parameter(api) -> None:
    response = post(api, "/api/v1/courses/565/reports/course_progress_csv", data={"parameters[course_id]": "777"})
    assert response.status_code == 400 and response.json()["errors"][0]["message"].startswith("parameters[course_id]")


def test_progress_and_its_lti_form(api) -> None:
    report_id = post(api, "/api/v1/courses/565/reports/course_sections_csv").json()["id"]
    until_done(Canvas(api.url, api.token), report_id)
    progress = get(api, f"/api/v1/progress/{report_id}").json()
    assert set(progress) == {"id", "context_id", "context_type", "user_id", "tag", "completion", "workflow_state",
                             "created_at", "updated_at", "message", "results", "url"}
    assert (progress["context_type"], progress["context_id"]) == ("Course", 565)
    assert progress["url"] == f"{api.url}/api/v1/progress/{report_id}"

    lti = get(api, f"/api/lti/courses/565/progress/{report_id}").json()
    assert lti["url"] == f"{api.url}/api/lti/courses/565/progress/{report_id}"
    assert {k: v for k, v in lti.items() if k != "url"} == {k: v for k, v in progress.items() if k != "url"}
    assert get(api, f"/api/lti/courses/777/progress/{report_id}").status_code == 404
    account_report = post(api, "/api/v1/accounts/79/reports/course_sections_csv").json()["id"]
    assert get(api, f"/api/lti/courses/565/progress/{account_report}").status_code == 404


def test_results_are_omitted_while_pending_and_cancel_keeps_the_message(api) -> None:
    # Created and cancelled at once: it never runs (or stops at its next flush).
    report_id = post(api, "/api/v1/accounts/79/reports/course_progress_csv").json()["id"]
    cancelled = post(api, f"/api/v1/progress/{report_id}/cancel", data={"message": "not needed after all"})
    assert cancelled.status_code == 200
    body = cancelled.json()
    if body["workflow_state"] == "failed":
        assert body["message"] == "not needed after all" and "results" not in body
        report = get(api, f"/api/v1/accounts/79/reports/course_progress_csv/{report_id}").json()
        assert report["status"] == "aborted" and report["file_url"] is None
    else:  # it had already completed: cancel leaves a finished job alone
        assert body["workflow_state"] == "completed"
    queued = post(api, "/api/v1/accounts/79/reports/course_completion_csv").json()["id"]
    pending = get(api, f"/api/v1/progress/{queued}").json()
    if pending["workflow_state"] in ("queued", "running"):
        assert "results" not in pending
    json_cancel = post(api, f"/api/v1/progress/{queued}/cancel", json={"message": "json message"}).json()
    assert json_cancel["workflow_state"] in ("failed", "completed")


def test_index_pagination_follows_canvas_link_headers(api) -> None:
    for _ in range(3):
        post(api, "/api/v1/accounts/79/reports/course_completion_csv")
    first = get(api, "/api/v1/accounts/79/reports/course_completion_csv", params={"per_page": 2})
    assert len(first.json()) == 2
    links = requests.utils.parse_header_links(first.headers["Link"])
    rels = {link["rel"]: link["url"] for link in links}
    assert {"current", "next", "first", "last"} <= set(rels) and "per_page=2" in rels["next"]
    seen = [r["id"] for r in first.json()]
    url = rels.get("next")
    while url:
        page = requests.get(url, headers=api.headers(), timeout=10)
        seen += [r["id"] for r in page.json()]
        url = {link["rel"]: link["url"] for link in requests.utils.parse_header_links(page.headers["Link"])}.get("next")
    everything = get(api, "/api/v1/accounts/79/reports/course_completion_csv", params={"per_page": 100}).json()
    assert seen == [r["id"] for r in everything] == sorted(seen, reverse=True)
    assert len(get(api, "/api/v1/accounts/79/reports/course_completion_csv", params={"per_page": 1000}).json()) <= 100


def test_the_openapi_document_is_served(api) -> None:
    document = requests.get(f"{api.url}/openapi.json", timeout=10).json()
    assert {"/api/v1/accounts/{account_id}/reports/{report}", "/api/v1/progress/{id}/cancel",
            "/api/lti/courses/{course_id}/progress/{id}", "/files/{id}/download"} <= set(document["paths"])
    assert requests.get(f"{api.url}/docs", timeout=10).status_code == 200


def test_metrics_count_requests_by_route_and_reports_by_outcome(api) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def samples() -> dict[tuple, float]:
        text = requests.get(f"{api.url}/metrics", timeout=10).text
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    before = samples()
    report_id = post(api, "/api/v1/accounts/79/reports/course_completion_csv").json()["id"]
    finished_rows(api, report_id)
    get(api, "/api/v1/progress/999999999")
    after = samples()
    route = "/api/v1/progress/{id}"
    key = ("canvas_api_requests_total", (("method", "GET"), ("route", route), ("status", "404")))
    assert after[key] - before.get(key, 0) == 1
    done = ("canvas_reports_finished_total", (("outcome", "complete"), ("report", "course_completion_csv")))
    assert after[done] - before.get(done, 0) >= 1
    assert ("canvas_reports_pending", (("status", "created"),)) in after
    assert not any("999999999" in str(labels) for _, labels in after)  # ids never become labels


@pytest.mark.parametrize("message", ["nul \x00 byte", "x" * 10_001])
def test_a_cancel_message_that_cannot_be_stored_is_400(api, message: str) -> None:
    report_id = post(api, "/api/v1/accounts/79/reports/course_sections_csv").json()["id"]
    response = post(api, f"/api/v1/progress/{report_id}/cancel", json={"message": message})
    assert response.status_code == 400 and response.json()["errors"][0]["message"].startswith("message:")
