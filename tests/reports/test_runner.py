"""consumer/reports/runner.py: a claimed job becomes a CSV file written in chunks with its progress; a stop or a
shutdown ends it at the next flush; the runner threads claim queued jobs until stopped. On both databases.

A failing query is in test_runner_failures.py, the cells of the file in test_report_files.py.
"""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import Engine

from consumer.reports import jobs, runner
from consumer.reports.runner import ReportRunner, failure_message, file_name
from tests.factory import progress_event
from tests.helpers import apply_events, wait_until

STUDENTS = 7


@pytest.fixture
def course(engine: Engine) -> Engine:
    """Course 565 of account 79 with STUDENTS students."""
    apply_events(engine, [progress_event("2019-11-01T00:00:00Z", course_id="565", user_id=str(n)) for n in range(1, STUDENTS + 1)])
    return engine


def claimed(engine: Engine, report: str = "course_progress_csv", **parameters) -> jobs.Job:
    queued = jobs.create(engine, report=report, account_id=79, course_id=None, token_id=1, parameters=parameters)
    job = jobs.claim(engine)
    assert job is not None and job.id == queued.id
    return job


def lines(engine: Engine, job_id: int) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(jobs.file_chunks(engine, job_id)).decode("utf-8"), newline="")))


def test_a_job_becomes_its_file_with_a_header_and_every_row(course):
    job = claimed(course)
    ReportRunner(course).run(job)
    done = jobs.get(course, job.id)
    assert (done.status, done.progress, done.current_line, done.message) == ("complete", 100, STUDENTS, f"{STUDENTS} rows written")
    assert done.file_name == f"course_progress_csv_account_79_{job.id}.csv"
    rows = lines(course, job.id)
    assert rows[0][:2] == ["course id", "course sis id"] and [row[4] for row in rows[1:]] == [str(n) for n in range(1, STUDENTS + 1)]
    assert done.file_size == len(b"".join(jobs.file_chunks(course, job.id)))


def test_the_file_is_written_in_chunks_of_chunk_lines(course, monkeypatch):
    monkeypatch.setattr(runner, "CHUNK_LINES", 2)
    monkeypatch.setattr(runner, "CHUNK_SECONDS", 3600)  # by lines only, however slow the machine
    seen: list[tuple[int, int]] = []
    advance = jobs.advance

    def recording(connection, job_id, *, seq, data, lines, progress):
        seen.append((lines, progress))
        return advance(connection, job_id, seq=seq, data=data, lines=lines, progress=progress)

    monkeypatch.setattr(jobs, "advance", recording)
    job = claimed(course)
    ReportRunner(course).run(job)
    # the header alone first (a heartbeat after the count), then every 2 lines, then the rest; progress below 100 until done
    assert seen == [(0, 0), (2, 28), (4, 57), (6, 85), (7, 99)]
    assert jobs.get(course, job.id).progress == 100 and len(lines(course, job.id)) == STUDENTS + 1


def test_an_empty_window_says_why_no_row_matched(course):
    job = claimed(course, start_at="2019-11-02T00:00:00Z", end_at="2019-11-01T00:00:00Z")
    ReportRunner(course).run(job)
    done = jobs.get(course, job.id)
    assert done.status == "complete" and done.current_line == 0
    assert done.message == "0 rows written (end_at is not after start_at, so no row can match)"
    assert len(lines(course, job.id)) == 1  # the header


def test_a_job_stopped_while_it_runs_ends_at_the_next_flush_and_leaves_no_file(course, monkeypatch):
    monkeypatch.setattr(runner, "CHUNK_LINES", 2)
    advance = jobs.advance
    job = claimed(course)

    def stopped_after_the_header(connection, job_id, *, seq, data, lines, progress):
        if seq == 1:
            jobs.stop(course, job_id, "stop")  # as the API does, from another connection
        return advance(connection, job_id, seq=seq, data=data, lines=lines, progress=progress)

    monkeypatch.setattr(jobs, "advance", stopped_after_the_header)
    ReportRunner(course).run(job)
    done = jobs.get(course, job.id)
    assert (done.status, done.message, done.current_line) == ("aborted", "stop", 0)
    assert list(jobs.file_chunks(course, job.id)) == []


def test_a_job_running_when_the_server_shuts_down_fails_saying_so(course):
    job = claimed(course)
    report_runner = ReportRunner(course)
    report_runner.stop()  # no thread started: only marks it stopping
    report_runner.run(job)
    done = jobs.get(course, job.id)
    assert (done.status, done.progress_state) == ("error", "failed")
    assert done.message == "the server shut down while this report ran; start it again"
    assert list(jobs.file_chunks(course, job.id)) == []


def test_started_runners_claim_queued_jobs_until_stopped(course):
    report_runner = ReportRunner(course, workers=2, poll=0.05, sweep_every=3600)
    report_runner.start()
    try:
        queued = [jobs.create(course, report=name, account_id=79, course_id=None, token_id=1, parameters={})
                  for name in ("course_progress_csv", "course_completion_csv", "course_sections_csv")]
        report_runner.wake()
        wait_until(lambda: all(jobs.get(course, job.id).status == "complete" for job in queued), 30, "the queued reports")
    finally:
        report_runner.stop()
    assert report_runner._threads and not any(thread.is_alive() for thread in report_runner._threads)


def test_file_names_tell_the_report_its_scope_and_id(engine):
    account = jobs.create(engine, report="course_sections_csv", account_id=79, course_id=None, token_id=1, parameters={})
    course = jobs.create(engine, report="course_progress_csv", account_id=79, course_id=565, token_id=1, parameters={})
    assert file_name(account) == f"course_sections_csv_account_79_{account.id}.csv"
    assert file_name(course) == f"course_progress_csv_course_565_{course.id}.csv"


def test_a_failure_tells_the_client_a_reference_only():
    assert failure_message("0123456789ab") == (
        "the report failed (logged as 0123456789ab); start it again, or give the operator this reference")
