"""URLs handed to clients name PUBLIC_URL or an allowed Host, never a Host the client chose (issue 11, item 4).

A client follows `file_url`, `progress_url`, the attachment `url`, Progress `url`
and `Link` with its bearer token, so a Host header that ended up in them would
send the token wherever the Host said.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from consumer.api.hosts import host_of, host_patterns, is_allowed
from tests.api.server import ApiServer

EVIL = "evil.example"
HOSTILE_HOSTS = [EVIL, f"{EVIL}:8000", f"localhost.{EVIL}", f"localhost@{EVIL}", f"127.0.0.1:80@{EVIL}",
                 f"127.0.0.1.{EVIL}", "LOCALHOST." + EVIL.upper(), f"[::1].{EVIL}", f"{EVIL}/x", "localhost:80:81", ""]


def urls_in(document: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """(key path, value) of every string in a JSON document that holds `://`."""
    if isinstance(document, dict):
        for key, value in document.items():
            yield from urls_in(value, f"{where}.{key}")
    elif isinstance(document, list):
        for value in document:
            yield from urls_in(value, f"{where}[]")
    elif isinstance(document, str) and "://" in document:
        yield where, document


def handed_out_urls(base: str, host: str, token: str, extra: dict[str, str] | None = None) -> dict[str, set[str]]:
    """Every URL the API hands out, by where it was found, asked for with this Host header (and `extra` headers)."""
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {token}", "Host": host, **(extra or {})})

    def go(method: str, path: str, **kwargs) -> requests.Response:
        response = session.request(method, base + path, timeout=10, **kwargs)
        assert response.status_code == 200, (method, path, response.status_code, response.text)
        return response

    def until_complete(report_id: int) -> None:
        deadline = time.monotonic() + 30
        while go("GET", f"/api/v1/progress/{report_id}").json()["workflow_state"] != "completed":
            assert time.monotonic() < deadline, f"report {report_id} did not complete"
            time.sleep(0.1)

    started = [go("POST", "/api/v1/accounts/79/reports/course_completion_csv"),
               go("POST", "/api/v1/courses/565/reports/course_sections_csv")]
    account_report, course_report = (response.json()["id"] for response in started)
    until_complete(account_report)
    until_complete(course_report)
    responses = [*started,
                 go("GET", f"/api/v1/progress/{account_report}"),
                 go("GET", f"/api/v1/accounts/79/reports/course_completion_csv/{account_report}"),
                 go("GET", "/api/v1/accounts/79/reports/course_completion_csv", params={"per_page": 1}),
                 go("GET", "/api/v1/accounts/79/reports", params={"per_page": 2}),
                 go("GET", "/api/v1/accounts", params={"per_page": 1}),
                 go("GET", f"/api/lti/courses/565/progress/{course_report}"),
                 go("GET", f"/api/v1/courses/565/reports/course_sections_csv/{course_report}"),
                 go("GET", "/api/v1/courses/565/reports/course_sections_csv")]
    found: dict[str, set[str]] = {}
    for response in responses:
        for where, url in urls_in(response.json()):
            found.setdefault(where.rsplit(".", 1)[-1], set()).add(url)
        for link in requests.utils.parse_header_links(response.headers.get("Link", "")):
            found.setdefault("Link", set()).add(link["url"])
    # Each kind of URL was handed out, and the ones to follow work with the same Host.
    assert {"file_url", "url", "progress_url", "Link"} <= set(found), sorted(found)
    assert any(where.endswith("attachment.url") for response in responses for where, _ in urls_in(response.json()))
    return found


def assert_all_start_with(found: dict[str, set[str]], prefix: str) -> None:
    wrong = {where: sorted(u for u in urls if not u.startswith(prefix)) for where, urls in found.items()}
    assert not any(wrong.values()), (prefix, wrong)


def test_urls_are_built_from_an_allowed_host(api) -> None:
    host = f"localhost:{api.server.port}"
    found = handed_out_urls(api.url, host, api.token)
    assert_all_start_with(found, f"http://{host}/")
    # ...and they work: the file downloads, the Link pages load, through this server.
    file_url = sorted(found["file_url"])[0].replace(f"http://{host}", api.url)
    assert requests.get(file_url, headers={**api.headers(), "Host": host}, timeout=10).status_code == 200


@pytest.mark.parametrize("host", HOSTILE_HOSTS)
def test_a_host_not_allowed_gets_400_and_no_url_names_it(api, host: str) -> None:
    routes = [("GET", "/api/v1/accounts"), ("GET", "/api/v1/accounts/79/reports"),
              ("POST", "/api/v1/accounts/79/reports/course_completion_csv"),
              ("GET", "/api/v1/accounts/79/reports/course_completion_csv?per_page=1"),
              ("POST", "/api/v1/courses/565/reports/course_progress_csv"), ("GET", "/api/v1/progress/1"),
              ("GET", "/api/lti/courses/565/progress/1"), ("GET", "/files/1/download"), ("GET", "/openapi.json"),
              ("GET", "/nowhere")]
    for method, path in routes:
        response = requests.request(method, api.url + path, headers={**api.headers(), "Host": host}, timeout=10)
        assert response.status_code == 400, (host, method, path, response.status_code, response.text)
        (error,) = response.json()["errors"]
        assert error["message"].startswith("Host: "), error["message"]
        seen = response.text + " ".join(f"{k}: {v}" for k, v in response.headers.items())
        assert f"//{EVIL}" not in seen.lower() and "http" not in response.text


def test_repeated_or_missing_host_headers_get_400(api) -> None:
    for head in (f"Host: 127.0.0.1:{api.server.port}\r\nHost: {EVIL}\r\n", ""):
        with socket.create_connection(("127.0.0.1", api.server.port), timeout=10) as sock:
            sock.sendall(f"GET /api/v1/accounts HTTP/1.0\r\n{head}Authorization: Bearer {api.token}\r\n\r\n".encode())
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
        assert b"://" + EVIL.encode() not in answer


def test_forwarded_host_headers_are_not_trusted(api) -> None:
    """uvicorn's proxy support reads only X-Forwarded-Proto and -For; X-Forwarded-Host and Forwarded are ignored."""
    host = f"127.0.0.1:{api.server.port}"
    forwarded = {"X-Forwarded-Host": EVIL, "Forwarded": f"host={EVIL};proto=https", "X-Forwarded-Server": EVIL,
                 "X-Original-Host": EVIL}
    assert_all_start_with(handed_out_urls(api.url, host, api.token, forwarded), f"http://{host}/")


@pytest.mark.parametrize("host", [EVIL, "10.42.0.17:8000", "[fd00::17]:8000"])
def test_the_probes_answer_any_host(api, host: str) -> None:
    # Kubernetes' httpGet probes send the pod's IP address; these three build no URL.
    for path in ("/healthz", "/readyz", "/metrics"):
        response = requests.get(api.url + path, headers={"Host": host}, timeout=10)
        assert response.status_code == 200, (path, response.text)
        assert EVIL not in response.text


def server(api_database: str, tmp_path, *args: str, env: dict[str, str] | None = None) -> ApiServer:
    return ApiServer(api_database, tmp_path / "serve.log", *args, env=env).start()


def test_wildcard_allowed_hosts_match_subdomains_only(api, tmp_path) -> None:
    started = server(api.database_url, tmp_path, "--allowed-hosts", "*.example.edu, reports.internal")
    try:
        host = "reports.example.edu:8443"
        assert_all_start_with(handed_out_urls(started.url, host, api.token), f"http://{host}/")
        for refused in ("example.edu", f"reports.example.edu.{EVIL}", "reportsexample.edu", "127.0.0.1", "localhost"):
            response = requests.get(f"{started.url}/api/v1/accounts", headers={**api.headers(), "Host": refused}, timeout=10)
            assert response.status_code == 400, (refused, response.text)
        for allowed in ("a.b.example.edu", "REPORTS.INTERNAL:8000"):
            response = requests.get(f"{started.url}/api/v1/accounts", headers={**api.headers(), "Host": allowed}, timeout=10)
            assert response.status_code == 200, (allowed, response.text)
    finally:
        started.stop()


def test_public_url_is_used_whatever_the_allowed_host(api, tmp_path) -> None:
    public = "https://reports.example.edu/canvas"
    started = server(api.database_url, tmp_path, env={"PUBLIC_URL": public})
    try:
        # PUBLIC_URL's host is allowed without being listed; the loopback names stay allowed.
        for host in ("reports.example.edu", f"127.0.0.1:{started.port}", "localhost"):
            assert_all_start_with(handed_out_urls(started.url, host, api.token), f"{public}/")
        response = requests.get(f"{started.url}/api/v1/accounts", headers={**api.headers(), "Host": EVIL}, timeout=10)
        assert response.status_code == 400
    finally:
        started.stop()


@pytest.mark.parametrize(("setting", "named"), [("localhost:8000", "'localhost:8000'"), ("evil .example", "'evil .example'"),
                                                ("*example.edu", "'*example.edu'"), ("a.*.edu", "'a.*.edu'")])
def test_a_bad_allowed_hosts_entry_stops_serve_with_one_line(setting: str, named: str, tmp_path) -> None:
    result = subprocess.run([sys.executable, "-m", "consumer", "serve", "--allowed-hosts", f"localhost,{setting}"],
                            env={**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert "ALLOWED_HOSTS" in line and named in line, line


_LABEL = st.from_regex(r"[a-z0-9][a-z0-9-]{0,10}", fullmatch=True)
_DOMAIN = st.lists(_LABEL, min_size=1, max_size=3).map(".".join)


@given(sub=_DOMAIN, domain=_DOMAIN, port=st.none() | st.integers(0, 65535))
def test_a_wildcard_allows_every_subdomain_and_nothing_else(sub: str, domain: str, port: int | None) -> None:
    patterns = host_patterns(f"*.{domain}")
    suffix = "" if port is None else f":{port}"
    assert is_allowed(host_of(f"{sub}.{domain}{suffix}".upper()), patterns)
    assert not is_allowed(host_of(domain + suffix), patterns)
    assert is_allowed(host_of(sub + domain), patterns) == (sub + domain).endswith(f".{domain}")
    assert not is_allowed(host_of(f"{sub}.{domain}.{EVIL}"), patterns)


@given(host=st.text(max_size=40))
def test_only_listed_hosts_pass_and_nothing_but_a_host_and_port_parses(host: str) -> None:
    parsed = host_of(host)
    if parsed is not None:
        assert host.lower().startswith(parsed) and all(c.isascii() and c not in "@/?#\\ \t" for c in host)
        assert is_allowed(parsed, host_patterns("localhost,127.0.0.1,[::1]")) == (parsed in ("localhost", "127.0.0.1", "[::1]"))


def test_public_url_host_is_always_allowed() -> None:
    assert host_patterns("localhost", "https://User:pw@Reports.Example.EDU:8443/x") == ("localhost", "reports.example.edu")
    assert host_patterns("", "http://[::1]:8000") == ("[::1]",)
    with pytest.raises(ValueError, match="PUBLIC_URL"):
        host_patterns("localhost", "reports.example.edu")
