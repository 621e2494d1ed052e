"""The dashboard page (`/dashboard`) and the JSON and SVG it reads, with the same tokens and scoping as the API.

The page itself (consumer/dashboard/static/) holds no data and needs no token: it asks for one, keeps it in
the browser session only (sessionStorage), and sends it with every request below, each answered for the
token's accounts only (a course or account outside them is a 404, as everywhere in the API).
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from consumer.api.auth import CallerDep, EngineDep, visible_account, visible_course
from consumer.api.errors import ERROR_RESPONSES, bad_request, not_found
from consumer.api.requests import paginate, window
from consumer.api.routes import AccountId, CourseId, Page
from consumer.dashboard import chart, queries

router = APIRouter(responses=ERROR_RESPONSES)

# The page and its files: scripts and styles from this server only, images from it or made by the page
# (blob: URLs of the charts it fetched with the token), requests to this server only, never framed.
PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
# A chart opened on its own: an image, nothing in it runs.
CHART_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}
STATIC_FILES = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8"}
MAX_SEARCH = 200

Search = Annotated[str | None, Query(max_length=MAX_SEARCH, pattern="^[^\\x00]*$",
                                     description="only courses whose name contains this text, in any case")]
Sort = Annotated[queries.Sort, Query(description="the column to sort by; empty values sort last")]
Order = Annotated[queries.Order, Query(description="ascending or descending")]
CoursesPerPage = Annotated[int, Query(ge=1, le=10_000, description="at most 100 are returned")]
IncludeDeleted = Annotated[bool, Query(description="also count and list deleted courses")]
Day = Annotated[date | None, Query(description="a UTC day, YYYY-MM-DD; both ends are included")]


class Freshness(BaseModel):
    newest_event_time: datetime | None = Field(description="the newest course or progress event of the account's courses")
    lag_seconds: float | None = Field(description="now minus newest_event_time")


class AccountProgress(BaseModel):
    account_id: int
    courses: int = Field(description="courses of the account (deleted ones only with include_deleted)")
    students: int = Field(description="students with progress in those courses (error bodies left out)")
    completed: int
    completion_rate: float | None = Field(description="completed / students; null without students")
    last_activity: datetime | None = Field(description="the newest progress event in the account")
    freshness: Freshness


class CourseProgress(BaseModel):
    id: int
    name: str | None
    account_id: int | None
    sis_course_id: str | None
    workflow_state: str | None
    students: int
    completed: int
    completion_rate: float | None
    mean_share_done: float | None = Field(description="mean share of requirements done, 0 to 1")
    last_activity: datetime | None


class DayProgress(BaseModel):
    day: date
    students: int
    completed: int
    mean_share_done: float | None


class CourseTrend(BaseModel):
    course: CourseProgress
    stalled_students: int = Field(description="students not completed whose newest event is older than stalled_after_days")
    stalled_after_days: int
    start_at: date
    end_at: date
    days: list[DayProgress] = Field(description="one per day from the course's first day (or start_at) through end_at")
    summary: str = Field(description="the trend in one sentence (the chart's text alternative)")
    freshness: Freshness


def _freshness(connection, account_id: int) -> Freshness:
    newest = queries.account_newest_event(connection, account_id)
    lag = None if newest is None else (datetime.now(timezone.utc) - newest).total_seconds()
    return Freshness(newest_event_time=newest, lag_seconds=lag)


def _course(row: queries.CourseRow) -> CourseProgress:
    return CourseProgress(id=row.id, name=row.name, account_id=row.account_id, sis_course_id=row.sis_source_id, workflow_state=row.workflow_state,
                          students=row.students, completed=row.completed, completion_rate=row.completion_rate,
                          mean_share_done=row.mean_share_done, last_activity=row.last_activity)


def _page_headers(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"  # student figures: not kept by browsers or proxies


@router.get("/api/v1/accounts/{account_id}/progress_summary", response_model=AccountProgress, tags=["Dashboard"],
            summary="An account's progress totals")
def show_account_progress(response: Response, caller: CallerDep, engine: EngineDep, account_id: AccountId,
                          include_deleted: IncludeDeleted = False) -> AccountProgress:
    """Courses, students, completed students and the completion rate of one of the token's accounts (the
    `account_completion` view's figures), and how fresh they are (the newest event of the account's courses). An account outside the token's is a 404."""
    account = visible_account(caller, account_id)
    with engine.connect() as connection:
        totals = queries.account_totals(connection, account, include_deleted)
        freshness = _freshness(connection, account)
    _page_headers(response)
    return AccountProgress(account_id=account, courses=totals.courses, students=totals.students,
                           completed=totals.completed, completion_rate=totals.completion_rate,
                           last_activity=totals.last_activity, freshness=freshness)


@router.get("/api/v1/accounts/{account_id}/course_progress", response_model=list[CourseProgress], tags=["Dashboard"],
            summary="An account's courses with their progress",
            responses={200: {"headers": {
                "Link": {"description": "Canvas's pagination links: current, next, prev, first, last",
                         "schema": {"type": "string"}},
                "X-Total-Count": {"description": "how many courses match, on all pages", "schema": {"type": "integer"}},
            }}})
def list_account_course_progress(request: Request, response: Response, caller: CallerDep, engine: EngineDep,
                                 account_id: AccountId, search_term: Search = None, sort: Sort = "name",
                                 order: Order = "asc", include_deleted: IncludeDeleted = False, page: Page = 1,
                                 per_page: CoursesPerPage = 50) -> list[CourseProgress]:
    """One page of the account's courses (the `course_completion` view): students, completed, completion rate and
    mean share done, sorted and filtered by name in the database, so an account of 10,000 courses answers as fast as
    one of 50. Pages as Canvas does: `page`, `per_page` (at most 100) and a `Link` header."""
    account = visible_account(caller, account_id)
    offset, limit = window(page, per_page)
    with engine.connect() as connection:
        rows, total = queries.course_page(connection, account, search=search_term, sort=sort, order=order,
                                          offset=offset, limit=limit, include_deleted=include_deleted)
    paginate(request, response, page, per_page, total)
    response.headers["X-Total-Count"] = str(total)
    _page_headers(response)
    return [_course(row) for row in rows]


def _trend(engine, caller, course_id: int, start_at: date | None, end_at: date | None):
    account = visible_course(engine, caller, course_id)
    with engine.connect() as connection:
        row = queries.course_row(connection, course_id)
        if row is None:
            raise not_found()
        try:
            trend = queries.trend(connection, course_id, start_at, end_at)
        except ValueError as error:
            raise bad_request(str(error)) from None
        stalled, threshold = queries.stalled(connection, course_id)
        freshness = _freshness(connection, account)
    return row, trend, stalled, threshold, freshness


@router.get("/api/v1/courses/{course_id}/progress_trend", response_model=CourseTrend, tags=["Dashboard"],
            summary="A course's daily progress trend")
def show_course_progress_trend(response: Response, caller: CallerDep, engine: EngineDep, course_id: CourseId,
                               start_at: Day = None, end_at: Day = None) -> CourseTrend:
    """The course's figures per UTC day (the `course_progress_daily` view), its stalled students (the
    `stalled_students` view) and its totals. Without `end_at` the trend ends at the course's last change; without
    `start_at` it covers at most 180 days before that. At most 3,660 days per request (400 beyond)."""
    row, trend, stalled, threshold, freshness = _trend(engine, caller, course_id, start_at, end_at)
    _page_headers(response)
    return CourseTrend(
        course=_course(row), stalled_students=stalled, stalled_after_days=threshold, start_at=trend.start,
        end_at=trend.end, summary=chart.summary(trend.days, trend.start, trend.end), freshness=freshness,
        days=[DayProgress(day=d.day, students=d.students, completed=d.completed, mean_share_done=d.mean_share_done)
              for d in trend.days],
    )


@router.get("/api/v1/courses/{course_id}/progress_trend.svg", tags=["Dashboard"], summary="A course's trend as a chart", response_class=Response,
            responses={200: {"content": {"image/svg+xml": {"schema": {"type": "string"}}},
                             "description": "an SVG image with a title and a text description"}})
def show_course_progress_chart(caller: CallerDep, engine: EngineDep, course_id: CourseId, start_at: Day = None,
                               end_at: Day = None) -> Response:
    """The same days as `progress_trend`, drawn as an SVG image on the server (students and completed; mean share
    done), with a `<title>` and a `<desc>` that says what it shows."""
    row, trend, _, _, _ = _trend(engine, caller, course_id, start_at, end_at)
    name = row.name or f"course {row.id}"
    svg = chart.render(trend.days, trend.start, trend.end, f"Daily progress of {name}")
    return Response(svg, media_type="image/svg+xml",
                    headers={"Content-Security-Policy": CHART_POLICY, "Cache-Control": "no-store", **SECURITY_HEADERS})


# --- The page --------------------------------------------------------------------


def _static(name: str) -> bytes:
    return resources.files("consumer.dashboard").joinpath("static", name).read_bytes()


@router.api_route("/dashboard", methods=["GET", "HEAD"], include_in_schema=False)
def dashboard_page() -> Response:
    return Response(_static("dashboard.html"), media_type="text/html; charset=utf-8",
                    headers={"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-cache", **SECURITY_HEADERS})


@router.api_route("/dashboard/static/{name}", methods=["GET", "HEAD"], include_in_schema=False)
def dashboard_file(name: str) -> Response:
    media_type = STATIC_FILES.get(name)
    if media_type is None:  # only the page's own files, never a path
        raise not_found()
    return Response(_static(name), media_type=media_type, headers={"Cache-Control": "no-cache", **SECURITY_HEADERS})
