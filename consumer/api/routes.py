"""The routes: Account Reports, Course Reports, Progress, and the report file download."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BeforeValidator
from sqlalchemy import Engine, select

from consumer.api.auth import CallerDep, EngineDep, course_account, visible_account, visible_course
from consumer.api.errors import ERROR_RESPONSES, LIMIT_RESPONSES, bad_request, not_found, too_many_requests
from consumer.api.requests import DEFAULT_PER_PAGE, MAX_MESSAGE, cancel_message, paginate, report_parameters, window
from consumer.api.schemas import (
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

router = APIRouter(responses=ERROR_RESPONSES)

# Ids in paths are read by events/ids.py (a refused one is a resource that does not exist: 404);
# the bounds and pattern declared here only document them in the OpenAPI document.
# (Path first: after a validator, FastAPI would document the bounds as ge/le, not minimum/maximum.)
Id = Annotated[int, Path(ge=1, le=MAX_ID), BeforeValidator(parse_id)]
# Canvas answers a course's global id (shard * 10**13 + local id, as Live Events send it) like its local id.
CourseId = Annotated[int, Path(ge=1, le=MAX_ID, description="a course id, local or global (shard * 10**13 + local id)"),
                     BeforeValidator(parse_local_id)]
AccountId = Annotated[str, Path(pattern=f"^(self|{ID_DIGITS})$", description="an account id, or `self` for a token with one account")]
ReportName = Annotated[str, Path(description="a report type, e.g. course_progress_csv")]
Page = Annotated[int, Query(ge=1, le=1_000_000)]
PerPage = Annotated[int, Query(ge=1, le=10_000, description="at most 100 are returned")]
Parameters = Annotated[dict[str, Any], Depends(report_parameters)]
Message = Annotated[str | None, Depends(cancel_message)]

# null (or an empty form field) is the same as leaving a parameter out.
_PARAMETER_SCHEMA = {
    "include_deleted": {"type": ["boolean", "null"]},
    "course_id": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_ID},
    "start_at": {"type": ["string", "null"], "format": "date-time"},
    "end_at": {"type": ["string", "null"], "format": "date-time"},
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
                # Unknown parameters are refused (400 naming them), so a typo never runs an unfiltered report.
                "schema": {"type": "object", "properties": {"parameters": {
                    "type": "object", "properties": _PARAMETER_SCHEMA, "additionalProperties": False}}}
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
    accounts = sorted(caller.accounts)
    offset, limit = window(page, per_page)
    paginate(request, response, page, per_page, len(accounts))
    return [Account(id=account) for account in accounts[offset : offset + limit]]


@router.get("/api/v1/accounts/{account_id}", response_model=Account, tags=["Accounts"], summary="Get a single account")
def show_account(caller: CallerDep, account_id: AccountId) -> Account:
    return Account(id=visible_account(caller, account_id))


@router.get("/api/v1/courses/{course_id}", response_model=Course, tags=["Courses"], summary="Get a single course")
def show_course(caller: CallerDep, engine: EngineDep, course_id: CourseId) -> Course:
    visible_course(engine, caller, course_id)
    with engine.connect() as connection:
        row = connection.execute(select(courses).where(courses.c.id == course_id)).one()
    return Course(id=row.id, name=row.name, account_id=row.account_id, sis_course_id=row.sis_source_id, uuid=row.uuid,
                  workflow_state=row.workflow_state, created_at=row.created_at)


# --- Account Reports -------------------------------------------------------------


def account_job(engine: Engine, account_id: int, report: str, job_id: int) -> Job:
    job = jobs.get(engine, job_id)
    if job is None or job.account_id != account_id or job.course_id is not None or job.report != report:
        raise not_found()
    return job


@router.get("/api/v1/accounts/{account_id}/reports", response_model=list[AvailableReport], tags=["Account Reports"],
            summary="List available reports")
def available_reports(request: Request, response: Response, caller: CallerDep, engine: EngineDep, account_id: AccountId,
                      page: Page = 1, per_page: PerPage = DEFAULT_PER_PAGE) -> list[AvailableReport]:
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
             summary="Start a Report", openapi_extra=REPORT_BODY, responses=LIMIT_RESPONSES)
def start_account_report(request: Request, caller: CallerDep, engine: EngineDep, account_id: AccountId,
                         report: ReportName, parameters: Parameters) -> Report:
    account = visible_account(caller, account_id)
    return start(request, engine, caller, definition(report), parameters, account, None)


@router.get("/api/v1/accounts/{account_id}/reports/{report}", response_model=list[Report], tags=["Account Reports"],
            summary="Index of Reports")
def index_reports(request: Request, response: Response, caller: CallerDep, engine: EngineDep, account_id: AccountId,
                  report: ReportName, page: Page = 1, per_page: PerPage = DEFAULT_PER_PAGE) -> list[Report]:
    account = visible_account(caller, account_id)
    definition(report)
    offset, limit = window(page, per_page)
    found, total = jobs.page(engine, account_id=account, report=report, offset=offset, limit=limit)
    paginate(request, response, page, per_page, total)
    base = base_url(request)
    return [report_json(base, job) for job in found]


@router.get("/api/v1/accounts/{account_id}/reports/{report}/{id}", response_model=Report, tags=["Account Reports"],
            summary="Status of a Report")
def show_report(request: Request, caller: CallerDep, engine: EngineDep, account_id: AccountId, report: ReportName,
                id: Id) -> Report:  # Canvas's name
    account = visible_account(caller, account_id)
    return report_json(base_url(request), account_job(engine, account, report, id))


@router.delete("/api/v1/accounts/{account_id}/reports/{report}/{id}", response_model=Report, tags=["Account Reports"],
               summary="Delete a Report")
def delete_report(request: Request, caller: CallerDep, engine: EngineDep, account_id: AccountId, report: ReportName,
                  id: Id) -> Report:
    account = visible_account(caller, account_id)
    account_job(engine, account, report, id)
    deleted = jobs.remove(engine, id)
    if deleted is None:
        raise not_found()
    return report_json(base_url(request), deleted)


@router.put("/api/v1/accounts/{account_id}/reports/{report}/{id}/abort", response_model=Report, tags=["Account Reports"],
            summary="Abort a Report")
def abort_report(request: Request, caller: CallerDep, engine: EngineDep, account_id: AccountId, report: ReportName,
                 id: Id) -> Report:
    account = visible_account(caller, account_id)
    account_job(engine, account, report, id)
    stopped = jobs.stop(engine, id, None)
    if stopped is None:
        raise not_found()
    return report_json(base_url(request), stopped)


# --- Course Reports --------------------------------------------------------------


@router.post("/api/v1/courses/{course_id}/reports/{report_type}", response_model=Report, tags=["Course Reports"],
             summary="Start a Report", openapi_extra=REPORT_BODY, responses=LIMIT_RESPONSES)
def start_course_report(request: Request, caller: CallerDep, engine: EngineDep, course_id: CourseId, report_type: ReportName,
                        parameters: Parameters) -> Report:
    account = visible_course(engine, caller, course_id)
    return start(request, engine, caller, definition(report_type), parameters, account, course_id)


@router.get("/api/v1/courses/{course_id}/reports/{report_type}/{id}", response_model=Report, tags=["Course Reports"],
            summary="Status of a Report")
def show_course_report(request: Request, caller: CallerDep, engine: EngineDep, course_id: CourseId, report_type: ReportName,
                       id: Id) -> Report:
    visible_course(engine, caller, course_id)
    definition(report_type)
    job = jobs.get(engine, id)
    if job is None or job.course_id != course_id or job.report != report_type or job.account_id not in caller.accounts:
        raise not_found()
    return report_json(base_url(request), job)


@router.get("/api/v1/courses/{course_id}/reports/{report_type}", response_model=Report, tags=["Course Reports"],
            summary="Status of last Report")
def last_course_report(request: Request, caller: CallerDep, engine: EngineDep, course_id: CourseId,
                       report_type: ReportName) -> Report:
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
            summary="Query progress")
def show_progress(request: Request, caller: CallerDep, engine: EngineDep, id: Id) -> Progress:
    return progress_json(base_url(request), visible_job(engine, caller, id))


@router.post("/api/v1/progress/{id}/cancel", response_model=Progress, response_model_exclude_unset=True,
             tags=["Progress"], summary="Cancel progress", openapi_extra=CANCEL_BODY)
def cancel_progress(request: Request, caller: CallerDep, engine: EngineDep, id: Id, message: Message) -> Progress:
    visible_job(engine, caller, id)
    stopped = jobs.stop(engine, id, message if message is not None else "canceled")
    if stopped is None:
        raise not_found()
    return progress_json(base_url(request), stopped)


@router.get("/api/lti/courses/{course_id}/progress/{id}", response_model=Progress, response_model_exclude_unset=True,
            tags=["Progress"], summary="Query progress (LTI)")
def show_lti_progress(request: Request, caller: CallerDep, engine: EngineDep, course_id: CourseId, id: Id) -> Progress:
    job = visible_job(engine, caller, id)
    if job.course_id != course_id:
        raise not_found()
    return progress_json(base_url(request), job, lti=True)


# --- Files -----------------------------------------------------------------------


@router.get("/files/{id}/download", tags=["Files"], summary="Download a finished report",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "the CSV file"}})
def download(caller: CallerDep, engine: EngineDep, id: Id) -> StreamingResponse:
    job = visible_job(engine, caller, id)
    if job.status != "complete" or job.file_name is None:
        raise not_found(f"report {id} has no file yet (status {job.status})")
    headers = {"Content-Disposition": f'attachment; filename="{job.file_name}"'}
    if job.file_size is not None:
        headers["Content-Length"] = str(job.file_size)
    return StreamingResponse(jobs.file_chunks(engine, id), media_type="text/csv; charset=utf-8", headers=headers)
