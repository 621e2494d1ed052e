"""The database side: tables, engine, migrations and set-based upserts."""
