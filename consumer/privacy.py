"""Scrub students' names and emails already stored (`canvas-progress scrub-users`).

With STORE_USER_NAMES=false the pipeline stores students by id only; this
clears what was stored before:
- `users.name` and `users.email` become NULL (the rows, ids and event times
  stay, so the merge rules go on as before: a later event stores a name only
  while STORE_USER_NAMES is true);
- the tie ranks of the rows a progress event made (`users.last_event_rank`,
  `course_progress.last_event_rank`, `courses.progress_event_rank`) keep
  only their completion bit: the rest is a digest of the event's content,
  name and email included, against which a guessed name could be tested.
  A later event with the same event time then wins the tie (unless the
  stored one is a completion and it is not); the tables are otherwise as
  they were. `course_progress_history.event_rank` is left alone: it is a
  digest of what the history row holds (counts, times, error), no name;
- report files that list students' names (the reports whose query selects a
  `users` column: course_progress_csv) are deleted, their jobs marked
  `deleted` as REPORT_RETENTION_DAYS does, so the API answers 404 for them;
  a running one stops at its next flush. Jobs still queued will read the
  scrubbed tables.
Quarantined payloads (`rejected_events`) are not changed: a retry needs them
as received, and `rejected purge --expired` removes them after
REJECTED_RETENTION_DAYS.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from sqlalchemy import BigInteger, Column, Connection, Engine, delete, func, literal, or_, select, update

from consumer.events.kind import COMPLETION_RANK, DIGEST_BITS
from consumer.store.tables import course_progress, courses, report_file_chunks, reports, users

# Jobs whose file may exist: finished, or being written.
_WITH_FILE = ("complete", "running")
# Ranks made from progress-type events, which carry the student's name and email.
_PROGRESS_RANKS = (users.c.last_event_rank, course_progress.c.last_event_rank, courses.c.progress_event_rank)


@dataclass(frozen=True)
class ScrubResult:
    users: int  # rows whose name or email was (or would be) set to NULL
    report_files: int  # report jobs whose file was (or would be) deleted
    dry_run: bool

    def as_dict(self) -> dict:
        return asdict(self)


def reports_naming_students() -> tuple[str, ...]:
    """The report types whose rows show a column of `users` (a student's name)."""
    from consumer.reports.queries import QUERIES, Scope

    return tuple(
        name for name, build in QUERIES.items()
        if any(getattr(column, "table", None) is users for column in build(Scope(account_id=0), {}).rows.selected_columns)
    )


def scrub_users(engine: Engine, dry_run: bool = False) -> ScrubResult:
    """Clear stored names and emails and delete the report files listing them, in one transaction."""
    named = or_(users.c.name.is_not(None), users.c.email.is_not(None))
    with_names = (reports.c.report.in_(reports_naming_students()), reports.c.status.in_(_WITH_FILE))
    with engine.begin() as connection:
        if dry_run:
            return ScrubResult(_count(connection, users, named), _count(connection, reports, *with_names), dry_run=True)
        cleared = connection.execute(update(users).where(named).values(name=None, email=None)).rowcount
        for rank in _PROGRESS_RANKS:
            _keep_completion_bit(connection, rank)
        moment = datetime.now(timezone.utc)
        deleted = connection.execute(
            update(reports).where(*with_names)
            .values(status="deleted", updated_at=moment, ended_at=func.coalesce(reports.c.ended_at, moment),
                    message="deleted with its file by scrub-users: it listed students' names")
            .returning(reports.c.id)
        ).scalars().all()
        for start in range(0, len(deleted), 1000):  # under the drivers' limits on bound parameters
            part = deleted[start : start + 1000]
            connection.execute(delete(report_file_chunks).where(report_file_chunks.c.report_id.in_(part)))
    return ScrubResult(cleared, len(deleted), dry_run=False)


def _keep_completion_bit(connection: Connection, rank: Column) -> None:
    """Set the digest bits of every rank in the column to zero (see the module's docstring)."""
    digest = rank.op("&")(literal(DIGEST_BITS, BigInteger))
    connection.execute(update(rank.table).where(digest != 0).values({rank.name: rank.op("&")(literal(COMPLETION_RANK, BigInteger))}))


def _count(connection: Connection, table, *conditions) -> int:
    return connection.execute(select(func.count()).select_from(table).where(*conditions)).scalar_one()
