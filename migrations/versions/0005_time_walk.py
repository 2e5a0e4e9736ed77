"""contact_links.time_walked_at: when a linked contact's earlier CRM activities were read for billable time;
time_entries' CRM versions as 64-bit integers (HubSpot's versions are epoch milliseconds, past a 32-bit integer)

A link without it has its contact's earlier activities read after the next drain (crm_qb/sync/time/earlier.py).
Links that exist when this runs are marked read now, so upgrading does not start a walk of every existing contact
behind the drains; `crm-qb backfill <id>` walks a connection's activities when its earlier time is wanted.

Revision ID: 0005_time_walk
Revises: 0004_firstsync
Create Date: 2026-12-02 06:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005_time_walk'
down_revision = "0005_console_idx"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('contact_links', schema=None) as batch_op:
        batch_op.add_column(sa.Column('time_walked_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_contact_links_time_walked_at', ['connection_id', 'time_walked_at'], unique=False)
    op.execute(sa.text("UPDATE contact_links SET time_walked_at = CURRENT_TIMESTAMP"))
    with op.batch_alter_table('time_entries', schema=None) as batch_op:
        batch_op.alter_column('crm_version', existing_type=sa.Integer(), type_=sa.BigInteger())
        batch_op.alter_column('conflict_version', existing_type=sa.Integer(), type_=sa.BigInteger())


def downgrade():
    with op.batch_alter_table('time_entries', schema=None) as batch_op:
        batch_op.alter_column('conflict_version', existing_type=sa.BigInteger(), type_=sa.Integer())
        batch_op.alter_column('crm_version', existing_type=sa.BigInteger(), type_=sa.Integer())
    with op.batch_alter_table('contact_links', schema=None) as batch_op:
        batch_op.drop_index('ix_contact_links_time_walked_at')
        batch_op.drop_column('time_walked_at')
