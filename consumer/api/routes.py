"""The routes: Account Reports, Course Reports, Progress, and the report file download."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BeforeValidator
from sqlalchemy import Engine, select

from consumer.api.auth import CallerDep, EngineDep, course_account, visible_account, visible_course
from consumer.api.errors import (
    AUTHENTICATED_RESPONSES,
    BODY_RESPONSES,
    LIMIT_RESPONSES,
    NOT_FOUND_RESPONSES,
    bad_request,
    not_found,
    too_many_requests,
)
from consumer.api.requests import DEFAULT_PER_PAGE, MAX_MESSAGE, cancel_message, paginate, report_parameters, window
from consumer.api.schemas import (
    REPORT_TYPES,
    Account,
    AvailableReport,
    Course,
    Progress,
    Report,
    available_json,
    progress_json,
    report_json,
)
from consumer.events.ids import ID_DIGITS, MAX_ID, parse_id, parse_local_id
from consumer.reports import jobs
from consumer.reports.catalogue import REPORTS, ParameterError, ReportDefinition, quoted, validate_parameters
from consumer.reports.jobs import Job
from consumer.store.tables import courses
from consumer.tokens import Caller

router = APIRouter(responses=AUTHENTICATED_RESPONSES)
# What the routes answer besides 400, 401 and 503 (every route).
FOUND = NOT_FOUND_RESPONSES
STARTS = {**NOT_FOUND_RESPONSES, **BODY_RESPONSES, **LIMIT_RESPONSES}
READS_BODY = {**NOT_FOUND_RESPONSES, **BODY_RESPONSES}

# Ids in paths are read by events/ids.py (a refused one is a resource that does not exist: 404);
# the bounds and pattern declared here only document them in the OpenAPI document.
# (Path first: after a validator, FastAPI would document the bounds as ge/le, not minimum/maximum.)
Id = Annotated[int, Path(ge=1, le=MAX_ID), BeforeValidator(parse_id)]
# Canvas answers a course's global id (shard * 10**13 + local id, as Live Events send it) like its local id.
CourseId = Annotated[int, Path(ge=1, le=MAX_ID, description="a course id, local or global (shard * 10**13 + local id)"),
                     BeforeValidator(parse_local_id)]
AccountId = Annotated[str, Path(pattern=f"^(self|{ID_DIGITS})$", description="an account id, or `self` for a token with one account")]
# Documented as an enum of the catalogue's names, but read as text: an unknown one answers 404 naming the available ones.
ReportName = Annotated[str, Path(description="a report type; an unknown one answers 404 naming the available ones",
                                 json_schema_extra=REPORT_TYPES)]
Page = Annotated[int, Query(ge=1, le=1_000_000)]
PerPage = Annotated[int, Query(ge=1, le=10_000, description="at most 100 are returned")]
Parameters = Annotated[dict[str, Any], Depends(report_parameters)]
Message = Annotated[str | None, Depends(cancel_message)]

# null (or an empty form field) is the same as leaving a parameter out.
_PARAMETER_SCHEMA = {
    "include_deleted": {"type": ["boolean", "null"]},
    "course_id": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_ID},
    "start_at": {"type": ["string", "null"], "format": "date-time", "examples": ["2024-08-01T00:00:00Z"]},
    "end_at": {"type": ["string", "null"], "format": "date-time", "examples": ["2024-12-31T00:00:00Z"]},
    "skip_message": {"type": ["boolean", "null"]},
}


def _form_field(schema: dict[str, Any]) -> dict[str, Any]:
    """A form field is text with no null: an empty one leaves the parameter out."""
    kind = schema["type"][0]
    if kind == "string":
        return {"type": "string", "anyOf": [{k: v for k, v in schema.items() if k != "type"}, {"maxLength": 0}]}
    return {**schema, "type": kind}


REPORT_BODY = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {
                # Unknown parameters are refused (400 naming them), so a typo never runs an unfiltered report;
                # `"parameters": null` is the same as none.
                "schema": {"type": "object", "properties": {"parameters": {
                    "type": ["object", "null"], "properties": _PARAMETER_SCHEMA, "additionalProperties": False}}}
            },
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "properties": {
                    f"parameters[{k}]": _form_field(v) for k, v in _PARAMETER_SCHEMA.items()}}
            },
        },
    }
}
# What cancel_message() accepts, declared so clients (and schemathesis) know the limits.
_MESSAGE_SCHEMA = {"type": "string", "maxLength": MAX_MESSAGE, "pattern": "^[^\\x00]*$",
                   "description": f"kept on the Progress; at most {MAX_MESSAGE} characters, no NUL"}
CANCEL_BODY = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {"schema": {"type": "object", "properties": {
                "message": {**_MESSAGE_SCHEMA, "type": ["string", "null"]}}}},  # null: the default message
            "application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {"message": _MESSAGE_SCHEMA}}},
        },
    }
}


def base_url(request: Request) -> str:
    public = request.app.state.public_url
    return public if public else str(request.base_url)


def definition(name: str) -> ReportDefinition:
    found = REPORTS.get(name)
    if found is None:
        raise not_found(f"unknown report {quoted(name)}; available: {', '.join(REPORTS)}")
    return found


def start(request: Request, engine: Engine, caller: Caller, report: ReportDefinition, parameters: dict[str, Any],
          account_id: int, course_id: int | None) -> Report:
    try:
        clean = validate_parameters(report, parameters, course_id)
    except ParameterError as error:
        raise bad_request(str(error)) from None
    if "course_id" in clean and course_account(engine, clean["course_id"]) != account_id:
        # Like GET /courses/:id: a course outside the account is one that does not exist (404, not 400),
        # so ids of other accounts do not leak; the message still names the parameter.
        raise not_found(f"parameters[course_id]: no course {clean['course_id']} in account {account_id}")
    runner = request.app.state.runner
    try:
        job = jobs.create(engine, report=report.name, account_id=account_id, course_id=course_id,
                          token_id=caller.token_id, parameters=clean, limit=runner.jobs_per_account)
    except jobs.QueueFull as full:
        raise too_many_requests(str(full), full.retry_after) from None
    runner.wake()
    return report_json(base_url(request), job)


# --- Accounts and Courses (what canvasapi's get_account / get_course call first) --------


@router.get("/api/v1/accounts", response_model=list[Account], tags=["Accounts"], summary="List accounts")
def list_accounts(request: Request, response: Response, caller: CallerDep, page: Page = 1,
                  per_page: PerPage = DEFAULT_PER_PAGE) -> list[Account]:
    """The accounts the token may see (those it was created for), by id, paginated with Canvas's `Link` header.

    Live Events carry account ids, not names, so only `id` is known.
    """
    accounts = sorted(caller.accounts)
    offset, limit = window(page, per_page)
    paginate(request, response, page, per_page, len(accounts))
    return [Account(id=account) for account in accounts[offset : offset + limit]]


@router.get("/api/v1/accounts/{account_id}", response_model=Account, tags=["Accounts"], summary="Get a single account",
            responses=FOUND)
def show_account(caller: CallerDep, account_id: AccountId) -> Account:
    """One of the token's accounts, by its local or global id, or `self` for a token with one account.

    404 for an account the token may not see, exactly as for one that does not exist.
    """
    return Account(id=visible_account(caller, account_id))


@router.get("/api/v1/courses/{course_id}", response_model=Course, tags=["Courses"], summary="Get a single course",
            responses=FOUND)
def show_course(caller: CallerDep, engine: EngineDep, course_id: CourseId) -> Course:
    """A course the tracker has seen, by its local or global id, as the `courses` table holds it.

    404 for a course not seen yet, or in an account the token may not see.
    """
    visible_course(engine, caller, course_id)
    with engine.connect() as connection:
        row = connection.execute(select(courses).where(courses.c.id == course_id)).one()
    return Course(id=row.id, name=row.name, account_id=row.account_id, sis_course_id=row.sis_source_id, uuid=row.uuid,
                  workflow_state=row.workflow_state, created_at=row.created_at)


# --- Account Reports -------------------------------------------------------------


def account_job(engine: Engine, account_id: int, report: str, job_id: int) -> Job:
    definition(report)  # an unknown report type: 404 naming the available ones
    job = jobs.get(engine, job_id)
    if job is None or job.account_id != account_id or job.course_id is not None or job.report != report:
        raise not_found()
    return job


@router.get("/api/v1/accounts/{account_id}/reports", response_model=list[AvailableReport], tags=["Account Reports"],
            summary="List available reports", responses=FOUND)
def available_reports(request: Request, response: Response, caller: CallerDep, engine: EngineDep, account_id: AccountId,
                      page: Page = 1, per_page: PerPage = DEFAULT_PER_PAGE) -> list[AvailableReport]:
    """Every report type, with the parameters it takes and the account's last run of it (any token's), paginated.

    404 for an account the token may not see.
    """
    account = visible_account(caller, account_id)
    last = jobs.last_runs(engine, account)
    base = base_url(request)
    everything = [
        available_json(d, "account", report_json(base, last[d.name]) if d.name in last else None) for d in REPORTS.values()
    ]
    offset, limit = window(page, per_page)
    paginate(request, response, page, per_page, len(everything))
    return everything[offset : offset + limit]


@router.post("/api/v1/accounts/{account_id}/reports/{report}", response_model=Report, tags=["Account Reports"],
             summary="Start a Report", openapi_extra=REPORT_BODY, responses=STARTS)
def start_account_report(request: Request, caller: CallerDep, engine: EngineDep, account_id: AccountId,
                         report: ReportName, parameters: Parameters) -> Report:
    """Queue a report of the account; follow it with `progress_url`, and download it from `file_url` once complete.

    `parameters` come as JSON (`{"parameters": {...}}`) or as `parameters[name]` form fields or query parameters.
    400 names a parameter that is unknown or has a bad value; 404 is an account the token may not see, an unknown
    report type (the message lists the available ones), or a `parameters[course_id]` outside the account;
    429 when the account already has REPORT_JOBS_PER_ACCOUNT jobs queued or running.
    """
    account = visible_account(caller, account_id)
    return start(request, engine, caller, definition(report), parameters, account, None)


@router.get("/api/v1/accounts/{account_id}/reports/{report}", response_model=list[Report], tags=["Account Reports"],
            summary="Index of Reports", responses=FOUND)
def index_reports(request: Request, response: Response, caller: CallerDep, engine: EngineDep, account_id: AccountId,
                  report: ReportName, page: Page = 1, per_page: PerPage = DEFAULT_PER_PAGE) -> list[Report]:
    """The account's reports of this type (any token's, newest first; deleted ones left out), paginated.

    404 for an account the token may not see or an unknown report type.
    """
    account = visible_account(caller, account_id)
    definition(report)
    offset, limit = window(page, per_page)
    found, total = jobs.page(engine, account_id=account, report=report, offset=offset, limit=limit)
    paginate(request, response, page, per_page, total)
    base = base_url(request)
    return [report_json(base, job) for job in found]


@router.get("/api/v1/accounts/{account_id}/reports/{report}/{id}", response_model=Report, tags=["Account Reports"],
            summary="Status of a Report", responses=FOUND)
def show_report(request: Request, caller: CallerDep, engine: EngineDep, account_id: AccountId, report: ReportName,
                id: Id) -> Report:  # Canvas's name
    """One account report: its status, progress and, once complete, its file.

    404 for an account the token may not see, an unknown report type, or a report that is not of this account
    and type (course reports are under /courses), or was deleted.
    """
    account = visible_account(caller, account_id)
    return report_json(base_url(request), account_job(engine, account, report, id))


@router.delete("/api/v1/accounts/{account_id}/reports/{report}/{id}", response_model=Report, tags=["Account Reports"],
               summary="Delete a Report", responses=FOUND)
def delete_report(request: Request, caller: CallerDep, engine: EngineDep, account_id: AccountId, report: ReportName,
                  id: Id) -> Report:
    """Delete an account report and its file (a running one stops); answers the report with status `deleted`.

    From then on it answers 404, as Canvas does; 404 also as for Status of a Report.
    """
    account = visible_account(caller, account_id)
    account_job(engine, account, report, id)
    deleted = jobs.remove(engine, id)
    if deleted is None:
        raise not_found()
    return report_json(base_url(request), deleted)


@router.put("/api/v1/accounts/{account_id}/reports/{report}/{id}/abort", response_model=Report, tags=["Account Reports"],
            summary="Abort a Report", responses=FOUND)
def abort_report(request: Request, caller: CallerDep, engine: EngineDep, account_id: AccountId, report: ReportName,
                 id: Id) -> Report:
    """Stop a queued or running account report (status `aborted`); a finished one is answered unchanged.

    404 as for Status of a Report.
    """
    account = visible_account(caller, account_id)
    account_job(engine, account, report, id)
    stopped = jobs.stop(engine, id, None)
    if stopped is None:
        raise not_found()
    return report_json(base_url(request), stopped)


# --- Course Reports --------------------------------------------------------------


@router.post("/api/v1/courses/{course_id}/reports/{report_type}", response_model=Report, tags=["Course Reports"],
             summary="Start a Report", openapi_extra=REPORT_BODY, responses=STARTS)
def start_course_report(request: Request, caller: CallerDep, engine: EngineDep, course_id: CourseId, report_type: ReportName,
                        parameters: Parameters) -> Report:
    """Queue a report of one course (Canvas's Course Reports API), in the course's account's queue.

    Parameters as for an account report (`course_id` is the path's). 404 for a course not seen yet or in an account
    the token may not see, or an unknown report type; 429 when the account already has REPORT_JOBS_PER_ACCOUNT jobs
    queued or running.
    """
    account = visible_course(engine, caller, course_id)
    return start(request, engine, caller, definition(report_type), parameters, account, course_id)


@router.get("/api/v1/courses/{course_id}/reports/{report_type}/{id}", response_model=Report, tags=["Course Reports"],
            summary="Status of a Report", responses=FOUND)
def show_course_report(request: Request, caller: CallerDep, engine: EngineDep, course_id: CourseId, report_type: ReportName,
                       id: Id) -> Report:
    """One course report, by id.

    404 for a course the token may not see, an unknown report type, or a report not of this course and type, or deleted.
    """
    visible_course(engine, caller, course_id)
    definition(report_type)
    job = jobs.get(engine, id)
    if job is None or job.course_id != course_id or job.report != report_type or job.account_id not in caller.accounts:
        raise not_found()
    return report_json(base_url(request), job)


@router.get("/api/v1/courses/{course_id}/reports/{report_type}", response_model=Report, tags=["Course Reports"],
            summary="Status of last Report", responses=FOUND)
def last_course_report(request: Request, caller: CallerDep, engine: EngineDep, course_id: CourseId,
                       report_type: ReportName) -> Report:
    """The newest report of this type for the course started by this token (as Canvas scopes it to the user).

    404 for a course the token may not see, an unknown report type, or when this token started none.
    """
    visible_course(engine, caller, course_id)
    definition(report_type)
    job = jobs.last_for_caller(engine, course_id=course_id, report=report_type, token_id=caller.token_id)
    if job is None or job.account_id not in caller.accounts:
        raise not_found(f"no {report_type} report started by this token for course {course_id}")
    return report_json(base_url(request), job)


# --- Progress --------------------------------------------------------------------


def visible_job(engine: Engine, caller: Caller, job_id: int) -> Job:
    job = jobs.get(engine, job_id)
    if job is None or job.account_id not in caller.accounts:
        raise not_found()
    return job


@router.get("/api/v1/progress/{id}", response_model=Progress, response_model_exclude_unset=True, tags=["Progress"],
            summary="Query progress", responses=FOUND)
def show_progress(request: Request, caller: CallerDep, engine: EngineDep, id: Id) -> Progress:
    """The Progress of a report job (its id is the report's), with `results` holding the file's URL once complete.

    404 for a job of an account the token may not see, or a deleted one.
    """
    return progress_json(base_url(request), visible_job(engine, caller, id))


@router.post("/api/v1/progress/{id}/cancel", response_model=Progress, response_model_exclude_unset=True,
             tags=["Progress"], summary="Cancel progress", openapi_extra=CANCEL_BODY, responses=READS_BODY)
def cancel_progress(request: Request, caller: CallerDep, engine: EngineDep, id: Id, message: Message) -> Progress:
    """Stop a queued or running report job (workflow_state `failed`), keeping `message` (default "canceled").

    400 for a message that is not text, holds NUL or is too long; 404 as for Query progress.
    """
    visible_job(engine, caller, id)
    stopped = jobs.stop(engine, id, message if message is not None else "canceled")
    if stopped is None:
        raise not_found()
    return progress_json(base_url(request), stopped)


@router.get("/api/lti/courses/{course_id}/progress/{id}", response_model=Progress, response_model_exclude_unset=True,
            tags=["Progress"], summary="Query progress (LTI)", responses=FOUND)
def show_lti_progress(request: Request, caller: CallerDep, engine: EngineDep, course_id: CourseId, id: Id) -> Progress:
    """The Progress of a course report job, under the course (Canvas's LTI route); its `url` stays under it too.

    404 for a job that is not of this course, or as for Query progress.
    """
    job = visible_job(engine, caller, id)
    if job.course_id != course_id:
        raise not_found()
    return progress_json(base_url(request), job, lti=True)


# --- Files -----------------------------------------------------------------------


@router.get("/files/{id}/download", tags=["Files"], summary="Download a finished report",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "the CSV file"},
                       **FOUND})
def download(caller: CallerDep, engine: EngineDep, id: Id) -> StreamingResponse:
    """The CSV file of a complete report (the Report's `file_url`), with the same token.

    404 for a report of an account the token may not see, one not complete (the message gives its status), or deleted.
    """
    job = visible_job(engine, caller, id)
    if job.status != "complete" or job.file_name is None:
        raise not_found(f"report {id} has no file yet (status {job.status})")
    headers = {"Content-Disposition": f'attachment; filename="{job.file_name}"'}
    if job.file_size is not None:
        headers["Content-Length"] = str(job.file_size)
    return StreamingResponse(jobs.file_chunks(engine, id), media_type="text/csv; charset=utf-8", headers=headers)
