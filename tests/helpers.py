"""Helpers for reading back what the store wrote."""

from __future__ import annotations

from sqlalchemy import Engine, select

from consumer.pipeline import Counts, Pipeline
from consumer.sources import Input
from consumer.store.tables import STATE_TABLES, rejected_events
from tests.factory import encode


def dump_tables(engine: Engine) -> dict[str, list[tuple]]:
    """Every tracked table's rows, ordered by primary key: what BI would see."""
    with engine.connect() as connection:
        return {
            table.name: [tuple(row) for row in connection.execute(select(table).order_by(*table.primary_key.columns))]
            for table in STATE_TABLES
        }


def rejected_rows(engine: Engine) -> list[dict]:
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(select(rejected_events).order_by(rejected_events.c.id))]


def apply_events(engine: Engine, events: list, batch_size: int = 1000) -> Counts:
    """Run events (dicts or raw bytes) through the real pipeline, in batches."""
    pipeline = Pipeline(engine)
    totals = Counts()
    inputs = [Input(f"test:{n}", e if isinstance(e, bytes) else encode(e)) for n, e in enumerate(events, 1)]
    for start in range(0, len(inputs), batch_size):
        totals.add(pipeline.process(inputs[start : start + batch_size]))
    return totals
