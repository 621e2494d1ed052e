"""Readiness: does the database (and, for the worker, the queue) answer right now? One check for every probe.

The worker's /readyz and the Reports API's /readyz both use `database_ready`.
Their answers to an unauthenticated caller say "ready" or not, nothing more:
the reason (which names the database's host, port and name, never its
password) is for the log.
"""

from __future__ import annotations

from sqlalchemy import Engine, text

from consumer.sources.sqs import Queue
from consumer.store.engine import display_url, hide_password
from consumer.text import one_line


def database_error(engine: Engine, error: BaseException) -> str:
    """A database error as one line, the driver's message rather than SQLAlchemy's wrapping, the password hidden."""
    return hide_password(one_line(str(getattr(error, "orig", None) or error)), engine.url.render_as_string(hide_password=False))


def database_ready(engine: Engine) -> str | None:
    """None when the database answers SELECT 1; otherwise why not (`database_error`)."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:  # any failure means not ready; the caller logs the reason
        return database_error(engine, error)
    return None


def worker_ready(engine: Engine, queue: Queue) -> tuple[bool, str]:
    """Can the worker do its job right now (the database and the queue both answer)? The reason is for the log only."""
    problems = []
    problem = database_ready(engine)
    if problem is not None:
        problems.append(f"database {display_url(engine.url.render_as_string(hide_password=False))}: {problem}")
    try:
        queue.visibility_timeout()
    except Exception as error:  # no such queue, access denied, SQS unreachable: not ready, and the log says why
        problems.append(f"queue {queue.url}: {one_line(str(error))}")
    return (not problems, "; ".join(problems) or "database and queue reachable")
