"""an index on seen_events.received_at, for pruning past the redelivery horizon

The prune (services/ingest.py forget_seen) deletes the oldest ids in batches of 1,000; without
this index each batch would scan the whole table. On PostgreSQL it is built CONCURRENTLY, so a
large seen_events table keeps taking ingests; if a build fails, drop the INVALID index it leaves
and run the upgrade again.

Revision ID: 0004
Revises: 0003
"""
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

NAME = "ix_seen_events_received"


def _concurrently() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if _concurrently():
        with op.get_context().autocommit_block():
            op.create_index(NAME, "seen_events", ["received_at"], postgresql_concurrently=True)
    else:
        op.create_index(NAME, "seen_events", ["received_at"])


def downgrade() -> None:
    if _concurrently():
        with op.get_context().autocommit_block():
            op.drop_index(NAME, table_name="seen_events", postgresql_concurrently=True)
    else:
        op.drop_index(NAME, table_name="seen_events")
