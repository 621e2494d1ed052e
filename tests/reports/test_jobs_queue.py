"""The report queue (issue 11, item 3) in consumer/reports/jobs.py: accounts take turns, each has a limit, finished files expire.

On both databases, through `consumer.reports.jobs` as the API and the runner call it.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, insert, select, update

from consumer.reports import jobs
from consumer.reports.runner import ReportRunner
from consumer.store.tables import report_file_chunks, reports


def queue(engine: Engine, account_id: int, limit: int | None = None) -> jobs.Job:
    limited = {} if limit is None else {"limit": limit}
    return jobs.create(engine, report="course_progress_csv", account_id=account_id, course_id=None, token_id=1,
                       parameters={}, **limited)


def claim_all(engine: Engine) -> list[int]:
    claimed = []
    while (job := jobs.claim(engine)) is not None:
        claimed.append(job.account_id)
    return claimed


def test_a_later_job_of_another_account_is_claimed_second_not_after_twenty(engine: Engine) -> None:
    flood = [queue(engine, 1).id for _ in range(20)]
    other = queue(engine, 2).id
    first, second = jobs.claim(engine), jobs.claim(engine)
    assert first is not None and second is not None
    assert (first.id, second.id) == (flood[0], other)
    assert claim_all(engine) == [1] * 19


def test_accounts_with_queued_jobs_take_turns(engine: Engine) -> None:
    """Round robin: each claim goes to an account that has had the fewest turns of those with jobs still queued."""
    wanted = {10: 12, 11: 1, 12: 5, 13: 3, 14: 7}
    order = [account for account, count in wanted.items() for _ in range(count)]
    random.Random(11).shuffle(order)
    for account in order:
        queue(engine, account)
    claimed = claim_all(engine)
    assert Counter(claimed) == wanted
    taken: Counter[int] = Counter()
    for account in claimed:
        waiting = [a for a in wanted if taken[a] < wanted[a]]
        assert taken[account] == min(taken[a] for a in waiting), (claimed, taken)
        taken[account] += 1


def test_an_account_that_never_ran_goes_before_one_that_ran_recently(engine: Engine) -> None:
    queue(engine, 1)
    assert jobs.claim(engine).account_id == 1
    queue(engine, 1)
    queue(engine, 3)  # queued after account 1's second job, but account 3 has never had a turn
    assert claim_all(engine) == [3, 1]


def test_the_limit_counts_queued_and_running_jobs_of_the_account(engine: Engine) -> None:
    for _ in range(3):
        queue(engine, 5, limit=3)
    with pytest.raises(jobs.QueueFull, match=r"^account 5 already has 3 report jobs queued or running, .*REPORT_JOBS_PER_ACCOUNT=3"):
        queue(engine, 5, limit=3)
    queue(engine, 6, limit=3)  # another account is not affected
    running = jobs.claim(engine)
    assert running is not None and running.account_id == 5
    with pytest.raises(jobs.QueueFull):
        queue(engine, 5, limit=3)  # running still counts
    jobs.stop(engine, running.id, None)
    assert queue(engine, 5, limit=3).status == "created"  # a finished one frees its place
    assert queue(engine, 5).status == "created"  # no limit given: none applied (the API always gives one)


def test_racing_creations_never_pass_the_limit(engine: Engine) -> None:
    limit, attempts = 4, 24
    barrier = threading.Barrier(attempts)
    outcomes: list[str] = []

    def attempt() -> None:
        barrier.wait()
        try:
            queue(engine, 7, limit=limit)
            outcomes.append("created")
        except jobs.QueueFull:
            outcomes.append("refused")

    threads = [threading.Thread(target=attempt) for _ in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert Counter(outcomes) == {"created": limit, "refused": attempts - limit}
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(reports).where(reports.c.account_id == 7)).scalar_one() == limit


def _finished(engine: Engine, status: str, days_ago: float, chunks: int = 2) -> int:
    job = queue(engine, 9)
    with engine.begin() as connection:
        connection.execute(update(reports).where(reports.c.id == job.id).values(
            status=status, ended_at=jobs.now() - timedelta(days=days_ago),
            started_at=jobs.now() - timedelta(days=days_ago, minutes=1)))
        for seq in range(chunks):
            connection.execute(insert(report_file_chunks).values(report_id=job.id, seq=seq, data=b"a,b\r\n"))
    return job.id


def _chunks(engine: Engine, job_id: int) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(report_file_chunks)
                                  .where(report_file_chunks.c.report_id == job_id)).scalar_one()


def test_finished_reports_older_than_the_retention_are_deleted_with_their_files(engine: Engine, caplog) -> None:
    old = [_finished(engine, status, 14.01) for status in ("complete", "error", "aborted")]
    recent = _finished(engine, "complete", 13.99)
    old_queued = queue(engine, 9).id  # queued and running jobs are never expired, however old
    old_running = _finished(engine, "running", 30)
    with engine.begin() as connection:
        connection.execute(update(reports).where(reports.c.id.in_([old_queued, old_running]))
                           .values(created_at=jobs.now() - timedelta(days=40), ended_at=None))

    with caplog.at_level(logging.INFO, logger="consumer.reports"):
        assert ReportRunner(engine, retention_days=14).sweep() == 3
    assert "report retention: deleted 3 report(s) and their files, finished more than 14 days ago" in caplog.text

    for job_id in old:
        assert jobs.get(engine, job_id) is None  # the API answers 404, as for a deleted report
        assert _chunks(engine, job_id) == 0
    assert jobs.get(engine, recent).status == "complete" and _chunks(engine, recent) == 2
    assert jobs.get(engine, old_queued).status == "created"
    assert jobs.get(engine, old_running).status == "running" and _chunks(engine, old_running) == 2
    with engine.connect() as connection:
        kept = connection.execute(select(reports.c.status, reports.c.message).where(reports.c.id == old[0])).one()
    assert kept.status == "deleted" and "REPORT_RETENTION_DAYS" in kept.message
    assert jobs.expire(engine, 14) == []  # a second sweep finds nothing
