"""consumer/reports/jobs.py: a report job's life as conditional UPDATEs, on both databases.

created -> running (claim) -> complete (finish) | error (fail, reap) | aborted (stop); any -> deleted (remove).
Turns between accounts, the per-account limit and retention are in test_jobs_queue.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select, update

from consumer.reports import jobs
from consumer.store.tables import report_file_chunks, reports


def create(engine: Engine, account_id: int = 79, report: str = "course_progress_csv", course_id: int | None = None,
           token_id: int = 1) -> jobs.Job:
    return jobs.create(engine, report=report, account_id=account_id, course_id=course_id, token_id=token_id,
                       parameters={"include_deleted": True})


def running(engine: Engine, **job) -> jobs.Job:
    created = create(engine, **job)
    claimed = jobs.claim(engine)
    assert claimed is not None and claimed.id == created.id
    return claimed


def chunks(engine: Engine, job_id: int) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(report_file_chunks)
                                  .where(report_file_chunks.c.report_id == job_id)).scalar_one()


def write(engine: Engine, job_id: int, seq: int, data: bytes = b"a,b\r\n", lines: int = 1, progress: int = 50) -> bool:
    with engine.begin() as connection:
        return jobs.advance(connection, job_id, seq=seq, data=data, lines=lines, progress=progress)


def test_a_new_job_is_queued_with_its_parameters(engine):
    job = create(engine, course_id=565, token_id=7)
    assert (job.status, job.progress_state, job.current_line, job.progress) == ("created", "queued", 0, 0)
    assert (job.report, job.account_id, job.course_id, job.token_id) == ("course_progress_csv", 79, 565, 7)
    assert job.parameters == {"include_deleted": True}
    assert job.started_at is None and job.ended_at is None and job.created_at == job.updated_at
    assert jobs.get(engine, job.id) == job
    assert jobs.get(engine, job.id + 1000) is None


@pytest.mark.parametrize(("status", "state"), [("created", "queued"), ("running", "running"), ("complete", "completed"),
                                               ("error", "failed"), ("aborted", "failed"), ("deleted", "failed")])
def test_each_status_is_shown_as_a_canvas_progress_state(status, state):
    job = jobs.Job(1, "course_progress_csv", 79, None, 1, {}, status, None, jobs.now(), jobs.now(), None, None, 0, 0, None, None)
    assert job.progress_state == state


def test_a_claimed_job_runs_and_its_written_lines_and_file_are_recorded(engine):
    job = running(engine)
    assert (job.status, job.progress_state) == ("running", "running") and job.started_at is not None
    assert jobs.claim(engine) is None  # nothing else queued
    assert write(engine, job.id, 0, b"header\r\n", lines=0, progress=0)
    assert write(engine, job.id, 1, b"row\r\n", lines=1000, progress=40)
    assert write(engine, job.id, 2, b"", lines=1000, progress=40)  # a heartbeat only: no chunk
    now = jobs.get(engine, job.id)
    assert (now.current_line, now.progress, chunks(engine, job.id)) == (1000, 40, 2)
    with engine.begin() as connection:
        assert jobs.finish(connection, job.id, lines=1000, file_name="f.csv", file_size=13, message="1000 rows written")
    done = jobs.get(engine, job.id)
    assert (done.status, done.progress_state, done.progress, done.current_line) == ("complete", "completed", 100, 1000)
    assert (done.file_name, done.file_size, done.message) == ("f.csv", 13, "1000 rows written") and done.ended_at is not None
    assert b"".join(jobs.file_chunks(engine, job.id)) == b"header\r\nrow\r\n"


def test_the_file_is_read_back_in_order_a_few_chunks_per_query(engine):
    job = running(engine)
    for seq in range(7):
        assert write(engine, job.id, seq, f"line {seq}\r\n".encode())
    assert list(jobs.file_chunks(engine, job.id, batch=3)) == [f"line {seq}\r\n".encode() for seq in range(7)]
    assert list(jobs.file_chunks(engine, job.id + 1000)) == []


@pytest.mark.parametrize("message", [None, "wrong account"])
def test_stopping_a_queued_or_running_job_aborts_it_and_the_runner_learns_at_its_next_write(engine, message):
    queued = create(engine)
    stopped = jobs.stop(engine, queued.id, message)
    assert (stopped.status, stopped.message) == ("aborted", message) and stopped.ended_at is not None
    assert jobs.claim(engine) is None  # an aborted job is never claimed

    job = running(engine)
    assert jobs.stop(engine, job.id, message).status == "aborted"
    assert not write(engine, job.id, 0)  # the runner's next write tells it to stop, and writes nothing
    assert chunks(engine, job.id) == 0
    with engine.begin() as connection:
        assert not jobs.finish(connection, job.id, lines=1, file_name="f.csv", file_size=1, message="done")
    assert jobs.get(engine, job.id).status == "aborted"


def test_a_finished_job_is_not_changed_by_stop_fail_advance_or_finish(engine):
    job = running(engine)
    with engine.begin() as connection:
        jobs.finish(connection, job.id, lines=0, file_name="f.csv", file_size=0, message="0 rows written")
    done = jobs.get(engine, job.id)
    assert jobs.stop(engine, job.id, "too late") == done
    jobs.fail(engine, job.id, "too late")
    assert not write(engine, job.id, 5)
    with engine.begin() as connection:
        assert not jobs.finish(connection, job.id, lines=9, file_name="g.csv", file_size=9, message="again")
    assert jobs.get(engine, job.id) == done


def test_a_failed_job_says_why_and_its_partial_file_is_dropped(engine):
    job = running(engine)
    write(engine, job.id, 0)
    jobs.fail(engine, job.id, "the report failed (logged as 0123456789ab)")
    failed = jobs.get(engine, job.id)
    assert (failed.status, failed.progress_state, failed.message) == ("error", "failed", "the report failed (logged as 0123456789ab)")
    assert chunks(engine, job.id) == 0
    queued = create(engine)
    jobs.fail(engine, queued.id, "not running")  # only a running job fails
    assert jobs.get(engine, queued.id).status == "created"


def test_removing_a_job_hides_it_and_drops_its_file(engine):
    job = running(engine)
    write(engine, job.id, 0)
    removed = jobs.remove(engine, job.id)
    assert removed.status == "deleted" and removed.ended_at is not None
    assert jobs.get(engine, job.id) is None and chunks(engine, job.id) == 0
    assert not write(engine, job.id, 1)  # a running job that was deleted stops at its next write
    assert jobs.remove(engine, job.id).status == "deleted"  # again: no change
    assert jobs.remove(engine, job.id + 1000) is None


def test_reap_fails_running_jobs_whose_heartbeat_is_older_than_the_lease(engine):
    stale, fresh = running(engine), running(engine)
    queued = create(engine)
    write(engine, stale.id, 0)
    with engine.begin() as connection:
        connection.execute(update(reports).where(reports.c.id.in_([stale.id, queued.id]))
                           .values(heartbeat_at=jobs.now() - timedelta(seconds=31)))
    assert jobs.reap(engine, lease=30) == [stale.id]
    reaped = jobs.get(engine, stale.id)
    assert reaped.status == "error" and "stopped before it finished" in reaped.message and chunks(engine, stale.id) == 0
    assert jobs.get(engine, fresh.id).status == "running" and jobs.get(engine, queued.id).status == "created"
    assert jobs.reap(engine, lease=30) == []


def test_a_page_lists_the_account_reports_of_one_type_newest_first(engine):
    ids = [create(engine).id for _ in range(5)]
    create(engine, report="course_sections_csv")  # another type
    create(engine, course_id=565)  # a course report
    create(engine, account_id=80)  # another account
    jobs.remove(engine, ids[2])
    listed, total = jobs.page(engine, account_id=79, report="course_progress_csv", offset=0, limit=2)
    assert [job.id for job in listed] == [ids[4], ids[3]] and total == 4
    listed, total = jobs.page(engine, account_id=79, report="course_progress_csv", offset=2, limit=10)
    assert [job.id for job in listed] == [ids[1], ids[0]] and total == 4


def test_last_runs_are_the_newest_account_report_of_each_type(engine):
    first, newest = create(engine), create(engine)
    sections = create(engine, report="course_sections_csv")
    create(engine, course_id=565)  # course reports are not account runs
    removed = create(engine, report="course_completion_csv")
    jobs.remove(engine, removed.id)
    last = jobs.last_runs(engine, 79)
    assert {name: job.id for name, job in last.items()} == {"course_progress_csv": newest.id, "course_sections_csv": sections.id}
    assert first.id != newest.id and jobs.last_runs(engine, 80) == {}


def test_the_last_course_report_is_the_caller_s_own(engine):
    mine = create(engine, course_id=565, token_id=1)
    create(engine, course_id=565, token_id=2)  # another caller's
    create(engine, course_id=777, token_id=1)  # another course
    found = jobs.last_for_caller(engine, course_id=565, report="course_progress_csv", token_id=1)
    assert found is not None and found.id == mine.id
    jobs.remove(engine, mine.id)
    assert jobs.last_for_caller(engine, course_id=565, report="course_progress_csv", token_id=1) is None
