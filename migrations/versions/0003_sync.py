"""qbo_customers: the QBO customer hierarchy (a sub-customer's parent and name), for every customer the sync sees

Filled as customers change or are backfilled; an existing installation has an empty table until then, and a job's
transactions appear on its parent's contact once the job has been seen (``crm-qb backfill`` sees every one).

Revision ID: 0003_sync
Revises: 0002
Create Date: 2026-12-01 21:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0003_sync'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('qbo_customers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('connection_id', sa.Integer(), nullable=False),
    sa.Column('qbo_customer_id', sa.String(length=64), nullable=False),
    sa.Column('parent_id', sa.String(length=64), nullable=True),
    sa.Column('display_name', sa.String(length=500), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['connection_id'], ['connections.id'], name=op.f('fk_qbo_customers_connection_id_connections'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qbo_customers')),
    sa.UniqueConstraint('connection_id', 'qbo_customer_id', name=op.f('uq_qbo_customers_connection_id_qbo_customer_id'))
    )
    with op.batch_alter_table('qbo_customers', schema=None) as batch_op:
        batch_op.create_index('ix_qbo_customers_parent', ['connection_id', 'parent_id'], unique=False)


def downgrade():
    with op.batch_alter_table('qbo_customers', schema=None) as batch_op:
        batch_op.drop_index('ix_qbo_customers_parent')
    op.drop_table('qbo_customers')
