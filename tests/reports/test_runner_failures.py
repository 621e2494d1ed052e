"""A report that fails tells its client a reference to the log, never the database's error text.

The driver's message names the database's host, port and name; SQLAlchemy's
adds the statement and its bound parameters. Those belong in the server's log,
not in a Report or Progress `message` any token of the account can read.
"""

from __future__ import annotations

import logging
import re

from sqlalchemy import Engine, text

from consumer.reports import jobs
from consumer.reports.runner import ReportRunner

REFERENCE = re.compile(r"\(logged as ([0-9a-f]{12})\)")


def test_a_report_whose_query_fails_says_where_to_look_not_what_the_database_said(engine: Engine, caplog) -> None:
    queued = jobs.create(engine, report="course_sections_csv", account_id=79, course_id=None, token_id=1, parameters={})
    claimed = jobs.claim(engine)
    assert claimed is not None and claimed.id == queued.id
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE course_sections RENAME TO course_sections_gone"))
    try:
        with caplog.at_level(logging.ERROR, logger="consumer.reports"):
            ReportRunner(engine).run(claimed)
    finally:
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE course_sections_gone RENAME TO course_sections"))
    failed = jobs.get(engine, queued.id)
    assert failed is not None and failed.status == "error" and failed.progress_state == "failed"
    message = failed.message or ""
    found = REFERENCE.search(message)
    assert found, message
    assert message.startswith("the report failed") and "\n" not in message
    for leak in ("SELECT", "course_sections", "[SQL", "parameters", "Error", engine.url.database or "?"):
        assert leak not in message, (leak, message)
    (record,) = [r for r in caplog.records if found.group(1) in r.getMessage()]
    assert record.exc_info is not None and "course_sections" in str(record.exc_info[1])  # the detail is in the log
