"""Report jobs in the database: the `reports` row is both the Report and its Progress.

Every state change is one conditional UPDATE, so the API, the runner threads
and other server replicas never need a lock between them:

    created --claim--> running --finish--> complete
       |                  |----fail------> error
       |                  `----reap------> error   (its server stopped: heartbeat went stale)
       `--abort/cancel----+--------------> aborted (the runner sees it at its next flush)
    any state --delete---------------------> deleted (file removed; the API answers 404 after)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, insert, select, update

from consumer.store.tables import report_file_chunks, reports

PENDING = ("created", "running")

# Report status -> Progress workflow_state (Canvas's Progress states).
PROGRESS_STATE = {
    "created": "queued",
    "running": "running",
    "complete": "completed",
    "error": "failed",
    "aborted": "failed",
}


def _drop_files(connection: Connection, job_ids: Sequence[int]) -> None:
    connection.execute(delete(report_file_chunks).where(report_file_chunks.c.report_id.in_(job_ids)))


def now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    report: str
    account_id: int
    course_id: int | None
    token_id: int
    parameters: dict[str, Any]
    status: str
    message: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    current_line: int
    progress: int
    file_name: str | None
    file_size: int | None

    @property
    def progress_state(self) -> str:
        return PROGRESS_STATE.get(self.status, "failed")


_COLUMNS = [reports.c[field.name] for field in fields(Job)]


def _job(row: Any) -> Job:
    return Job(*row)


def create(engine: Engine, *, report: str, account_id: int, course_id: int | None, token_id: int,
           parameters: dict[str, Any]) -> Job:
    moment = now()
    with engine.begin() as connection:
        new_id = connection.execute(
            insert(reports).values(
                report=report, account_id=account_id, course_id=course_id, token_id=token_id, parameters=parameters,
                status="created", created_at=moment, updated_at=moment, current_line=0, progress=0,
            ).returning(reports.c.id)
        ).scalar_one()
        return _job(connection.execute(select(*_COLUMNS).where(reports.c.id == new_id)).one())


def get(engine: Engine, job_id: int) -> Job | None:
    """The job, unless deleted."""
    with engine.connect() as connection:
        row = connection.execute(
            select(*_COLUMNS).where(reports.c.id == job_id, reports.c.status != "deleted")
        ).one_or_none()
    return None if row is None else _job(row)


def page(engine: Engine, *, account_id: int, report: str, offset: int, limit: int) -> tuple[list[Job], int]:
    """Account reports of one type, newest first, and how many there are."""
    where = and_(reports.c.account_id == account_id, reports.c.report == report, reports.c.course_id.is_(None),
                 reports.c.status != "deleted")
    with engine.connect() as connection:
        total = connection.execute(select(func.count()).select_from(reports).where(where)).scalar_one()
        rows = connection.execute(
            select(*_COLUMNS).where(where).order_by(reports.c.id.desc()).offset(offset).limit(limit)
        ).all()
    return [_job(row) for row in rows], total


def last_runs(engine: Engine, account_id: int) -> dict[str, Job]:
    """The newest account report of each type."""
    newest = (
        select(func.max(reports.c.id))
        .where(reports.c.account_id == account_id, reports.c.course_id.is_(None), reports.c.status != "deleted")
        .group_by(reports.c.report)
    )
    with engine.connect() as connection:
        rows = connection.execute(select(*_COLUMNS).where(reports.c.id.in_(newest))).all()
    return {job.report: job for job in map(_job, rows)}


def last_for_caller(engine: Engine, *, course_id: int, report: str, token_id: int) -> Job | None:
    """The newest course report of this type started with this token."""
    with engine.connect() as connection:
        row = connection.execute(
            select(*_COLUMNS)
            .where(reports.c.course_id == course_id, reports.c.report == report, reports.c.token_id == token_id,
                   reports.c.status != "deleted")
            .order_by(reports.c.id.desc())
            .limit(1)
        ).one_or_none()
    return None if row is None else _job(row)


def stop(engine: Engine, job_id: int, message: str | None) -> Job | None:
    """Abort (or cancel) a queued or running job; a finished one is left as it is."""
    moment = now()
    values: dict[str, Any] = {"status": "aborted", "ended_at": moment, "updated_at": moment}
    if message is not None:
        values["message"] = message
    with engine.begin() as connection:
        connection.execute(update(reports).where(reports.c.id == job_id, reports.c.status.in_(PENDING)).values(**values))
    return get(engine, job_id)


def remove(engine: Engine, job_id: int) -> Job | None:
    """Mark the job deleted and drop its file; returns it as it now is."""
    moment = now()
    with engine.begin() as connection:
        connection.execute(
            update(reports).where(reports.c.id == job_id, reports.c.status != "deleted")
            .values(status="deleted", updated_at=moment, ended_at=func.coalesce(reports.c.ended_at, moment))
        )
        _drop_files(connection, [job_id])
        row = connection.execute(select(*_COLUMNS).where(reports.c.id == job_id)).one_or_none()
    return None if row is None else _job(row)


# --- the runner's side ---------------------------------------------------------


def claim(engine: Engine) -> Job | None:
    """Take the oldest queued job, or None.

    One conditional UPDATE: safe against other runners (the loser updates no
    row), and a write from its first statement, so SQLite waits for its lock
    instead of failing to upgrade a read transaction.
    """
    oldest = select(reports.c.id).where(reports.c.status == "created").order_by(reports.c.id).limit(1).scalar_subquery()
    moment = now()
    with engine.begin() as connection:
        taken = connection.execute(
            update(reports).where(reports.c.id == oldest, reports.c.status == "created")
            .values(status="running", started_at=moment, heartbeat_at=moment, updated_at=moment)
            .returning(*_COLUMNS)
        ).one_or_none()
    return None if taken is None else _job(taken)


def advance(connection: Connection, job_id: int, *, seq: int, data: bytes, lines: int, progress: int) -> bool:
    """Record written lines (and a chunk of the file) if the job is still running; False if it was stopped."""
    moment = now()
    still_running = connection.execute(
        update(reports).where(reports.c.id == job_id, reports.c.status == "running")
        .values(current_line=lines, progress=progress, heartbeat_at=moment, updated_at=moment)
    ).rowcount == 1
    if still_running and data:
        connection.execute(insert(report_file_chunks).values(report_id=job_id, seq=seq, data=data))
    return still_running


def finish(connection: Connection, job_id: int, *, lines: int, file_name: str, file_size: int, message: str) -> bool:
    moment = now()
    return connection.execute(
        update(reports).where(reports.c.id == job_id, reports.c.status == "running")
        .values(status="complete", progress=100, current_line=lines, file_name=file_name, file_size=file_size,
                message=message, ended_at=moment, updated_at=moment, heartbeat_at=moment)
    ).rowcount == 1


def fail(engine: Engine, job_id: int, message: str) -> None:
    """End a running job as failed and drop what it wrote."""
    moment = now()
    with engine.begin() as connection:
        connection.execute(
            update(reports).where(reports.c.id == job_id, reports.c.status == "running")
            .values(status="error", message=message, ended_at=moment, updated_at=moment)
        )
        _drop_files(connection, [job_id])


def discard_file(engine: Engine, job_id: int) -> None:
    with engine.begin() as connection:
        _drop_files(connection, [job_id])


def reap(engine: Engine, lease: float) -> list[int]:
    """Fail running jobs whose heartbeat is older than `lease` seconds: the server running them stopped."""
    cutoff = now() - timedelta(seconds=lease)
    moment = now()
    with engine.begin() as connection:
        stale = connection.execute(
            update(reports).where(reports.c.status == "running", reports.c.heartbeat_at < cutoff)
            .values(status="error", ended_at=moment, updated_at=moment,
                    message="the server running this report stopped before it finished; start it again")
            .returning(reports.c.id)
        ).scalars().all()
        if stale:
            _drop_files(connection, stale)
    return list(stale)


def file_chunks(engine: Engine, job_id: int, batch: int = 16) -> Iterator[bytes]:
    """The finished file, chunk by chunk, a few chunks per query (so a download holds no transaction open)."""
    seq = -1
    while True:
        with engine.connect() as connection:
            rows: Sequence[Any] = connection.execute(
                select(report_file_chunks.c.seq, report_file_chunks.c.data)
                .where(report_file_chunks.c.report_id == job_id, report_file_chunks.c.seq > seq)
                .order_by(report_file_chunks.c.seq)
                .limit(batch)
            ).all()
        if not rows:
            return
        for _seq, data in rows:
            yield bytes(data)
        seq = rows[-1][0]
