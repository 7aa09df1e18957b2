"""watermarks: tenants.watermark and outbox.watermark

A tenant's writes are numbered (read-your-writes, docs/api-watermarks.md): every transaction that
writes outbox rows bumps tenants.watermark and stamps its rows with the new value. Existing rows
get 0, which every watermark already covers (they were written before any was issued).

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tenants') as batch_op:
        batch_op.add_column(sa.Column('watermark', sa.BigInteger(), nullable=False,
                                      server_default='0'))
    with op.batch_alter_table('outbox') as batch_op:
        batch_op.add_column(sa.Column('watermark', sa.BigInteger(), nullable=False,
                                      server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('outbox') as batch_op:
        batch_op.drop_column('watermark')
    with op.batch_alter_table('tenants') as batch_op:
        batch_op.drop_column('watermark')
