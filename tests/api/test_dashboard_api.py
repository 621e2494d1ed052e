"""The dashboard's data endpoints (consumer/api/dashboard.py) against oracles written here from the raw tables.

Property tests run the app in-process (tests/api/asgi.py) on a migrated SQLite file and a real Postgres database
(`backend`): each example writes its own account (a fresh id, a token for it alone) into `courses` and
`course_progress` (the triggers keep course_progress_stats) or sends progress events through the real pipeline
(the history and its daily changes), then compares every answer with a plain Python reading of the raw rows;
consumer/dashboard/queries.py is never used to compute an expectation. The HTTP layer itself (headers of the
page, the static route and raw traversal paths) is tested on a real server (`api`, tests/api/conftest.py).

The search rule checked: a course matches when its name contains the term as a literal substring ('%', '_',
'/' and '\\' are themselves), case folded by Unicode lower case (Python's str.lower for the letters used
here). Names in the random corpora are cased in ASCII only; non-ASCII case is its own test, which SQLite fails:
its lower() folds only ASCII (see test_search_folds_non_ascii_case_on_every_database).
Name order: lower(name) in code point order, which is Postgres's order under the C / C.UTF-8 collation of the
test server and SQLite's binary order; under a linguistic collation (en_US.UTF-8) Postgres orders differently.
"""

from __future__ import annotations

import http.client
import itertools
import json
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from fractions import Fraction
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, insert, select, text, update

from consumer.api.app import create_app
from consumer.dashboard import chart
from consumer.reports.runner import ReportRunner
from consumer.store.engine import make_engine
from consumer.store.migrate import upgrade
from consumer.store.tables import course_progress, course_progress_history, courses
from consumer.tokens import create_token
from tests.api.asgi import Answer, call
from tests.factory import progress_event
from tests.helpers import apply_events

PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                            HealthCheck.too_slow])
SORTS = ("name", "students", "completed", "completion_rate", "mean_share_done", "last_activity", "id")
NOT_FOUND_BODY = {"errors": [{"message": "The specified resource does not exist."}]}
BASE_TIME = datetime(2019, 9, 1, 8, tzinfo=timezone.utc)
# Cased in ASCII only (see the module's docstring); LIKE's metacharacters, quotes, escapes, an RTL override,
# characters without case, an astral one.
NAME_CHARACTERS = "aAbBxX%_'\"\\/ -.€ß中\u202e\U0001f600"

_accounts = itertools.count(5_000)
_courses = itertools.count(500_000)
_users = itertools.count(1_000)


@dataclass
class Backend:
    kind: str
    engine: Engine
    app: Any

    def get(self, path: str, token: str | None, **params: Any) -> Answer:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        answer = call(self.app, "GET", path, query=urlencode(params).encode(), headers=headers)
        assert answer.status < 500, (path, params, answer.status, answer.body[:500])
        return answer

    def account(self) -> tuple[int, str]:
        """A new account no other example uses, and a token for it alone."""
        account = next(_accounts)
        return account, create_token(self.engine, [account], "dashboard test")[1]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('dashboard') / 'dashboard.db'}"
    else:
        url = request.getfixturevalue("new_pg_database")()
    engine = make_engine(url)
    upgrade(engine)
    yield Backend(request.param, engine, create_app(engine, ReportRunner(engine)))
    engine.dispose()


# --- corpora of courses --------------------------------------------------------------------------------------

student = st.fixed_dictionaries({
    "error": st.sampled_from([None, None, None, "not a student"]),
    "total": st.sampled_from([None, 0, 1, 2, 4, 8]),  # shares are exact binary fractions: sorts see no rounding
    "done": st.integers(0, 8) | st.none(),
    "completed": st.booleans(),
    "minutes": st.integers(0, 6).map(lambda n: n * 1440 + 7),  # a few distinct times: last_activity ties
})
# Words in case variants (equal keys under lower(): the id breaks the tie), and text around them.
WORDS = ("alpha", "Alpha", "ALPHA", "beta", "Beta", "b'eta", "_beta", "%", "50% off", "a_b", "axb", "Zulu", "zulu", "\\x", "/x")
word_name = st.tuples(st.text(NAME_CHARACTERS, max_size=2), st.sampled_from(WORDS), st.text(NAME_CHARACTERS, max_size=2)).map("".join)
course = st.fixed_dictionaries({
    "name": st.none() | st.just("") | st.text(NAME_CHARACTERS, max_size=10) | word_name | word_name,
    "state": st.sampled_from([None, "available", "available", "deleted", "claimed", "completed"]),
    "students": st.lists(student, max_size=5),
})
corpus = st.lists(course, max_size=14)


def write_corpus(engine: Engine, account: int, drawn: list[dict]) -> None:
    with engine.begin() as connection:
        for entry in drawn:
            course_id = next(_courses)
            connection.execute(insert(courses).values(id=course_id, account_id=account, name=entry["name"],
                                                      workflow_state=entry["state"], sis_source_id=f"SIS-{course_id}"))
            for s in entry["students"]:
                total = s["total"]
                done = None if s["done"] is None or total is None else min(s["done"], total)
                connection.execute(insert(course_progress).values(
                    course_id=course_id, user_id=next(_users), requirement_count=total, requirement_completed_count=done,
                    is_completed=s["completed"], progress_error=s["error"],
                    last_event_name="course_completed" if s["completed"] else "course_progress",
                    last_event_time=BASE_TIME + timedelta(minutes=s["minutes"])))


@dataclass
class Expected:
    id: int
    name: str | None
    state: str | None
    students: int
    completed: int
    completion_rate: Fraction | None
    mean_share_done: Fraction | None
    last_activity: datetime | None


def oracle_courses(engine: Engine, account: int) -> list[Expected]:
    """Each course of the account with its figures, from `courses` and `course_progress` as stored."""
    with engine.connect() as connection:
        rows = connection.execute(select(courses.c.id, courses.c.name, courses.c.workflow_state)
                                  .where(courses.c.account_id == account)).all()
        progress = defaultdict(list)
        for p in connection.execute(select(course_progress).where(course_progress.c.course_id.in_([r.id for r in rows]))):
            progress[p.course_id].append(p)
    found = []
    for r in rows:
        counted = [p for p in progress[r.id] if p.progress_error is None]
        done = [p for p in counted if p.is_completed]
        shares = [Fraction(p.requirement_completed_count, p.requirement_count) for p in counted
                  if p.requirement_count and p.requirement_completed_count is not None]
        times = [p.last_event_time for p in progress[r.id]]
        found.append(Expected(r.id, r.name, r.workflow_state, len(counted), len(done),
                              Fraction(len(done), len(counted)) if counted else None,
                              sum(shares) / len(shares) if shares else None, max(times) if times else None))
    return found


def fold(text_: str) -> str:
    return text_.lower()


def oracle_list(found: list[Expected], sort: str, order: str, search: str, include_deleted: bool) -> list[Expected]:
    matching = [c for c in found if (include_deleted or c.state != "deleted")
                and (not search or (c.name is not None and fold(search) in fold(c.name)))]
    key = {"name": lambda c: None if c.name is None else fold(c.name), "id": lambda c: c.id}.get(
        sort, lambda c: getattr(c, sort))
    by_id = sorted(matching, key=lambda c: c.id)
    valued = sorted((c for c in by_id if key(c) is not None), key=key, reverse=order == "desc")  # stable: ids ascending
    return valued + [c for c in by_id if key(c) is None]


def close(got: float | None, wanted: Fraction | None) -> bool:
    return got is None if wanted is None else got is not None and abs(got - float(wanted)) <= 1e-6


def same_course(got: dict, wanted: Expected, account: int) -> bool:
    last = None if got["last_activity"] is None else datetime.fromisoformat(got["last_activity"])
    return (got["id"] == wanted.id and got["name"] == wanted.name and got["account_id"] == account
            and got["workflow_state"] == wanted.state and got["sis_course_id"] == f"SIS-{wanted.id}"
            and got["students"] == wanted.students and got["completed"] == wanted.completed
            and close(got["completion_rate"], wanted.completion_rate) and close(got["mean_share_done"], wanted.mean_share_done)
            and last == wanted.last_activity)


def links(answer: Answer) -> dict[str, dict[str, list[str]]]:
    """rel -> the query of its URL."""
    return {rel: parse_qs(urlsplit(url).query) for url, rel in re.findall(r'<([^>]*)>; rel="([a-z]+)"', answer.headers["link"])}


# --- course_progress ----------------------------------------------------------------------------------------

@PROPERTY
@given(drawn=corpus, data=st.data())
def test_every_page_is_the_oracles_slice_and_the_pages_cover_the_matches_once(backend, drawn, data) -> None:
    account, token = backend.account()
    write_corpus(backend.engine, account, drawn)
    found = oracle_courses(backend.engine, account)
    sort, order = data.draw(st.sampled_from(SORTS), "sort"), data.draw(st.sampled_from(["asc", "desc"]), "order")
    include_deleted = data.draw(st.booleans(), "include_deleted")
    named = [c.name for c in found if c.name]
    if named and data.draw(st.booleans(), "search in a name"):  # a piece of a name, case changed in ASCII
        name = data.draw(st.sampled_from(named))
        start = data.draw(st.integers(0, len(name) - 1))
        piece = name[start:start + data.draw(st.integers(1, 4))]
        search = "".join(ch.swapcase() if ch.isascii() and data.draw(st.booleans()) else ch for ch in piece)
    else:
        search = data.draw(st.text(NAME_CHARACTERS, max_size=3), "search")
    per_page = data.draw(st.integers(1, 120), "per_page")
    wanted = oracle_list(found, sort, order, search, include_deleted)
    size = min(per_page, 100)
    last = max(1, -(-len(wanted) // size))
    params = {"sort": sort, "order": order, "include_deleted": str(include_deleted).lower(), "per_page": per_page}
    if search:
        params["search_term"] = search
    seen: list[dict] = []
    for page in range(1, last + 2):  # and one past the end: empty
        answer = backend.get(f"/api/v1/accounts/{account}/course_progress", token, page=page, **params)
        assert answer.status == 200, answer.body
        body = json.loads(answer.body)
        expected_page = wanted[(page - 1) * size: page * size]
        assert [c["id"] for c in body] == [c.id for c in expected_page], (page, search, sort, order)
        assert all(same_course(g, w, account) for g, w in zip(body, expected_page, strict=True)), (body, expected_page)
        assert answer.headers["x-total-count"] == str(len(wanted))
        rels = links(answer)
        assert rels["last"]["page"] == [str(last)] and rels["last"]["per_page"] == [str(size)]
        assert rels["current"]["page"] == [str(page)] and ("next" in rels) == (page < last)
        if search:
            assert rels["last"]["search_term"] == [search]  # the filter kept in the links
        seen += body
    assert [c["id"] for c in seen] == [c.id for c in wanted]  # every match exactly once, in order


def test_names_sort_by_lower_case_then_id_with_no_name_last(backend) -> None:
    account, token = backend.account()
    names = ["b", "B", "a", None, "A", "", "_", "Z", "%", None, "a"]
    write_corpus(backend.engine, account, [{"name": n, "state": None, "students": []} for n in names])
    ids = {c.id: c.name for c in oracle_courses(backend.engine, account)}
    assert len(ids) == len(names)
    for order, wanted in (("asc", ["", "%", "_", "a", "A", "a", "b", "B", "Z", None, None]),
                          ("desc", ["Z", "b", "B", "a", "A", "a", "_", "%", "", None, None])):
        answer = backend.get(f"/api/v1/accounts/{account}/course_progress", token, sort="name", order=order)
        got = json.loads(answer.body)
        assert [c["name"] for c in got] == wanted, (order, [c["name"] for c in got])
        tied = [c["id"] for c in got if c["name"] in ("a", "A")]
        assert tied == sorted(tied)  # equal keys: ids ascending, in both orders
        nameless = [c["id"] for c in got if c["name"] is None]
        assert nameless == sorted(i for i, n in ids.items() if n is None)


def test_search_terms_are_literal_text(backend) -> None:
    account, token = backend.account()
    names = ["100% done", "1000 done", "a_b", "axb", "O'Brien", "back\\slash", "slash/ed", "%", "_", "", None]
    write_corpus(backend.engine, account, [{"name": n, "state": None, "students": []} for n in names])
    found = oracle_courses(backend.engine, account)
    for term, matches in (("0%", ["100% done"]), ("%", ["100% done", "%"]), ("_", ["a_b", "_"]), ("a_b", ["a_b"]),
                          ("'b", ["O'Brien"]), ("\\", ["back\\slash"]), ("/", ["slash/ed"]), ("o'BRIEN", ["O'Brien"]),
                          ("//", []), ("\\\\", [])):
        answer = backend.get(f"/api/v1/accounts/{account}/course_progress", token, search_term=term, sort="id")
        assert answer.status == 200, answer.body
        got = [c["name"] for c in json.loads(answer.body)]
        assert sorted(got) == sorted(matches), (term, got)
        assert got == [c.name for c in oracle_list(found, "id", "asc", term, False)]


def test_search_folds_non_ascii_case_on_every_database(backend) -> None:
    """A case-insensitive search finds 'École' from 'éco' and 'ЖУРНАЛ' from 'журнал', on Postgres (lower()) and on
    SQLite (whose lower() folds ASCII only: the store's fold_case() does it there)."""
    account, token = backend.account()
    names = ["École normale", "ЖУРНАЛ", "Ärger", "ascii ONLY"]
    write_corpus(backend.engine, account, [{"name": n, "state": None, "students": []} for n in names])
    for term, wanted in (("éco", "École normale"), ("ÉCO", "École normale"), ("журнал", "ЖУРНАЛ"), ("äR", "Ärger"),
                         ("only", "ascii ONLY")):
        answer = backend.get(f"/api/v1/accounts/{account}/course_progress", token, search_term=term)
        assert [c["name"] for c in json.loads(answer.body)] == [wanted], (backend.kind, term)


# --- progress_summary ---------------------------------------------------------------------------------------

@PROPERTY
@given(drawn=corpus, include_deleted=st.booleans())
def test_account_totals_are_the_sums_of_its_courses(backend, drawn, include_deleted) -> None:
    account, token = backend.account()
    write_corpus(backend.engine, account, drawn)
    counted = [c for c in oracle_courses(backend.engine, account) if include_deleted or c.state != "deleted"]
    answer = backend.get(f"/api/v1/accounts/{account}/progress_summary", token, include_deleted=str(include_deleted).lower())
    assert answer.status == 200 and answer.headers["cache-control"] == "no-store"
    body = json.loads(answer.body)
    students, completed = sum(c.students for c in counted), sum(c.completed for c in counted)
    times = [c.last_activity for c in counted if c.last_activity is not None]
    assert (body["account_id"], body["courses"], body["students"], body["completed"]) == (account, len(counted), students, completed)
    assert close(body["completion_rate"], Fraction(completed, students) if students else None)
    assert (None if body["last_activity"] is None else datetime.fromisoformat(body["last_activity"])) == (max(times) if times else None)
    newest = body["freshness"]["newest_event_time"]
    assert (None if newest is None else datetime.fromisoformat(newest)) == newest_of_account(backend.engine, account)


def newest_of_account(engine: Engine, account: int) -> datetime | None:
    """The newest course or progress event of the account's courses (deleted ones too): never another account's."""
    with engine.connect() as connection:
        values = [v for row in connection.execute(text(
            "SELECT course_event_time, progress_event_time FROM courses WHERE account_id = :a"), {"a": account})
            for v in row if v is not None]
    parsed = [v if isinstance(v, datetime) else datetime.fromisoformat(str(v)) for v in values]
    return max((p if p.tzinfo else p.replace(tzinfo=timezone.utc) for p in parsed), default=None)


# --- progress_trend -----------------------------------------------------------------------------------------

history_event = st.fixed_dictionaries({
    "user": st.integers(0, 3),
    "minute": st.integers(0, 20 * 1440),  # 20 days
    "kind": st.sampled_from(["progress", "progress", "completed", "error"]),
    "total": st.sampled_from([0, 3, 4, 7]),
    "done": st.integers(0, 8),
})


def send_history(engine: Engine, account: int, course_id: int, drawn: list[dict]) -> None:
    events, seen = [], set()
    for e in drawn:
        if (e["user"], e["minute"]) in seen:  # one event per student and instant (the history's key)
            continue
        seen.add((e["user"], e["minute"]))
        when = (BASE_TIME + timedelta(minutes=e["minute"])).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = progress_event(when, course_id=str(course_id), user_id=str(course_id * 10 + e["user"]), done=e["done"],
                               total=e["total"], event_name="course_completed" if e["kind"] == "completed" else "course_progress",
                               completed_at=when if e["kind"] == "completed" else None,
                               error="not a student" if e["kind"] == "error" else None, course_name=f"Course {course_id}")
        event["body"]["course"]["account_id"] = str(account)
        events.append(event)
    counts = apply_events(engine, events)
    assert counts.rejected == 0


def oracle_days(engine: Engine, course_id: int, start: date, end: date) -> list[tuple]:
    """(day, students, completed, mean share done) for each day of start..end from the course's first event's day:
    every student's newest history row before the next UTC midnight, error bodies left out."""
    with engine.connect() as connection:
        rows = connection.execute(select(course_progress_history).where(course_progress_history.c.course_id == course_id)
                                  .order_by(course_progress_history.c.event_time)).all()
    if not rows:
        return []
    first = min(r.event_time.astimezone(timezone.utc).date() for r in rows)
    days = []
    day = max(start, first)
    while day <= end:
        midnight = datetime.combine(day + timedelta(days=1), datetime.min.time(), timezone.utc)
        newest = {}
        for r in rows:
            if r.event_time < midnight:
                newest[r.user_id] = r
        counted = [r for r in newest.values() if r.progress_error is None]
        shares = [Fraction(min(r.requirement_completed_count, r.requirement_count), r.requirement_count)
                  for r in counted if r.requirement_count and r.requirement_completed_count is not None]
        days.append((day, len(counted), sum(1 for r in counted if r.is_completed),
                     sum(shares) / len(shares) if shares else None))
        day += timedelta(days=1)
    return days


def history_bounds(engine: Engine, course_id: int) -> tuple[date, date]:
    with engine.connect() as connection:
        times = connection.execute(select(course_progress_history.c.event_time)
                                   .where(course_progress_history.c.course_id == course_id)).scalars().all()
    days = [t.astimezone(timezone.utc).date() for t in times]
    return min(days), max(days)


def same_days(got: list[dict], wanted: list[tuple]) -> bool:
    return len(got) == len(wanted) and all(
        (date.fromisoformat(g["day"]), g["students"], g["completed"]) == w[:3] and close(g["mean_share_done"], w[3])
        for g, w in zip(got, wanted, strict=True))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(drawn=st.lists(history_event, min_size=1, max_size=12), data=st.data())
def test_trend_days_are_each_students_newest_event_of_the_day_carried_forward(backend, drawn, data) -> None:
    account, token = backend.account()
    course_id = next(_courses)
    send_history(backend.engine, account, course_id, drawn)
    first, last = history_bounds(backend.engine, course_id)
    path = f"/api/v1/courses/{course_id}/progress_trend"
    # Without a window: the last change's day, and up to 180 days before it (from the first change).
    answer = backend.get(path, token)
    assert answer.status == 200, answer.body
    body = json.loads(answer.body)
    assert (body["start_at"], body["end_at"]) == (first.isoformat(), last.isoformat())
    assert same_days(body["days"], oracle_days(backend.engine, course_id, first, last)), body["days"]
    # Windows before the first change, after the last, one day, crossing both.
    windows = [(first - timedelta(days=9), first - timedelta(days=1)), (last + timedelta(days=3), last + timedelta(days=40)),
               (first - timedelta(days=2), last + timedelta(days=2))]
    offset = data.draw(st.integers(-5, (last - first).days + 5), "start offset")
    start = first + timedelta(days=offset)
    windows += [(start, start), (start, start + timedelta(days=data.draw(st.integers(0, 30), "length")))]
    for start, end in windows:
        answer = backend.get(path, token, start_at=start.isoformat(), end_at=end.isoformat())
        assert answer.status == 200, answer.body
        body = json.loads(answer.body)
        assert (body["start_at"], body["end_at"]) == (start.isoformat(), end.isoformat())
        wanted = oracle_days(backend.engine, course_id, start, end)
        assert same_days(body["days"], wanted), (start, end, body["days"], wanted)
        shown = [SimpleNamespace(day=date.fromisoformat(d["day"]), students=d["students"], completed=d["completed"],
                                 mean_share_done=d["mean_share_done"]) for d in body["days"]]
        assert body["summary"] == chart.summary(shown, start, end)
        if not wanted:
            assert body["summary"].startswith("No progress recorded")
        else:
            assert f"From {wanted[0][0].isoformat()} to {wanted[-1][0].isoformat()}" in body["summary"]
        svg = backend.get(path + ".svg", token, start_at=start.isoformat(), end_at=end.isoformat())
        assert svg.status == 200 and ET.fromstring(svg.body).tag == "{http://www.w3.org/2000/svg}svg"
    # Stalled: students not completed, no error body, newest event older than 14 days (all of 2019 is).
    with backend.engine.connect() as connection:
        current = connection.execute(select(course_progress).where(course_progress.c.course_id == course_id)).all()
    body = json.loads(backend.get(path, token).body)
    assert body["stalled_students"] == sum(1 for p in current if not p.is_completed and p.progress_error is None)
    assert body["stalled_after_days"] == 14


def test_a_course_without_history_has_no_days(backend) -> None:
    account, token = backend.account()
    write_corpus(backend.engine, account, [{"name": "empty", "state": None, "students": []}])
    course_id = oracle_courses(backend.engine, account)[0].id
    answer = backend.get(f"/api/v1/courses/{course_id}/progress_trend", token, start_at="2019-01-01", end_at="2019-01-31")
    body = json.loads(answer.body)
    assert answer.status == 200 and body["days"] == [] and body["stalled_students"] == 0
    assert body["summary"] == "No progress recorded for this course from 2019-01-01 to 2019-01-31."
    svg = backend.get(f"/api/v1/courses/{course_id}/progress_trend.svg", token)
    assert svg.status == 200 and ET.fromstring(svg.body) is not None


# --- scoping ------------------------------------------------------------------------------------------------

def endpoints(account: str, course: str) -> list[tuple[str, dict]]:
    return [(f"/api/v1/accounts/{account}/progress_summary", {}),
            (f"/api/v1/accounts/{account}/progress_summary", {"include_deleted": "true"}),
            (f"/api/v1/accounts/{account}/course_progress", {}),
            (f"/api/v1/accounts/{account}/course_progress", {"search_term": "a", "sort": "completion_rate", "per_page": 5}),
            (f"/api/v1/courses/{course}/progress_trend", {}),
            (f"/api/v1/courses/{course}/progress_trend", {"start_at": "2019-09-01", "end_at": "2019-09-30"}),
            (f"/api/v1/courses/{course}/progress_trend.svg", {}),
            (f"/api/v1/courses/{course}/progress_trend.svg", {"start_at": "2019-09-01", "end_at": "2019-09-30"})]


def test_another_accounts_token_gets_404_as_for_nothing_and_never_its_data(backend) -> None:
    account, token = backend.account()
    write_corpus(backend.engine, account, [{"name": "Secret <b>course</b>", "state": state, "students": [
        {"error": None, "total": 4, "done": 2, "completed": False, "minutes": 7}]} for state in ("available", "deleted")])
    course_id = next(_courses)
    send_history(backend.engine, account, course_id, [{"user": 0, "minute": 60, "kind": "progress", "total": 4, "done": 1}])
    mine = [c.id for c in oracle_courses(backend.engine, account)]
    other, other_token = backend.account()
    write_corpus(backend.engine, other, [{"name": "Open", "state": None, "students": []}])
    both_id, both = create_token(backend.engine, [account, other], "two accounts")
    missing = {(p, json.dumps(q)): backend.get(p, other_token, **q) for p, q in endpoints("424242", "424242")}
    assert all(a.status == 404 and json.loads(a.body) == NOT_FOUND_BODY for a in missing.values())
    for account_id in (str(account), f"1{account:013d}", f"27{account:013d}"):
        for course in mine:
            for form in (str(course), f"1{course:013d}"):
                for (path, query), nothing in zip(endpoints(account_id, form), missing.values(), strict=True):
                    answer = backend.get(path, other_token, **query)
                    assert (answer.status, answer.body) == (404, nothing.body), (path, query, answer.body)
                    assert b"Secret" not in answer.body
                    assert backend.get(path, token, **query).status == 200, (path, query)  # the owner sees it
                    assert backend.get(path, both, **query).status == 200
    # `self` is the token's own account: the other account's data only.
    listed = json.loads(backend.get("/api/v1/accounts/self/course_progress", other_token, include_deleted="true").body)
    assert [c["name"] for c in listed] == ["Open"]
    summary = json.loads(backend.get("/api/v1/accounts/self/progress_summary", other_token, include_deleted="true").body)
    assert (summary["account_id"], summary["courses"], summary["students"]) == (other, 1, 0)
    # `self` names no account for a token with two.
    assert backend.get("/api/v1/accounts/self/progress_summary", both).status == 404
    assert both_id


def test_no_token_or_a_bad_one_is_401_everywhere(backend) -> None:
    account, token = backend.account()
    write_corpus(backend.engine, account, [{"name": "x", "state": None, "students": []}])
    course = oracle_courses(backend.engine, account)[0].id
    for path, query in endpoints(str(account), str(course)) + endpoints("424242", "424242"):
        for sent in (None, "", "not-a-token", token[:-2] + "xx"):
            answer = backend.get(path, sent, **query) if sent is not None else backend.get(path, None, **query)
            assert answer.status == 401, (path, sent, answer.body)
            assert "www-authenticate" in answer.headers and json.loads(answer.body)["errors"]
    # the token as access_token works, and is left out of the Link header
    answer = backend.get(f"/api/v1/accounts/{account}/course_progress", None, access_token=token, per_page=1)
    assert answer.status == 200 and token not in answer.headers["link"] and "access_token" not in answer.headers["link"]


# --- bad parameters -----------------------------------------------------------------------------------------

BAD_LIST = [({"sort": "bogus"}, "sort"), ({"sort": "NAME"}, "sort"), ({"order": "up"}, "order"),
            ({"per_page": "0"}, "per_page"), ({"per_page": "x"}, "per_page"), ({"per_page": "10001"}, "per_page"),
            ({"page": "0"}, "page"), ({"page": "-1"}, "page"), ({"search_term": "a" * 201}, "search_term"),
            ({"search_term": "a\x00b"}, "search_term"), ({"include_deleted": "maybe"}, "include_deleted")]
BAD_TREND = [({"start_at": "2019-02-30"}, "start_at"), ({"end_at": "yesterday"}, "end_at"),
             ({"start_at": "2019-09-02", "end_at": "2019-09-01"}, "start_at"),
             ({"start_at": "2009-01-01", "end_at": (date(2009, 1, 1) + timedelta(days=3660)).isoformat()}, "start_at"),
             ({"start_at": "0001-01-01", "end_at": "9999-12-31"}, "start_at"),
             ({"end_at": "2019-09-01"}, None)]  # without start_at: 180 days, fine


LONGEST_END = (date(2009, 1, 1) + timedelta(days=3659)).isoformat()  # 3,660 days, both ends included


def test_bad_parameters_are_400_naming_the_parameter(backend) -> None:
    account, token = backend.account()
    course_id = next(_courses)
    send_history(backend.engine, account, course_id, [{"user": 0, "minute": 60, "kind": "progress", "total": 4, "done": 1}])
    for query, named in BAD_LIST:
        answer = backend.get(f"/api/v1/accounts/{account}/course_progress", token, **query)
        assert answer.status == 400, (query, answer.body)
        message = json.loads(answer.body)["errors"][0]["message"]
        assert message.startswith(named), (query, message)
        assert "\x00" not in message
    for suffix in ("", ".svg"):
        for query, named in BAD_TREND:
            answer = backend.get(f"/api/v1/courses/{course_id}/progress_trend{suffix}", token, **query)
            if named is None:
                assert answer.status == 200, (query, answer.body)
                continue
            assert answer.status == 400, (suffix, query, answer.body)
            assert named in json.loads(answer.body)["errors"][0]["message"], (query, answer.body)
        # the longest window allowed: 3,660 days, both ends included
        answer = backend.get(f"/api/v1/courses/{course_id}/progress_trend{suffix}", token, start_at="2009-01-01",
                             end_at=LONGEST_END)
        assert answer.status == 200, answer.body
    assert len(json.loads(backend.get(f"/api/v1/courses/{course_id}/progress_trend", token, start_at="2009-01-01",
                                      end_at=LONGEST_END).body)["days"]) == 0  # all before the course's first change
    # search_term of exactly 200 characters is fine
    assert backend.get(f"/api/v1/accounts/{account}/course_progress", token, search_term="é" * 200).status == 200


# --- the chart ----------------------------------------------------------------------------------------------

SVG = "{http://www.w3.org/2000/svg}"
CHART_ELEMENTS = {f"{SVG}{name}" for name in ("svg", "title", "desc", "rect", "line", "text", "polyline", "circle")}
hostile_name = (st.text(max_size=300) | st.sampled_from([
    "<script>alert(1)</script>", "]]><x/>", "&amp; &lt; & &#0; &#x1b;", "\x00\x1b[31m red \x07", "\u202eevil\u202c",
    "<svg onload=alert(1)>", "a" * 10_000, "' \" ` < > &", "\ufeff\ufffe\uffff", "<!--", "<?xml version='1.0'?>",
]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=hostile_name)
def test_the_chart_is_well_formed_for_any_course_name(svg_course, name) -> None:
    backend, token, course_id = svg_course
    if backend.kind == "postgresql":
        name = name.replace("\x00", "")  # Postgres text cannot hold NUL (the pipeline never stores one)
    with backend.engine.begin() as connection:
        connection.execute(update(courses).where(courses.c.id == course_id).values(name=name))
    answer = backend.get(f"/api/v1/courses/{course_id}/progress_trend.svg", token)
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("image/svg+xml")
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    root = ET.fromstring(answer.body)  # well-formed XML, or this raises
    elements = list(root.iter())
    assert {e.tag for e in elements} <= CHART_ELEMENTS, {e.tag for e in elements} - CHART_ELEMENTS
    assert not any(attribute.lower().startswith("on") for e in elements for attribute in e.attrib)
    title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert title is not None and title.text.startswith("Daily progress of ") and len(title.text) < 2_000
    assert desc is not None and desc.text
    body = answer.text()
    # The name reaches the markup escaped: the title's raw text holds no "<" and no "&" that starts no entity
    # (a bare `name not in body` failed for a name such as "<", which any SVG holds).
    raw_title = body.split('<title id="chart-title">', 1)[1].split("</title>", 1)[0]
    assert "<" not in raw_title and not re.search(r"&(?!(?:lt|gt|amp|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);)", raw_title), raw_title
    assert "\x00" not in body and "\x1b" not in body and "\u202e" not in body


@pytest.fixture(scope="module")
def svg_course(backend):
    account, token = backend.account()
    course_id = next(_courses)
    send_history(backend.engine, account, course_id, [{"user": u, "minute": u * 1500, "kind": "progress", "total": 4,
                                                       "done": u} for u in range(3)])
    return backend, token, course_id


# --- the page and its files (a real server) -----------------------------------------------------------------

def raw_get(url: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET with the path exactly as given (no client normalises its dot segments or %-escapes)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_the_page_and_its_two_files_and_nothing_else(api) -> None:
    page = requests.get(f"{api.url}/dashboard", timeout=10)  # no token: the page holds no data
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    for name, media in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        status, headers, body = raw_get(api.url, f"/dashboard/static/{name}")
        assert status == 200 and headers["content-type"].startswith(media) and body
        assert headers["x-content-type-options"] == "nosniff"
    for path in ("/dashboard/static/dashboard.html", "/dashboard/static/..%2fdashboard.html", "/dashboard/static/..%2F..%2Fapp.py",
                 "/dashboard/static/%2e%2e%2f%2e%2e%2fapi%2fauth.py", "/dashboard/static/../../../pyproject.toml",
                 "/dashboard/static/..%5c..%5capp.py", "/dashboard/static/dashboard.js%00", "/dashboard/static/DASHBOARD.JS",
                 "/dashboard/static/dashboard.js.map", "/dashboard/static/%2fetc%2fpasswd", "/dashboard/static/__init__.py",
                 "/dashboard/static/.", "/dashboard/static/..", "/dashboard/static/dashboard.js%2f..%2fdashboard.html"):
        status, _, body = raw_get(api.url, path)
        assert status == 404, (path, status, body[:200])
        assert b"import" not in body and b"root:" not in body and b"<html" not in body.lower(), path
