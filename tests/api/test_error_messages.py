"""Error messages quote what the client sent, but boundedly and escaped, wherever it sent it.

A client (or the person reading its log) prints the message: it is one line,
at most a few hundred characters whatever the size of the value it quotes (a
body may be 1 MiB), with control and invisible characters escaped (an
`ESC ] ... BEL` in a parameter's name must not retitle a terminal).
"""

from __future__ import annotations

import json
import unicodedata
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.asgi import Answer, App

LONGEST = 500  # characters, whatever was sent
UNSAFE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
EXAMPLES = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

HUGE = ["k" * 300_000, "9" * 300_000, "\x1b]0;owned\x07" * 1000, "\u202e" * 500 + "x", "é" * 100_000]
hostile = st.sampled_from(HUGE) | st.text(max_size=400) | st.text(st.characters(categories=["Cc", "Cf", "Zl", "Zp"]))
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | hostile,
                           lambda children: st.lists(children, max_size=4) | st.dictionaries(hostile, children, max_size=3),
                           max_leaves=6)
START = "/api/v1/accounts/79/reports/course_sections_csv"




def assert_printable(answer: Answer) -> None:
    if answer.status < 400:
        return
    (error,) = json.loads(answer.body)["errors"]
    message = error["message"]
    assert len(message) <= LONGEST, (answer.status, len(message), message[:200])
    unsafe = [char for char in message if unicodedata.category(char) in UNSAFE]
    assert unsafe == [], (answer.status, unsafe[:5], message[:200])


def form(fields: list[tuple[str, str]]) -> bytes:
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in fields).encode()


@EXAMPLES
@given(name=hostile, value=json_values)
def test_a_parameter_of_any_name_and_value_in_json(app: App, name: str, value: object) -> None:
    for parameters in ({name: value}, {"course_id": value}, {"start_at": value}, {"include_deleted": value}, value):
        body = json.dumps({"parameters": parameters}).encode()
        assert_printable(app("POST", START, body=body, content_type="application/json"))


@EXAMPLES
@given(name=hostile, value=hostile)
def test_a_parameter_of_any_name_and_value_in_a_form_or_the_query(app: App, name: str, value: str) -> None:
    for fields in ([(f"parameters[{name}]", "1")], [("parameters[course_id]", value)], [("parameters[end_at]", value)],
                   [(name, value)]):
        assert_printable(app("POST", START, body=form(fields), content_type="application/x-www-form-urlencoded"))
        assert_printable(app("POST", START, query=form(fields)))


@EXAMPLES
@given(value=hostile)
def test_page_per_page_and_the_report_name(app: App, value: str) -> None:
    for name in ("page", "per_page"):
        assert_printable(app("GET", "/api/v1/accounts", query=form([(name, value)])))
    if value and "/" not in value and not any(0xD800 <= ord(char) <= 0xDFFF for char in value):
        assert_printable(app("GET", f"/api/v1/accounts/79/reports/{value}"))


@EXAMPLES
@given(message=json_values)
def test_a_cancel_message_of_any_kind(app: App, message: object) -> None:
    assert_printable(app("POST", "/api/v1/progress/1/cancel", body=json.dumps({"message": message}).encode(),
                         content_type="application/json"))


@pytest.mark.parametrize("value", HUGE)
def test_each_huge_or_hostile_value_everywhere(app: App, value: str) -> None:
    answers = [
        app("POST", START, body=json.dumps({"parameters": {value: 1}}).encode(), content_type="application/json"),
        app("POST", START, body=json.dumps({"parameters": {"course_id": value}}).encode(), content_type="application/json"),
        app("POST", START, body=json.dumps({"parameters": [value]}).encode(), content_type="application/json"),
        app("POST", START, body=form([(f"parameters[{value}]", "1")]), content_type="application/x-www-form-urlencoded"),
        app("POST", START, body=form([("parameters[include_deleted]", value)]), content_type="application/x-www-form-urlencoded"),
        app("POST", "/api/v1/progress/1/cancel", body=json.dumps({"message": [value]}).encode(), content_type="application/json"),
        app("GET", "/api/v1/accounts", query=form([("per_page", value[:10_000])])),
        app("GET", f"/api/v1/accounts/79/reports/{value[:10_000]}"),
    ]
    assert [answer.status for answer in answers].count(400) >= 6, [answer.status for answer in answers]
    for answer in answers:
        assert_printable(answer)
