"""The quarantine keeps one row per distinct payload.

`rejected_events` gained a row on every delivery, so replaying the same bad
file twice stored every bad line twice, and `status` and `retry --all`
counted them twice. Now a row is one distinct payload (the same bytes):
`payload_sha256` (unique) identifies it, `received_at` stays the first time
it was seen, `last_seen_at` and `times_seen` say when and how often it was
seen since, `first_source` keeps where it was first seen and `source`,
`reason`, `event_name` and `receive_count` follow the latest delivery.

A table that already holds duplicates is merged: one row per payload (the
one with the lowest id survives), `times_seen` the number of rows merged,
`received_at` the earliest, `last_seen_at` the latest, `first_source` from
the earliest row and source, reason, event name and receive count from the
latest (ordered by received_at, then id).

Workers of the previous version keep running against this schema during a
rolling upgrade (docs/operations.md, Upgrade): on Postgres a trigger takes
their plain INSERT, which names none of the new columns, and counts it on
the payload's row (or fills the digest and first source of a new one).
SQLite has no rolling upgrades: stop the old process, migrate, start.

Downgrade drops the new columns and the trigger; merged rows stay merged.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)

# Every existing row is one delivery. Postgres has sha256(bytea) since version 11; SQLite gets the same
# function from Python for this migration.
FILL = "UPDATE rejected_events SET payload_sha256 = sha256(payload), first_source = source, last_seen_at = received_at, times_seen = 1"

# A survivor (the lowest id of its payload) takes its group's figures. Before 0005 every row was one
# delivery seen at received_at, so the first delivery is the lowest (received_at, id) and the latest the
# highest. Correlated subqueries (no UPDATE ... FROM) so that any SQLite version runs them, each one a
# probe of MERGE_INDEX: without it, the ORDER BY ... LIMIT 1 made Postgres walk the received_at index
# for every group (200,000 rows: no result after 10 minutes; with it, seconds).
MERGE_INDEX = ("ix_rejected_events_merge_0005", ["payload_sha256", "received_at", "id"])
_GROUP = "FROM rejected_events d WHERE d.payload_sha256 = rejected_events.payload_sha256"
_FIRST = f"{_GROUP} ORDER BY d.payload_sha256, d.received_at, d.id LIMIT 1"
_LATEST = f"{_GROUP} ORDER BY d.payload_sha256 DESC, d.received_at DESC, d.id DESC LIMIT 1"
MERGE = (
    "UPDATE rejected_events SET "
    f"times_seen = (SELECT SUM(d.times_seen) {_GROUP}), "
    f"received_at = (SELECT MIN(d.received_at) {_GROUP}), "
    f"last_seen_at = (SELECT MAX(d.received_at) {_GROUP}), "
    f"first_source = (SELECT d.first_source {_FIRST}), "
    f"source = (SELECT d.source {_LATEST}), "
    f"reason = (SELECT d.reason {_LATEST}), "
    f"event_name = (SELECT d.event_name {_LATEST}), "
    f"receive_count = (SELECT d.receive_count {_LATEST}) "
    "WHERE id IN (SELECT MIN(id) FROM rejected_events GROUP BY payload_sha256 HAVING COUNT(*) > 1)"
)
DROP_MERGED = (
    "DELETE FROM rejected_events WHERE EXISTS "
    "(SELECT 1 FROM rejected_events k WHERE k.payload_sha256 = rejected_events.payload_sha256 AND k.id < rejected_events.id)"
)

SOURCE_COMMENT = "where it was seen last: SQS message id, or file:line"

# Writers from before 0005 insert (source, reason, payload, event_name, receive_count) and never set the
# digest; today's writer always does, so the trigger's WHEN skips it without calling the function.
OLD_WRITERS_FUNCTION = """
CREATE FUNCTION rejected_events_from_old_writers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.payload_sha256 := sha256(NEW.payload);
    UPDATE rejected_events
       SET last_seen_at = now(), times_seen = times_seen + 1, source = NEW.source, reason = NEW.reason,
           event_name = NEW.event_name, receive_count = NEW.receive_count
     WHERE payload_sha256 = NEW.payload_sha256;
    IF FOUND THEN
        RETURN NULL;  -- counted on the payload's row: no new row
    END IF;
    NEW.first_source := COALESCE(NEW.first_source, NEW.source);
    RETURN NEW;
END $$
"""
OLD_WRITERS_TRIGGER = (
    "CREATE TRIGGER rejected_events_from_old_writers BEFORE INSERT ON rejected_events "
    "FOR EACH ROW WHEN (NEW.payload_sha256 IS NULL) EXECUTE FUNCTION rejected_events_from_old_writers()"
)


def _sha256(payload: bytes | None) -> bytes | None:
    return None if payload is None else hashlib.sha256(payload).digest()


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("rejected_events") as batch:
        batch.add_column(sa.Column("payload_sha256", sa.LargeBinary, comment="SHA-256 of payload: one row per distinct payload"))
        batch.add_column(sa.Column("first_source", sa.Text, comment="where it was first seen"))
        batch.add_column(sa.Column("last_seen_at", TIME, comment="last time this payload was seen"))  # default below (SQLite)
        batch.add_column(sa.Column("times_seen", sa.Integer, server_default="1", comment="deliveries of this payload"))
    if bind.dialect.name == "sqlite":
        bind.connection.driver_connection.create_function("sha256", 1, _sha256, deterministic=True)
    op.execute(FILL)
    op.create_index(MERGE_INDEX[0], "rejected_events", MERGE_INDEX[1])
    if bind.dialect.name == "postgresql":
        op.execute("ANALYZE rejected_events")  # the planner sees the new column and index
    op.execute(MERGE)
    op.execute(DROP_MERGED)
    op.drop_index(MERGE_INDEX[0], "rejected_events")
    with op.batch_alter_table("rejected_events") as batch:
        batch.alter_column("payload_sha256", existing_type=sa.LargeBinary, nullable=False,
                           existing_comment="SHA-256 of payload: one row per distinct payload")
        batch.alter_column("first_source", existing_type=sa.Text, nullable=False, existing_comment="where it was first seen")
        batch.alter_column("last_seen_at", existing_type=TIME, nullable=False, server_default=sa.func.current_timestamp(),
                           existing_comment="last time this payload was seen")
        batch.alter_column("times_seen", existing_type=sa.Integer, nullable=False, existing_server_default="1",
                           existing_comment="deliveries of this payload")
        batch.create_index("ux_rejected_events_payload_sha256", ["payload_sha256"], unique=True)
        batch.create_index("ix_rejected_events_last_seen_at", ["last_seen_at"])
        batch.create_check_constraint("ck_rejected_events_times_seen", "times_seen >= 1")
    if bind.dialect.name == "postgresql":  # SQLite keeps no comments, and has no rolling upgrades
        op.alter_column("rejected_events", "source", existing_type=sa.Text, existing_nullable=False,
                        comment=SOURCE_COMMENT, existing_comment="SQS message id, or file:line")
        op.alter_column("rejected_events", "received_at", existing_type=TIME, existing_nullable=False,
                        comment="first time this payload was seen")
        op.execute(OLD_WRITERS_FUNCTION)
        op.execute(OLD_WRITERS_TRIGGER)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER rejected_events_from_old_writers ON rejected_events")
        op.execute("DROP FUNCTION rejected_events_from_old_writers()")
        op.alter_column("rejected_events", "source", existing_type=sa.Text, existing_nullable=False,
                        comment="SQS message id, or file:line", existing_comment=SOURCE_COMMENT)
        op.alter_column("rejected_events", "received_at", existing_type=TIME, existing_nullable=False,
                        comment=None, existing_comment="first time this payload was seen")
    with op.batch_alter_table("rejected_events") as batch:
        batch.drop_constraint("ck_rejected_events_times_seen", type_="check")
        batch.drop_index("ix_rejected_events_last_seen_at")
        batch.drop_index("ux_rejected_events_payload_sha256")
        for column in ("times_seen", "last_seen_at", "first_source", "payload_sha256"):
            batch.drop_column(column)
