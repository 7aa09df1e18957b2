"""tickets.tags as jsonb on PostgreSQL

A tag filter tests `tags ? 'tag'`; on a `json` column each test parsed the row's JSON text again
(a cast to jsonb per row and per filter), the largest per-row cost left in a cold recompute. The
column is rewritten once as jsonb (ACCESS EXCLUSIVE for the rewrite: 7-8 s per million tickets,
docs/decisions.md). Nothing changes on SQLite, whose JSON is text either way. Ingest refuses NUL
in a tag (tally.http.bodies), the one JSON string jsonb cannot hold.

Revision ID: 0003
Revises: 0002
"""
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if _postgresql():
        op.execute("ALTER TABLE tickets ALTER COLUMN tags TYPE jsonb USING tags::jsonb")


def downgrade() -> None:
    if _postgresql():
        op.execute("ALTER TABLE tickets ALTER COLUMN tags TYPE json USING tags::json")
