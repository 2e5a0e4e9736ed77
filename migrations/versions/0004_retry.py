"""Retry: backed-off events, the CRM catch-up poll's cursor, a connection's outage

- ``inbound_events.next_attempt_at``: an event whose last attempt failed for now waits until then (NULL: due).
- ``connections.crm_cursor``: the CRM's ``updated_at`` the catch-up poll has read up to (the CRM's clock);
  ``connections.crm_polled_at``: when that poll last completed (ours).
- ``connections.outage_side``, ``outage_since``, ``outage_reason``: the side (qbo or crm) that stopped answering
  for this connection, since when and why; NULL while both answer.

Revision ID: 0004_retry
Revises: 0003_security
Create Date: 2026-12-02 01:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004_retry'
down_revision = '0003_security'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('inbound_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_inbound_events_status_next_attempt', ['status', 'next_attempt_at'], unique=False)
    with op.batch_alter_table('connections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('crm_cursor', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('crm_polled_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('outage_side', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('outage_since', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('outage_reason', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('connections', schema=None) as batch_op:
        batch_op.drop_column('outage_reason')
        batch_op.drop_column('outage_since')
        batch_op.drop_column('outage_side')
        batch_op.drop_column('crm_polled_at')
        batch_op.drop_column('crm_cursor')
    with op.batch_alter_table('inbound_events', schema=None) as batch_op:
        batch_op.drop_index('ix_inbound_events_status_next_attempt')
        batch_op.drop_column('next_attempt_at')
