"""Alembic migrations, shipped inside the installed package as `consumer.migrations`."""
