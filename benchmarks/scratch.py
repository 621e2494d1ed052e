"""The benchmarks' guard: they write and empty the tracker's tables, so only ever on a scratch database.

A benchmark takes its database from --database-url only (never
DATABASE_URL, which in a worker's environment names production), and
refuses a database holding a row in any of the tracker's tables. Having
checked that, it may empty those tables between and after measurements:
everything in them is its own.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, inspect, literal, select

from consumer.store.engine import display_url
from consumer.store.tables import metadata


class NotAScratchDatabase(Exception):
    """The database holds data the benchmark would destroy."""


class NotAScratchQueue(Exception):
    """The queue holds messages the benchmark would purge."""


def refuse_unless_empty(engine: Engine, command: str) -> None:
    """Raise NotAScratchDatabase naming the first tracker table (of any schema revision) that holds a row."""
    existing = set(inspect(engine).get_table_names())
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            if table.name not in existing:
                continue
            if connection.execute(select(literal(1)).select_from(table).limit(1)).first() is not None:
                raise NotAScratchDatabase(
                    f"refusing to run {command} on {display_url(engine.url.render_as_string(hide_password=False))}: its "
                    f"table {table.name} holds rows, and {command} empties the tracker's tables; give --database-url a "
                    "scratch database (empty, or new)"
                )


def refuse_unless_empty_queue(queue: Any, command: str) -> None:
    """Raise NotAScratchQueue when the queue holds messages (visible, in flight or delayed): the benchmark purges it."""
    names = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed")
    attributes = queue.attributes(*names)
    held = sum(int(attributes.get(name, 0)) for name in names)
    if held:
        raise NotAScratchQueue(
            f"refusing to run {command} --sqs on the queue {queue.url}: it holds {held} messages, and {command} purges "
            "it; give --queue-url a scratch queue"
        )
