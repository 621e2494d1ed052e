"""No value a client sends gets a 500: malformed ids, huge numbers, deep JSON, text that is not Unicode (issue 11, item 6).

Property tests drive the ASGI app in-process (on the seeded Postgres database)
with arbitrary text in every id-like place: path, query, form, JSON. A few of
the cases that used to give 500 are repeated against a real server.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.events.ids import MAX_ID, to_local
from tests.api.asgi import Answer, App, call

PROPERTY = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# The values that used to get a 500, and text of every kind: digits of other scripts, huge numbers, lone surrogates.
KNOWN = ["²", "⑨", "١٢", "٣", "𝟗", "1" * 5000, "0" * 5000 + "1", "9" * 20, "9223372036854775808", "-1", "0", "1e3",
         " 5", "5\x00", "\ud800", "5\ud800", "\\ud800", "1_000", "+5", "0x10", "", " ", "self", "🙂"]
hostile_text = (st.sampled_from(KNOWN) | st.text() | st.text(st.characters() | st.characters(categories=["Cs"]))
                | st.from_regex(r"[0-9]{15,5000}", fullmatch=True))
# One path segment: uvicorn's paths are decoded UTF-8 (no lone surrogates); "" or "a/b" would be another route.
path_text = hostile_text.filter(lambda text: text and "/" not in text and not re.search(r"[\ud800-\udfff]", text))


def is_id(text: str) -> bool:
    """What an id parameter accepts: 1 to 19 ASCII digits, at most MAX_ID, not a shard's id 0."""
    text = text.strip()
    return re.fullmatch(r"[0-9]{1,19}", text) is not None and 0 < int(text) <= MAX_ID and to_local(int(text)) != 0


def message(answer: Answer) -> str:
    (error,) = json.loads(answer.body)["errors"]
    return error["message"]


def encoded(text: str) -> str:
    """%-escaped UTF-8, lone surrogates included (as bytes a client could send)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


PATHS = [
    ("GET", "/api/v1/accounts/{}"), ("GET", "/api/v1/accounts/{}/reports"),
    ("POST", "/api/v1/accounts/{}/reports/course_sections_csv"), ("GET", "/api/v1/accounts/79/reports/{}"),
    ("GET", "/api/v1/accounts/79/reports/course_sections_csv/{}"), ("DELETE", "/api/v1/accounts/79/reports/course_sections_csv/{}"),
    ("PUT", "/api/v1/accounts/79/reports/course_sections_csv/{}/abort"), ("GET", "/api/v1/courses/{}"),
    ("POST", "/api/v1/courses/{}/reports/course_sections_csv"), ("GET", "/api/v1/courses/565/reports/course_sections_csv/{}"),
    ("GET", "/api/v1/progress/{}"), ("POST", "/api/v1/progress/{}/cancel"), ("GET", "/api/lti/courses/{}/progress/1"),
    ("GET", "/api/lti/courses/565/progress/{}"), ("GET", "/files/{}/download"),
]


@PROPERTY
@given(value=path_text, route=st.sampled_from(PATHS))
def test_any_path_parameter_is_answered_200_or_404(app: App, value: str, route: tuple[str, str]) -> None:
    # 200 too: pydantic reads " 5", "+5" and "5.0" as 5.
    method, template = route
    answer = app(method, template.format(value))
    assert answer.status in (200, 404, 429), (route, value, answer)


@PROPERTY
@given(value=hostile_text, name=st.sampled_from(["page", "per_page"]))
def test_page_and_per_page_are_200_or_400_naming_them(app: App, value: str, name: str) -> None:
    answer = app("GET", "/api/v1/accounts/79/reports/course_sections_csv", query=f"{name}={encoded(value)}".encode())
    assert answer.status in (200, 400), answer
    if answer.status == 400:
        assert message(answer).startswith(f"{name}:"), message(answer)


def assert_course_id_answer(answer: Answer, value: object, *, form: bool) -> None:
    """A course_id parameter: an id starts a report (or 404 when the course is not the account's), anything else is 400.

    Left out (JSON null, or an empty form field) is no filter; 429 is the account's job limit, checked after the parameters.
    """
    if value is None or form and value == "" or isinstance(value, str) and is_id(value) or \
            isinstance(value, int) and not isinstance(value, bool) and is_id(str(value)):
        assert answer.status in (200, 404, 429), (value, answer)
    else:
        assert answer.status == 400, (value, answer)
        assert message(answer).startswith(("parameters[course_id]:", "the request body", "the form field")), message(answer)


START = "/api/v1/accounts/79/reports/course_sections_csv"


@PROPERTY
@given(value=hostile_text)
def test_a_course_id_in_the_query_is_an_id_or_400(app: App, value: str) -> None:
    assert_course_id_answer(app("POST", START, query=f"parameters%5Bcourse_id%5D={encoded(value)}".encode()), value,
                            form=True)


@PROPERTY
@given(value=hostile_text)
def test_a_course_id_in_a_urlencoded_form_is_an_id_or_400(app: App, value: str) -> None:
    answer = app("POST", START, body=f"parameters[course_id]={encoded(value)}".encode(),
                 content_type="application/x-www-form-urlencoded")
    assert_course_id_answer(answer, value, form=True)


@PROPERTY
@given(value=hostile_text, charset=st.sampled_from(["utf-8", "latin-1", "unicode_escape", "utf-16"]))
def test_a_course_id_in_a_multipart_form_is_an_id_or_400(app: App, value: str, charset: str) -> None:
    raw = value.encode("utf-8", "surrogatepass")
    body = (b'--b\r\nContent-Disposition: form-data; name="parameters[course_id]"\r\n\r\n' + raw + b"\r\n--b--\r\n")
    answer = app("POST", START, body=body, content_type=f"multipart/form-data; boundary=b; charset={charset}")
    assert answer.status in (200, 400, 404, 429), answer


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | hostile_text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(hostile_text, children, max_size=3),
    max_leaves=8,
)


@PROPERTY
@given(value=hostile_text | json_values)
def test_a_course_id_in_json_is_an_id_or_400(app: App, value: object) -> None:
    body = json.dumps({"parameters": {"course_id": value}}).encode()  # ensure_ascii: a lone surrogate is sent as \ud800
    assert_course_id_answer(app("POST", START, body=body, content_type="application/json"), value, form=False)


@PROPERTY
@given(document=json_values, depth=st.integers(0, 3000), opening=st.sampled_from(["[", '{"a":']))
def test_any_json_body_of_any_depth_is_never_a_server_error(app: App, document: object, depth: int, opening: str) -> None:
    closing = "]" if opening == "[" else "}"
    body = (opening * depth + json.dumps({"parameters": document, "message": document}) + closing * depth).encode()
    for path in (START, "/api/v1/progress/1/cancel"):
        answer = app("POST", path, body=body, content_type="application/json")
        if depth > 0:
            assert answer.status == 400 and message(answer).startswith(("the request body", "the JSON body")), answer


@PROPERTY
@given(value=hostile_text)
def test_a_cancel_message_is_kept_or_refused_naming_it(app: App, value: str) -> None:
    report = app("POST", "/api/v1/courses/565/reports/course_sections_csv")
    report_id = json.loads(report.body)["id"] if report.status == 200 else 1
    answer = app("POST", f"/api/v1/progress/{report_id}/cancel", body=json.dumps({"message": value}).encode(),
                 content_type="application/json")
    assert answer.status in (200, 400, 404), answer
    if answer.status == 400:
        assert message(answer).startswith(("message:", "the request body")), message(answer)


@PROPERTY
@given(value=hostile_text)
def test_an_access_token_of_any_text_is_401(app: App, value: str) -> None:
    answer = call(app.app, "GET", "/api/v1/accounts/79/reports", query=f"access_token={encoded(value)}".encode())
    assert answer.status == 401, answer


# --- The same cases on a real server ---------------------------------------------------


def post(api, path: str, headers: dict[str, str] | None = None, **kwargs) -> requests.Response:
    return requests.post(api.url + path, headers={**api.headers(), **(headers or {})}, timeout=30, **kwargs)


@pytest.mark.parametrize("value", ["²", "⑨", "١٢", "1" * 5000, "0" * 5000 + "1", "9" * 20])
def test_a_malformed_course_id_is_400_naming_it_on_a_real_server(api, value: str) -> None:
    responses = [post(api, START, data={"parameters[course_id]": value}),
                 post(api, START, json={"parameters": {"course_id": value}})]
    if value.isascii() and value[0] != "0":  # also as a JSON number
        responses.append(post(api, START, data=f'{{"parameters": {{"course_id": {value}}}}}'.encode(),
                              headers={"Content-Type": "application/json"}))
    for response in responses:
        assert response.status_code == 400, (value[:20], response.status_code, response.text[:300])
        assert response.json()["errors"][0]["message"].startswith("parameters[course_id]: is not an id"), response.text[:300]


@pytest.mark.parametrize("depth", [1000, 100_000])
def test_deep_json_is_400_naming_the_body_on_a_real_server(api, depth: int) -> None:
    for body in ("[" * depth + "]" * depth, '{"parameters": ' + '{"a": ' * depth + "1" + "}" * depth + "}"):
        response = post(api, START, data=body.encode(), headers={"Content-Type": "application/json"})
        assert response.status_code == 400, (depth, response.status_code, response.text[:300])
        assert response.json()["errors"][0]["message"].startswith("the request body: JSON nested deeper than")


@pytest.mark.parametrize("body", [b'{"parameters": {"\\ud800": 1}}', b'{"parameters": {"start_at": "\\udfff"}}',
                                  b'{"message": "\\ud83d"}'])
def test_a_lone_surrogate_in_json_is_400_on_a_real_server(api, body: bytes) -> None:
    path = "/api/v1/progress/1/cancel" if b"message" in body else START
    response = post(api, path, data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, (response.status_code, response.text[:300])
    assert response.json()["errors"][0]["message"].startswith("the request body: holds")


@pytest.mark.parametrize(("path", "status"), [
    ("/api/v1/progress/" + "1" * 5000, 404), ("/files/²/download", 404), ("/api/v1/accounts/⑨/reports", 404),
    ("/api/v1/courses/" + "9" * 5000, 404), ("/api/v1/accounts/79/reports?page=" + "1" * 5000, 400),
    ("/api/v1/accounts/79/reports?per_page=²", 400),
])
def test_hostile_path_and_query_values_on_a_real_server(api, path: str, status: int) -> None:
    response = requests.get(api.url + path, headers=api.headers(), timeout=30)
    assert response.status_code == status, (path[:60], response.status_code, response.text[:300])
