"""The dashboard in a real browser (Debian's chromium) against a real `serve` over a replayed corpus.

What the page shows is compared with the database, read here straight from the tracked tables
(course_progress, courses) and the history, not through the dashboard's own queries. Every request the
page makes must stay on loopback (tests/browser/conftest.py). The screenshots the README shows are
written by these tests (docs/screenshots/).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from fractions import Fraction
from urllib.parse import quote

import pytest
from sqlalchemy import select

from consumer.store.engine import make_engine
from consumer.store.tables import course_progress, courses
from tests.api.server import ApiServer, create_token
from tests.browser import corpus
from tests.browser.conftest import Watched
from tests.helpers import cli
from tests.history_oracle import expected_daily, expected_history

PER_PAGE = 50
READY = "body[data-state=ready]"


@dataclass
class Site:
    server: ApiServer
    database_url: str
    home: str  # a token for account HOME
    other: str  # a token for account OTHER
    both: str  # a token for both
    events: list[dict]

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def site(new_pg_database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    url = new_pg_database()
    folder = tmp_path_factory.mktemp("dashboard")
    path = corpus.write(folder / "corpus.ndjson")
    replayed = cli("replay", str(path), env={**os.environ, "DATABASE_URL": url, "LOG_FORMAT": "json"})
    assert replayed.returncode == 0, replayed.stderr.decode()[-2000:]
    server = ApiServer(url, folder / "serve.log").start()
    try:
        yield Site(server, url, create_token(url, corpus.HOME), create_token(url, corpus.OTHER),
                   create_token(url, corpus.HOME, corpus.OTHER), corpus.events())
    finally:
        server.stop()


# --- The database's figures, from the tracked tables -------------------------------------------


@dataclass(frozen=True)
class Expected:
    id: int
    name: str
    state: str | None
    students: int
    completed: int

    @property
    def rate(self) -> float | None:
        return self.completed / self.students if self.students else None


def expected_courses(site: Site, account: int, include_deleted: bool = False) -> dict[int, Expected]:
    engine = make_engine(site.database_url)
    try:
        with engine.connect() as connection:
            found = connection.execute(select(courses.c.id, courses.c.name, courses.c.workflow_state)
                                       .where(courses.c.account_id == account)).all()
            progress = connection.execute(select(course_progress.c.course_id, course_progress.c.is_completed,
                                                 course_progress.c.progress_error)).all()
    finally:
        engine.dispose()
    students: dict[int, int] = {}
    completed: dict[int, int] = {}
    for course_id, is_completed, error in progress:
        if error is None:
            students[course_id] = students.get(course_id, 0) + 1
            completed[course_id] = completed.get(course_id, 0) + int(bool(is_completed))
    return {c.id: Expected(c.id, c.name, c.workflow_state, students.get(c.id, 0), completed.get(c.id, 0))
            for c in found if include_deleted or c.workflow_state != "deleted"}


def ordered_ids(site: Site, account: int, sort: str, order: str) -> list[int]:
    """The course ids in the order the database sorts them (its collation for names), NULLs last, then by id."""
    column = {"name": "lower(course_name)", "completion_rate": "completion_rate", "students": "students"}[sort]
    engine = make_engine(site.database_url)
    try:
        with engine.connect() as connection:
            return [row[0] for row in connection.exec_driver_sql(
                f"SELECT course_id FROM course_completion WHERE account_id = {int(account)} "
                "AND (workflow_state IS NULL OR workflow_state <> 'deleted') "
                f"ORDER BY {column} IS NULL, {column} {order.upper()}, course_id")]
    finally:
        engine.dispose()


# --- Driving the page ------------------------------------------------------------------------


def sign_in(watched: Watched, site: Site, token: str, hash_: str = "") -> None:
    page = watched.page
    page.goto(f"{site.url}/dashboard{hash_}")
    page.wait_for_selector("#token-form", state="visible")
    page.get_by_label("Access token").fill(token)
    page.get_by_role("button", name="Show the dashboard").click()
    wait_ready(watched)


def wait_ready(watched: Watched, view: str | None = None) -> None:
    selector = READY if view is None else f"body[data-state=ready][data-view={view}]"
    watched.page.wait_for_selector(selector, timeout=15_000)
    # No value the page failed to format (no name in the corpus holds these words).
    shown = watched.page.inner_text("body")
    assert not re.search(r"\b(null|undefined|NaN|Invalid Date)\b", shown), shown[:2000]


def go(watched: Watched, hash_: str, view: str) -> None:
    page = watched.page
    page.evaluate("document.body.dataset.state = 'loading'")
    page.evaluate(f"location.hash = {json.dumps(hash_)}")
    wait_ready(watched, view)


def table_rows(watched: Watched, selector: str = "#view table") -> list[list[str]]:
    return watched.page.eval_on_selector(
        selector, "t => Array.from(t.tBodies[0].rows).map(r => Array.from(r.cells).map(c => c.textContent))")


def figure(watched: Watched, label: str) -> str:
    return watched.page.eval_on_selector_all(
        ".figures div", "(divs, label) => divs.filter(d => d.querySelector('dt').textContent === label)"
        ".map(d => d.querySelector('dd').textContent)", label)[0]


def number(text: str) -> int:
    return int(text.replace(",", ""))


def percent(text: str) -> float | None:
    return None if text == "—" else float(text.rstrip("%")) / 100


def course_ids_on_page(watched: Watched) -> list[int]:
    return [int(v) for v in watched.page.eval_on_selector_all("#view table tbody a[data-course-id]",
                                                               "links => links.map(a => a.dataset.courseId)")]


def check_rows(rows: list[list[str]], ids: list[int], expected: dict[int, Expected]) -> None:
    assert len(rows) == len(ids)
    for cells, course_id in zip(rows, ids, strict=True):
        want = expected[course_id]
        assert cells[0] == (want.name or f"Course {course_id}")
        assert (number(cells[1]), number(cells[2])) == (want.students, want.completed), (course_id, cells)
        shown = percent(cells[3])
        assert (shown is None) == (want.rate is None), (course_id, cells)
        if shown is not None:
            assert abs(shown - want.rate) <= 0.0005 + 1e-9, (course_id, cells)


# --- Tests -----------------------------------------------------------------------------------


def test_accounts_page_shows_each_account_the_token_may_see_with_the_databases_totals(site: Site, watched_page: Watched):
    sign_in(watched_page, site, site.both)
    wait_ready(watched_page, "accounts")
    rows = table_rows(watched_page)
    assert [row[0] for row in rows] == [f"Account {corpus.HOME}", f"Account {corpus.OTHER}"]
    for row, account in zip(rows, (corpus.HOME, corpus.OTHER), strict=True):
        expected = expected_courses(site, account).values()
        assert number(row[1]) == len(expected)
        assert number(row[2]) == sum(c.students for c in expected)
        assert number(row[3]) == sum(c.completed for c in expected)
    newest = max(row.event_time for row in expected_history(site.events))  # the corpus's courses come earlier
    assert watched_page.page.text_content("#freshness").startswith(
        f"Data as of {newest:%Y-%m-%d %H:%M:%S} UTC (the newest event of these accounts, ")
    watched_page.screenshot("dashboard-accounts", full_page=True)


def test_account_page_lists_every_course_once_over_its_pages_with_the_databases_figures(site: Site, watched_page: Watched):
    sign_in(watched_page, site, site.home, f"#/accounts/{corpus.HOME}")
    wait_ready(watched_page, "account")
    expected = expected_courses(site, corpus.HOME)
    order = ordered_ids(site, corpus.HOME, "name", "asc")
    assert len(order) == len(expected) > PER_PAGE  # two pages
    pages = -(-len(expected) // PER_PAGE)
    assert watched_page.page.text_content("#page-position") == f"Page 1 of {pages} ({len(expected)} courses)"
    assert number(figure(watched_page, "Courses")) == len(expected)
    assert number(figure(watched_page, "Students")) == sum(c.students for c in expected.values())
    first = course_ids_on_page(watched_page)
    assert first == order[:PER_PAGE]
    check_rows(table_rows(watched_page), first, expected)
    watched_page.screenshot("dashboard-account")

    watched_page.page.evaluate("document.body.dataset.state = 'loading'")
    watched_page.page.get_by_role("button", name="Next").click()
    wait_ready(watched_page, "account")
    second = course_ids_on_page(watched_page)
    assert second == order[PER_PAGE:]
    check_rows(table_rows(watched_page), second, expected)
    assert watched_page.page.get_by_role("button", name="Next").is_disabled()
    deleted = [c for c in expected_courses(site, corpus.HOME, include_deleted=True).values() if c.state == "deleted"]
    assert deleted and not {c.id for c in deleted} & set(first + second)  # deleted courses are not listed


def test_sorting_and_filtering_work_from_the_keyboard(site: Site, watched_page: Watched):
    page = watched_page.page
    sign_in(watched_page, site, site.home, f"#/accounts/{corpus.HOME}")
    wait_ready(watched_page, "account")
    expected = expected_courses(site, corpus.HOME)
    header = "th:has(button[data-sort=completion_rate])"
    assert page.get_attribute(header, "aria-sort") == "none"
    for order in ("asc", "desc"):
        page.focus("button[data-sort=completion_rate]")
        page.evaluate("document.body.dataset.state = 'loading'")
        page.keyboard.press("Enter")
        wait_ready(watched_page, "account")
        assert page.get_attribute(header, "aria-sort") == ("ascending" if order == "asc" else "descending")
        assert page.evaluate("document.activeElement.dataset.sort") == "completion_rate"  # focus kept on the control
        ids = course_ids_on_page(watched_page)
        assert ids == ordered_ids(site, corpus.HOME, "completion_rate", order)[:PER_PAGE]
        check_rows(table_rows(watched_page), ids, expected)

    page.focus("#course-filter")
    page.evaluate("document.body.dataset.state = 'loading'")
    page.keyboard.type("ALG")
    wait_ready(watched_page, "account")
    assert page.evaluate("document.activeElement.id") == "course-filter"  # typing goes on where it was
    ids = course_ids_on_page(watched_page)
    # Filtered, still in the order chosen last (completion rate, descending).
    wanted = [i for i in ordered_ids(site, corpus.HOME, "completion_rate", "desc") if "alg" in (expected[i].name or "").lower()]
    assert ids == wanted and len(ids) >= 2
    check_rows(table_rows(watched_page), ids, expected)


def _busiest(site: Site) -> Expected:
    return max(expected_courses(site, corpus.HOME).values(), key=lambda c: (c.students, -c.id))


def test_course_page_shows_the_daily_trend_stalled_students_and_a_chart_with_a_text_alternative(site: Site, watched_page: Watched):
    page = watched_page.page
    course = _busiest(site)
    sign_in(watched_page, site, site.home, f"#/courses/{course.id}")
    wait_ready(watched_page, "course")
    assert page.text_content("#view h1") == course.name
    assert number(figure(watched_page, "Students")) == course.students
    assert number(figure(watched_page, "Completed")) == course.completed
    # Stalled: not completed, no error, newest event more than 14 days ago: every such student (all are in 2019).
    history = [row for row in expected_history(site.events) if row.course_id == course.id]
    newest: dict[int, object] = {}
    for row in history:
        if row.user_id not in newest or (row.event_time, row.event_rank) > (newest[row.user_id].event_time, newest[row.user_id].event_rank):
            newest[row.user_id] = row
    stalled = sum(1 for row in newest.values() if not row.is_completed and row.progress_error is None
                  and row.event_time < datetime.now(timezone.utc) - timedelta(days=14))
    assert stalled > 0 and number(figure(watched_page, "Stalled students")) == stalled

    # The chart: an image the page drew from the server's SVG, loaded, with the trend's summary as its text.
    image = page.wait_for_selector("#trend-chart")
    assert page.evaluate("img => img.complete && img.naturalWidth > 0", image)
    alt = image.get_attribute("alt")
    assert alt and alt.startswith("From ") and f"to {course.students:,}" in alt

    # The daily figures (in the table beside the chart) equal the history's, day by day.
    page.click("details summary")
    shown = table_rows(watched_page, "details table")
    daily = {row.day: row for row in expected_daily(history)}
    assert shown, "no days shown"
    last = max(daily)
    for day_text, students, completed, share in shown:
        day = date.fromisoformat(day_text)
        want = daily[min(day, last)]  # after the last change the figures stay as they were
        assert (number(students), number(completed)) == (want.students, want.completed), day_text
        if want.mean_share_done is None:
            assert share == "—"
        else:
            assert abs(Fraction(percent(share)) - want.mean_share_done) <= Fraction(1, 1000) + Fraction(1, 10**9), day_text
    assert date.fromisoformat(shown[-1][0]) == last  # the default window ends at the course's last change
    page.click("details summary")
    watched_page.screenshot("dashboard-course", full_page=True)

    # A chosen window: the form's days reach the API, and the table follows.
    page.fill("#start-day", (last - timedelta(days=6)).isoformat())
    page.fill("#end-day", last.isoformat())
    page.evaluate("document.body.dataset.state = 'loading'")
    page.get_by_role("button", name="Show").click()
    wait_ready(watched_page, "course")
    assert [row[0] for row in table_rows(watched_page, "details table")] == [
        (last - timedelta(days=n)).isoformat() for n in range(6, -1, -1)]


def test_another_accounts_token_sees_none_of_the_first_accounts_courses(site: Site, watched_page: Watched):
    page = watched_page.page
    bodies: list[str] = []
    page.on("response", lambda response: bodies.append(response.text()) if "/api/" in response.url else None)
    sign_in(watched_page, site, site.other)
    wait_ready(watched_page, "accounts")
    assert [row[0] for row in table_rows(watched_page)] == [f"Account {corpus.OTHER}"]
    go(watched_page, f"#/accounts/{corpus.OTHER}", "account")
    assert sorted(row[0] for row in table_rows(watched_page)) == sorted(corpus.OTHER_NAMES)
    home = expected_courses(site, corpus.HOME, include_deleted=True)
    go(watched_page, f"#/accounts/{corpus.HOME}", "error")
    assert "Not found" in page.text_content("#view")
    for course_id in list(home)[:5]:
        go(watched_page, f"#/courses/{course_id}", "error")
        assert "Not found" in page.text_content("#view")
    page.wait_for_load_state("networkidle")
    names = [c.name for c in home.values() if c.name]
    for body in bodies:
        leaked = [name for name in names if name in body or json.dumps(name)[1:-1] in body]
        assert not leaked, f"another account's course names reached this token: {leaked[:3]}"


def test_hostile_course_names_are_shown_as_text(site: Site, watched_page: Watched):
    page = watched_page.page
    sign_in(watched_page, site, site.home, f"#/accounts/{corpus.HOME}?search=img")
    wait_ready(watched_page, "account")
    title = page.title()
    hostile = corpus.HOSTILE_NAMES[0]
    assert [row[0] for row in table_rows(watched_page)] == [hostile]
    assert page.eval_on_selector_all("#view table img", "images => images.length") == 0
    course_id = course_ids_on_page(watched_page)[0]
    go(watched_page, f"#/courses/{course_id}", "course")
    assert page.text_content("#view h1") == hostile
    assert page.title() == title != "pwned"
    for name, term in zip(corpus.HOSTILE_NAMES[1:], ("HYPERLINK", "Latin Rev", "Grundlagen"), strict=True):
        go(watched_page, f"#/accounts/{corpus.HOME}?search={quote(term)}", "account")
        assert [row[0] for row in table_rows(watched_page)] == [name]


def test_the_token_is_kept_for_the_browser_session_only(site: Site, watched_page: Watched, playwright_browser):
    page = watched_page.page
    page.goto(f"{site.url}/dashboard")
    page.wait_for_selector("#token-form", state="visible")
    page.get_by_label("Access token").fill("cpt_not-a-real-token")
    page.get_by_role("button", name="Show the dashboard").click()
    page.wait_for_selector("#sign-in-error:not(:empty)")
    assert "did not accept this token" in page.text_content("#sign-in-error")
    assert page.evaluate("sessionStorage.length") == 0

    sign_in(watched_page, site, site.home)
    assert page.evaluate("Object.keys(sessionStorage)") == ["canvas-progress-token"]
    assert page.evaluate("localStorage.length") == 0 and page.context.cookies() == []
    page.reload()
    wait_ready(watched_page, "accounts")  # the same tab keeps it

    other = playwright_browser.new_context()  # another browser session asks again
    try:
        fresh = other.new_page()
        fresh.goto(f"{site.url}/dashboard")
        fresh.wait_for_selector("#token-form", state="visible")
    finally:
        other.close()

    page.get_by_role("button", name="Forget token").click()
    page.wait_for_selector("#token-form", state="visible")
    assert page.evaluate("sessionStorage.length") == 0


@pytest.mark.parametrize("view", ["sign-in", "accounts", "account", "course"])
def test_each_view_passes_axe_accessibility_checks(site: Site, watched_page: Watched, view: str):
    """axe-core (WCAG 2 A and AA rules: labels, table headers, text alternatives, contrast, landmarks...)."""
    from axe_playwright_python.sync_playwright import Axe

    page = watched_page.page
    if view == "sign-in":
        page.goto(f"{site.url}/dashboard")
        wait_ready(watched_page, "sign-in")
    else:
        hashes = {"accounts": "", "account": f"#/accounts/{corpus.HOME}", "course": f"#/courses/{_busiest(site).id}"}
        sign_in(watched_page, site, site.both, hashes[view])
        wait_ready(watched_page, view)
        if view == "course":
            page.click("details summary")  # the table of days too
    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}})
    violations = results.response["violations"]
    assert not violations, "\n".join(f"{v['id']}: {v['help']} ({len(v['nodes'])} nodes, e.g. {v['nodes'][0]['html'][:200]})"
                                     for v in violations)


def test_a_token_with_many_accounts_sees_them_a_page_at_a_time(site: Site, watched_page: Watched):
    accounts = sorted({corpus.HOME, corpus.OTHER, *range(1, 59)})
    sign_in(watched_page, site, create_token(site.database_url, *accounts))
    wait_ready(watched_page, "accounts")
    first = [row[0] for row in table_rows(watched_page)]
    assert watched_page.page.text_content("#page-position") == "Page 1 of 2"
    watched_page.page.evaluate("document.body.dataset.state = 'loading'")
    watched_page.page.get_by_role("button", name="Next").click()
    wait_ready(watched_page, "accounts")
    second = [row[0] for row in table_rows(watched_page)]
    assert first + second == [f"Account {a}" for a in accounts] and len(first) == PER_PAGE
    empty = [row for row in table_rows(watched_page) if row[0] == "Account 58"][0]
    assert empty[1:4] == ["0", "0", "0"] and empty[4] == "—"  # an account with no courses yet
