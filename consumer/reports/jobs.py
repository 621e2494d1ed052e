"""Report jobs in the database: the `reports` row is both the Report and its Progress.

Every state change is one conditional UPDATE, so the API, the runner threads
and other server replicas never need a lock between them (only `create` takes
one, per account on Postgres, to hold REPORT_JOBS_PER_ACCOUNT under races):

    created --claim--> running --finish--> complete
       |                  |----fail------> error
       |                  `----reap------> error   (its server stopped: heartbeat went stale)
       `--abort/cancel----+--------------> aborted (the runner sees it at its next flush)
    any state --delete---------------------> deleted (file removed; the API answers 404 after)
    finished, REPORT_RETENTION_DAYS after it ended --expire--> deleted
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, insert, literal, select, update

from consumer.store.tables import report_file_chunks, reports

PENDING = ("created", "running")
FINISHED = ("complete", "error", "aborted")

# Report status -> Progress workflow_state (Canvas's Progress states).
PROGRESS_STATE = {
    "created": "queued",
    "running": "running",
    "complete": "completed",
    "error": "failed",
    "aborted": "failed",
}


def _drop_files(connection: Connection, job_ids: Sequence[int], batch: int = 1000) -> None:
    for start in range(0, len(job_ids), batch):  # under the drivers' limits on bound parameters
        part = job_ids[start : start + batch]
        connection.execute(delete(report_file_chunks).where(report_file_chunks.c.report_id.in_(part)))


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


class QueueFull(Exception):
    """The account already has as many jobs queued or running as it may (HTTP 429)."""

    retry_after = 30  # seconds: about what a few small reports take; the client may retry sooner or later

    def __init__(self, account_id: int, limit: int) -> None:
        super().__init__(
            f"account {account_id} already has {limit} report jobs queued or running, the most it may have "
            f"(REPORT_JOBS_PER_ACCOUNT={limit}); start this one after one of them has finished, or abort one"
        )
        self.account_id = account_id
        self.limit = limit


# Advisory locks that serialise job creation per account on Postgres: (this key space, the account's low 32 bits).
# The two-int4 form never conflicts with the bigint-keyed locks of batch.py and migrate.py.
_CREATE_LOCK_SPACE = 734_021


def _lock_account(connection: Connection, account_id: int) -> None:
    """On Postgres, wait for other creations for this account to commit (released at commit).

    Accounts that share their low 32 bits only share the wait. On SQLite the
    conditional INSERT alone is exact: a write statement takes the database's
    single write lock before it reads, so no two creations count at once.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(select(func.pg_advisory_xact_lock(_CREATE_LOCK_SPACE, (account_id + 2**31) % 2**32 - 2**31)))


def create(engine: Engine, *, report: str, account_id: int, course_id: int | None, token_id: int,
           parameters: dict[str, Any], limit: int | None = None) -> Job:
    """Queue a job; with `limit`, only while the account has fewer than `limit` queued or running (else QueueFull).

    The count and the insert are one statement (INSERT ... SELECT ... WHERE
    count < limit), behind a per-account advisory lock on Postgres, so racing
    requests never take the account past its limit.
    """
    moment = now()
    values: dict[str, Any] = {
        "report": report, "account_id": account_id, "course_id": course_id, "token_id": token_id,
        "parameters": parameters, "status": "created", "created_at": moment, "updated_at": moment,
        "current_line": 0, "progress": 0,
    }
    with engine.begin() as connection:
        if limit is None:
            statement = insert(reports).values(**values)
        else:
            _lock_account(connection, account_id)
            pending = (select(func.count()).select_from(reports)
                       .where(reports.c.account_id == account_id, reports.c.status.in_(PENDING)).scalar_subquery())
            row = select(*(literal(value, reports.c[name].type) for name, value in values.items())).where(pending < limit)
            statement = insert(reports).from_select(list(values), row)
        new_id = connection.execute(statement.returning(reports.c.id)).scalar_one_or_none()
        if new_id is None:
            raise QueueFull(account_id, limit or 0)
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
    """Take the next queued job, accounts taking turns; or None.

    The turn goes to the account, among those with queued jobs, whose latest
    job started longest ago (one that never ran first; on a tie, the one whose
    oldest queued job is oldest), and it runs that account's oldest queued
    job. So one account's 200 queued reports delay another account's report by
    at most one report per runner, not by all 200.

    One conditional UPDATE: safe against other runners (the loser updates no
    row), and a write from its first statement, so SQLite waits for its lock
    instead of failing to upgrade a read transaction.
    """
    queued = (
        select(reports.c.account_id, func.min(reports.c.id).label("first_id"))
        .where(reports.c.status == "created").group_by(reports.c.account_id).subquery("queued")
    )
    earlier = reports.alias("earlier")
    last_start = (select(func.max(earlier.c.started_at)).where(earlier.c.account_id == queued.c.account_id)
                  .correlate(queued).scalar_subquery())
    turn = select(queued.c.first_id).order_by(last_start.nulls_first(), queued.c.first_id).limit(1).scalar_subquery()
    moment = now()
    with engine.begin() as connection:
        taken = connection.execute(
            update(reports).where(reports.c.id == turn, reports.c.status == "created")
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


def expire(engine: Engine, days: int) -> list[int]:
    """Delete finished jobs (complete, error, aborted) that ended more than `days` ago, with their files.

    They become `deleted`, as if a client had deleted them: the API answers
    404 for them from then on (Canvas's own status for a removed report), and
    listings leave them out. The rows stay in the table, for the record.
    """
    cutoff = now() - timedelta(days=days)
    moment = now()
    with engine.begin() as connection:
        expired = connection.execute(
            update(reports).where(reports.c.status.in_(FINISHED), reports.c.ended_at < cutoff)
            .values(status="deleted", updated_at=moment,
                    message=f"deleted with its file {days} days after it ended (REPORT_RETENTION_DAYS)")
            .returning(reports.c.id)
        ).scalars().all()
        _drop_files(connection, expired)
    return list(expired)


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
