"""Hostile review of the dashboard (issue 15): each test here failed on the reviewed tree (985c080).

API tests run the app in-process (tests/api/asgi.py) on a migrated SQLite file and on a real Postgres database;
browser tests drive Debian's chromium against a real `serve` over a replayed corpus (tests/browser/).
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import Engine, insert

from consumer.api.app import create_app
from consumer.reports.runner import ReportRunner
from consumer.store.engine import make_engine
from consumer.store.migrate import upgrade
from consumer.store.tables import courses
from consumer.tokens import create_token
from tests.api.asgi import Answer, call

_accounts = itertools.count(7_100)
_courses = itertools.count(710_000)


@dataclass
class Backend:
    kind: str
    engine: Engine
    app: Any

    def get(self, path: str, token: str, **params: Any) -> Answer:
        return call(self.app, "GET", path, query=urlencode(params).encode(), headers={"Authorization": f"Bearer {token}"})

    def account(self) -> tuple[int, str]:
        account = next(_accounts)
        return account, create_token(self.engine, [account], "review")[1]

    def course(self, account: int, name: str | None, event_time: datetime | None = None) -> int:
        course_id = next(_courses)
        with self.engine.begin() as connection:
            connection.execute(insert(courses).values(id=course_id, account_id=account, name=name,
                                                      workflow_state="available", course_event_time=event_time))
        return course_id


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('review') / 'review.db'}"
    else:
        url = request.getfixturevalue("new_pg_database")()
    engine = make_engine(url)
    upgrade(engine)
    yield Backend(request.param, engine, create_app(engine, ReportRunner(engine)))
    engine.dispose()


# --- 500s from dates near the ends of the calendar -------------------------------------------------------------


@pytest.mark.parametrize("end_at", ["0001-01-01", "0001-03-01", "0001-06-28"])
@pytest.mark.parametrize("suffix", ["", ".svg"])
def test_trend_with_only_an_end_near_year_one_is_answered_not_500(backend: Backend, end_at: str, suffix: str) -> None:
    """queries.trend computes start = end - 179 days without start_at: OverflowError (500) for an end_at before
    0001-06-29. Any date the parameter accepts must be answered 200 or 400."""
    account, token = backend.account()
    course_id = backend.course(account, "Ancient History")
    answer = backend.get(f"/api/v1/courses/{course_id}/progress_trend{suffix}", token, end_at=end_at)
    assert answer.status in (200, 400), (backend.kind, end_at, answer.status, answer.body[:300])


# --- search: the term and the column are not folded by the same function --------------------------------------


@pytest.mark.parametrize(("name", "term"), [
    ("İstanbul Tarihi", "İstanbul Tarihi"),  # the exact name: Postgres folds İ to 'i', Python to 'i̇' (two characters)
    ("ΟΔΟΣ ΚΑΙ ΤΕΧΝΗ", "ΟΔΟΣ"),  # Python lowers a word-final Σ to 'ς', Postgres to 'σ'
    ("ΟΔΟΣ ΚΑΙ ΤΕΧΝΗ", "οδοσ"),  # SQLite's fold_case (Python lower of the whole name) gives 'οδος'
])
def test_a_search_for_a_courses_own_name_finds_it_on_every_database(backend: Backend, name: str, term: str) -> None:
    """The term is lowered in Python (search.lower()) and the name in the database (Postgres lower() / SQLite
    fold_case): Unicode's context-dependent and one-to-many lower cases differ, so a course is missed by a
    search for its own name on one database or the other."""
    account, token = backend.account()
    course_id = backend.course(account, name)
    answer = backend.get(f"/api/v1/accounts/{account}/course_progress", token, search_term=term)
    assert answer.status == 200, answer.body[:300]
    assert [c["id"] for c in json.loads(answer.body)] == [course_id], (backend.kind, name, term)


# --- freshness: another account's activity --------------------------------------------------------------------


def test_freshness_does_not_reveal_when_another_account_was_last_active(backend: Backend) -> None:
    """progress_summary and progress_trend answer `freshness.newest_event_time`, the newest event time in any
    table of any account: a token for one account learns when another account's courses last changed."""
    mine, token = backend.account()
    other, _ = backend.account()
    own_time = datetime(2020, 1, 1, tzinfo=timezone.utc)
    course_id = backend.course(mine, "Mine", own_time)
    secret = datetime(2031, 7, 4, 3, 2, 1, tzinfo=timezone.utc)  # newer than anything else in the database
    backend.course(other, "Theirs", secret)
    for path in (f"/api/v1/accounts/{mine}/progress_summary", f"/api/v1/courses/{course_id}/progress_trend"):
        answer = backend.get(path, token)
        assert answer.status == 200, answer.body[:300]
        newest = json.loads(answer.body)["freshness"]["newest_event_time"]
        assert newest is None or not newest.startswith("2031-07-04"), (backend.kind, path, newest)


# --- the page in a browser ----------------------------------------------------------------------------------

READY = "body[data-state=ready]"


@dataclass
class Site:
    url: str
    token: str


@dataclass
class Watched:
    page: Any
    refused: list[str]
    page_errors: list[str]


@pytest.fixture
def watched_page() -> Iterator[Watched]:
    """Chromium for one test (tests/browser/conftest.py's settings): requests off loopback are refused and fail the
    test. Per test, not per module: this module's API tests call asyncio.run, which Playwright's loop would break."""
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, is_local

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US", timezone_id="UTC")
            watched = Watched(context.new_page(), [], [])

            def route(route, request) -> None:
                if is_local(request.url):
                    route.continue_()
                else:
                    watched.refused.append(request.url)
                    route.abort()

            context.route("**/*", route)
            watched.page.on("pageerror", lambda error: watched.page_errors.append(str(error)))
            yield watched
            context.close()
        finally:
            browser.close()
    assert not watched.refused, watched.refused[:5]
    assert not watched.page_errors, watched.page_errors[:5]


@pytest.fixture(scope="module")
def site(new_pg_database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    from tests.api.server import ApiServer
    from tests.api.server import create_token as server_token
    from tests.browser import corpus
    from tests.helpers import cli

    url = new_pg_database()
    folder = tmp_path_factory.mktemp("review-dashboard")
    path = corpus.write(folder / "corpus.ndjson")
    replayed = cli("replay", str(path), env={**os.environ, "DATABASE_URL": url, "LOG_FORMAT": "json"})
    assert replayed.returncode == 0, replayed.stderr.decode()[-2000:]
    server = ApiServer(url, folder / "serve.log").start()
    try:
        yield Site(server.url, server_token(url, corpus.HOME))
    finally:
        server.stop()


def _sign_in(watched, site: Site, hash_: str) -> None:
    page = watched.page
    page.goto(f"{site.url}/dashboard{hash_}")
    page.wait_for_selector("#token-form", state="visible")
    page.get_by_label("Access token").fill(site.token)
    page.get_by_role("button", name="Show the dashboard").click()
    page.wait_for_selector(READY, timeout=15_000)


def test_a_pending_filter_does_not_pull_the_user_back_after_they_left_the_account(site: Site, watched_page) -> None:
    """dashboard.js accountView: the filter's 350 ms debounce timer is never cleared when the view is left. Type
    in the filter, then open a course before the timer fires: the timer then sets location.hash back to the
    account's list. Driven by Playwright's fake clock, so nothing here depends on real time."""
    from tests.browser import corpus

    page = watched_page.page
    page.clock.install()
    _sign_in(watched_page, site, f"#/accounts/{corpus.HOME}")
    page.wait_for_selector("body[data-state=ready][data-view=account]", timeout=15_000)
    page.focus("#course-filter")
    page.keyboard.type("Alg")  # starts the timer; it has not fired (the clock is not advanced)
    page.evaluate("document.body.dataset.state = 'loading'")
    page.evaluate("location.hash = '#/courses/2001'")
    page.wait_for_selector("body[data-state=ready][data-view=course]", timeout=15_000)
    page.clock.run_for(2_000)  # the debounce's time passes on the course page
    assert page.evaluate("location.hash") == "#/courses/2001"


def test_sorting_by_id_from_the_address_shows_the_list_not_a_script_error(site: Site, watched_page) -> None:
    """The API takes sort=id, but accountView looks the sort up among its columns (which have no id) and reads
    `.label` of undefined: the page shows "Cannot show this page" with a TypeError's text."""
    from tests.browser import corpus

    page = watched_page.page
    _sign_in(watched_page, site, f"#/accounts/{corpus.HOME}?sort=id")
    shown = page.inner_text("#view")
    assert page.evaluate("document.body.dataset.view") == "account", shown[:500]
    assert "undefined" not in shown and "TypeError" not in shown, shown[:500]


def test_a_page_past_the_last_does_not_say_the_account_has_no_courses(site: Site, watched_page) -> None:
    """#/accounts/79?page=99 (a stale link, or a filter that narrowed the list): the API answers [] with
    X-Total-Count 63, and the page says "This account has no courses yet." and "Page 2 of 2"."""
    from tests.browser import corpus

    page = watched_page.page
    _sign_in(watched_page, site, f"#/accounts/{corpus.HOME}?page=99")
    page.wait_for_selector("body[data-state=ready][data-view=account]", timeout=15_000)
    shown = page.inner_text("#view")
    assert "has no courses yet" not in shown, shown[:800]
    assert "Page 99" in shown or page.locator("#view table tbody tr").count() > 0, shown[:800]
