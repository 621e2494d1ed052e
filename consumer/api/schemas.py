"""The Report, Progress and available-report objects, field for field as Canvas documents them.

Additions, which Canvas clients ignore: `progress_url` on a Report (the Progress
that tracks it, as Canvas gives for its other asynchronous jobs).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field

from consumer.reports.catalogue import REPORTS, ReportDefinition
from consumer.reports.jobs import Job

# A Report's status (the `reports` row's, consumer/reports/jobs.py) and its Progress's workflow_state.
ReportStatus = Literal["created", "running", "complete", "error", "aborted", "deleted"]
ProgressState = Literal["queued", "running", "completed", "failed"]
REPORT_STATUSES: tuple[str, ...] = get_args(ReportStatus)
PROGRESS_STATES: tuple[str, ...] = get_args(ProgressState)
# The report types, documented as an enum; kept `str` in the models so an unknown one is never a validation error.
REPORT_TYPES = {"enum": list(REPORTS)}


class Attachment(BaseModel):
    """The finished file, as a (reduced) Canvas File object."""

    id: int
    display_name: str
    filename: str
    content_type: str = Field(serialization_alias="content-type", default="text/csv")
    url: str
    size: int
    created_at: datetime
    updated_at: datetime
    mime_class: str = "file"


class Report(BaseModel):
    """Canvas's Report object (Account Reports API), plus `progress_url`."""

    id: int = Field(description="The unique identifier for the report.")
    report: str = Field(description="The type of report.", json_schema_extra=REPORT_TYPES)
    file_url: str | None = Field(description="The url to the report download (once complete).")
    attachment: Attachment | None = Field(description="The report file; only available after the report has completed.")
    status: ReportStatus = Field(description="created (queued), running, complete, error, aborted, or deleted "
                                 "(only in the answer to DELETE: the report is gone after it)")
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    parameters: dict[str, Any]
    progress: int = Field(description="The progress of the report, in percent.")
    current_line: int = Field(description="The line count written so far; updates every 1000 records.")
    progress_url: str = Field(description="The Progress object that tracks this report.")


class Progress(BaseModel):
    """Canvas's Progress object, for the report job it tracks (the same id as the Report)."""

    id: int
    context_id: int = Field(description="The course's id for a course report, else the account's.")
    context_type: Literal["Account", "Course"]
    user_id: int = Field(description="The API token that started the job.")
    tag: Literal["account_report", "course_report"]
    completion: float = Field(description="percent completed")
    workflow_state: ProgressState = Field(description="queued, running, completed, or failed (the report ended in "
                                                      "error, or was aborted or canceled)")
    created_at: datetime
    updated_at: datetime
    message: str | None
    results: dict[str, Any] | None = Field(default=None, description="omitted while the job is pending")
    url: str


class Account(BaseModel):
    """The Account object, as far as the tracker knows it (Live Events carry account ids, not names)."""

    id: int
    name: str | None = None
    parent_account_id: int | None = None
    root_account_id: int | None = None
    workflow_state: str = "active"


class Course(BaseModel):
    """The Course object, from the `courses` table."""

    id: int
    name: str | None
    account_id: int | None
    sis_course_id: str | None
    uuid: str | None
    workflow_state: str | None
    created_at: datetime | None


class ParameterInfo(BaseModel):
    description: str
    required: bool


class AvailableReport(BaseModel):
    report: str = Field(json_schema_extra=REPORT_TYPES)
    title: str
    parameters: dict[str, ParameterInfo] | None
    last_run: Report | None = None


def file_url(base: str, job: Job) -> str:
    return f"{base}files/{job.id}/download"


def report_json(base: str, job: Job) -> Report:
    complete = job.status == "complete"
    url = file_url(base, job) if complete else None
    attachment = None
    if complete and url is not None and job.file_name is not None:
        attachment = Attachment(
            id=job.id, display_name=job.file_name, filename=job.file_name, url=url, size=job.file_size or 0,
            created_at=job.ended_at or job.updated_at, updated_at=job.ended_at or job.updated_at,
        )
    return Report(
        id=job.id, report=job.report, file_url=url, attachment=attachment, status=job.status,
        created_at=job.created_at, started_at=job.started_at, ended_at=job.ended_at, parameters=job.parameters,
        progress=job.progress, current_line=job.current_line, progress_url=f"{base}api/v1/progress/{job.id}",
    )


def progress_json(base: str, job: Job, *, lti: bool = False) -> Progress:
    if job.course_id is not None:
        context_type, context_id, tag = "Course", job.course_id, "course_report"
    else:
        context_type, context_id, tag = "Account", job.account_id, "account_report"
    url = (f"{base}api/lti/courses/{job.course_id}/progress/{job.id}" if lti else f"{base}api/v1/progress/{job.id}")
    progress = Progress(
        id=job.id, context_id=context_id, context_type=context_type, user_id=job.token_id, tag=tag,
        completion=float(job.progress), workflow_state=job.progress_state, created_at=job.created_at,
        updated_at=job.updated_at, message=job.message, url=url,
    )
    if job.status == "complete":
        progress.results = {"id": job.id, "report": job.report, "file_url": file_url(base, job)}
    return progress


def available_json(definition: ReportDefinition, level: str, last_run: Report | None) -> AvailableReport:
    parameters = {p.name: ParameterInfo(description=p.description, required=p.required) for p in definition.accepts(level)}
    return AvailableReport(report=definition.name, title=definition.title, parameters=parameters or None, last_run=last_run)
