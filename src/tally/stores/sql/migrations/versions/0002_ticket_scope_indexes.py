"""indexes for cold ticket counts of narrow scopes

A cold read of an agent (tickets of a few teams, or assigned to them) or a user (tickets they
requested) used to scan every live ticket of the tenant (ix_tickets_tenant_live) or the whole
table; these indexes let PostgreSQL read only the scope's rows (docs/deployment.md, EXPLAIN).
On PostgreSQL they are built CONCURRENTLY, so a large tickets table keeps taking writes; if a
build fails, drop the INVALID index it leaves and run the upgrade again.

Revision ID: 0002
Revises: 0001
"""
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

INDEXES = {"ix_tickets_tenant_team": "team_id", "ix_tickets_tenant_assignee": "assignee_id",
           "ix_tickets_tenant_requester": "requester_id"}


def _concurrently() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if _concurrently():
        with op.get_context().autocommit_block():
            for name, column in INDEXES.items():
                op.create_index(name, "tickets", ["tenant_id", column],
                                postgresql_concurrently=True)
    else:
        for name, column in INDEXES.items():
            op.create_index(name, "tickets", ["tenant_id", column])


def downgrade() -> None:
    if _concurrently():
        with op.get_context().autocommit_block():
            for name in INDEXES:
                op.drop_index(name, table_name="tickets", postgresql_concurrently=True)
    else:
        for name in INDEXES:
            op.drop_index(name, table_name="tickets")
