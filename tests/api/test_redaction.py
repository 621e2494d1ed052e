"""A token never reaches the log: `?access_token=` however its name is %-encoded, and Authorization headers (issue 11, item 7)."""

from __future__ import annotations

import http.client
import logging
from urllib.parse import parse_qsl, quote

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from consumer.api.app import RedactTokens
from consumer.events.redact import is_credential_name
from tests.api.server import ApiServer, create_token

NAME = "access_token"


@st.composite
def spellings(draw: st.DrawFn) -> str:
    """`access_token` as a client may send it: any character %-escaped (either hex case), any letter in any case."""
    out = []
    for char in NAME:
        char = draw(st.sampled_from([char, char.upper()]))
        escape = "".join(f"%{byte:02X}" for byte in char.encode())
        out.append(draw(st.sampled_from([char, escape, escape.lower()])))
    return "".join(out)


tokens = st.from_regex(r"cpt_[A-Za-z0-9_+%=-]{20,43}", fullmatch=True)
others = st.lists(st.tuples(st.from_regex(r"[a-z_%0-9A-F]{1,12}", fullmatch=True),
                            st.from_regex(r"[A-Za-z0-9_.+%-]{0,12}", fullmatch=True)), max_size=4)


def logged(path_with_query: str) -> str:
    """The access log line uvicorn writes for the request, after the filter."""
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 0, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:40000", "GET", path_with_query, "1.1", 200), None)
    assert RedactTokens().filter(record)
    return record.getMessage()


@given(names=st.lists(spellings(), min_size=1, max_size=3), token=tokens, before=others, after=others)
def test_every_spelling_of_access_token_is_redacted(names: list[str], token: str, before, after) -> None:
    pairs = [*before, *((name, token) for name in names), *after]
    query = "&".join(f"{name}={value}" for name, value in pairs)
    # The server reads each of these names as access_token (case aside), as parse_qsl decodes them.
    decoded = [name for name, _ in parse_qsl(query, keep_blank_values=True)]
    assert sum(name.casefold() == NAME for name in decoded) >= len(names)
    line = logged(f"/api/v1/accounts/79/reports?{query}")
    values = [value for name, value in parse_qsl(line.split("?", 1)[1].split(" HTTP/")[0], keep_blank_values=True)
              if name.casefold() == NAME]
    assert values and set(values) == {"[redacted]"}, line
    assert token[4:] not in line.replace("[redacted]", ""), line
    # Other parameters are left as they were.
    for name, value in before + after:
        if not is_credential_name(parse_qsl(f"{name}=x")[0][0]):
            assert f"{name}={value}" in line


@pytest.mark.parametrize(("raw", "expected"), [
    ("/r?access%5Ftoken=SECRET", "/r?access%5Ftoken=[redacted]"),
    ("/r?%61ccess_token=SECRET&page=2", "/r?%61ccess_token=[redacted]&page=2"),
    ("/r?ACCESS_TOKEN=SECRET", "/r?ACCESS_TOKEN=[redacted]"),
    ("/r?access_token=SEC+RET%2B&access_token=AGAIN", "/r?access_token=[redacted]&access_token=[redacted]"),
    # One rule for every credential name (events/redact.py): names ending in "token" are redacted too.
    ("/r?access+token=SECRET&x_access_token=SECRET", "/r?access+token=[redacted]&x_access_token=[redacted]"),
    ("/r?page=2&per_page=10", "/r?page=2&per_page=10"),
    ("/r", "/r"),
])
def test_redaction_examples(raw: str, expected: str) -> None:
    assert logged(raw).split('"GET ')[1].split(" HTTP/")[0] == expected


@pytest.fixture(scope="module")
def debug_server(api_database: str, tmp_path_factory: pytest.TempPathFactory):
    server = ApiServer(api_database, tmp_path_factory.mktemp("debug") / "serve.log",
                       env={"LOG_LEVEL": "DEBUG"}).start()
    try:
        yield server
    finally:
        server.stop()


def raw_get(server: ApiServer, target: str, headers: dict[str, str] | None = None) -> int:
    """GET exactly this request target (requests would turn %5F back into _ before sending)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", target, headers=headers or {})
        return connection.getresponse().status
    finally:
        connection.close()


def test_no_token_reaches_the_log_at_debug_level(debug_server: ApiServer, api_database: str) -> None:
    token = create_token(api_database, 79)
    secret = token[4:]
    path = "/api/v1/accounts/79/reports"
    for query in (f"access%5Ftoken={token}", f"%61ccess_token={token}", f"access%5ftoken={quote(token, safe='')}",
                  f"%61%63%63%65%73%73%5F%74%6F%6B%65%6E={token}", f"page=1&access_token={token}&access_token={token}"):
        assert raw_get(debug_server, f"{path}?{query}") == 200, query
    # The header, refused tokens, and errors on the way.
    headers = {"Authorization": f"Bearer {token}"}
    assert raw_get(debug_server, path, headers) == 200
    assert raw_get(debug_server, "/api/v1/progress/999999", headers) == 404
    assert requests.post(f"{debug_server.url}{path}/course_completion_csv", data=b"{not json", timeout=10,
                         headers={**headers, "Content-Type": "application/json"}).status_code == 400
    assert raw_get(debug_server, f"{path}?access%5Ftoken={token}x") == 401
    assert raw_get(debug_server, path, {"Authorization": f"Bearer {token}x"}) == 401
    debug_server.stop()  # everything flushed
    text = debug_server.log.read_text()
    assert "uvicorn.access" in text and "DEBUG" in text
    assert "access%5Ftoken=[redacted]" in text and "%61ccess_token=[redacted]" in text
    assert secret not in text and quote(secret, safe="") not in text


@pytest.mark.parametrize("name", ["access_token", "access%5Ftoken", "%61ccess_token", "api_key"])
def test_no_credential_reaches_a_link_header(api, name: str) -> None:
    """As Canvas's EXCLUDE_IN_PAGINATION_LINKS: the links keep the request's other parameters, never its credentials."""
    secret = api.token if name != "api_key" else "key-123"
    response = requests.get(f"{api.url}/api/v1/accounts/79/reports/course_sections_csv?{name}={secret}&per_page=1&x=%3D1",
                            headers=api.headers(), timeout=10)
    assert response.status_code == 200, response.text
    links = requests.utils.parse_header_links(response.headers["Link"])
    assert {link["rel"] for link in links} >= {"current", "first", "last"}
    for link in links:
        assert secret not in link["url"] and "token" not in link["url"] and "api_key" not in link["url"], link
        assert dict(parse_qsl(link["url"].split("?", 1)[1]))["x"] == "=1"
