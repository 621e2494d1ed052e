"""Alembic environment: runs on the connection `consumer.store.migrate` hands over.

`alembic upgrade head` (and `alembic current`, `history`) from the project root
work too, through alembic.ini: they connect to DATABASE_URL, as the CLI does.
"""

from __future__ import annotations

from alembic import context

from consumer.store.tables import metadata, reference_metadata

config = context.config


def run_migrations(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=[metadata, reference_metadata],
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    from consumer.config import Settings
    from consumer.store.engine import make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url") or Settings().database_url)
    with engine.connect() as own_connection:
        run_migrations(own_connection)
        own_connection.commit()
