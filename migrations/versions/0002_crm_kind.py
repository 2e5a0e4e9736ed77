"""connections.crm_kind: which connector talks to the connection's CRM

Every connection made so far speaks the REST contract, so existing rows get ``rest``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-14 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('connections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('crm_kind', sa.String(length=32), server_default='rest', nullable=False))


def downgrade():
    with op.batch_alter_table('connections', schema=None) as batch_op:
        batch_op.drop_column('crm_kind')
