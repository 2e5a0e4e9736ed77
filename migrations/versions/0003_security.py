"""Security: per-connection panel secret, revocable admin sessions, the CRM's web origin; pruned event payloads

- ``connections.panel_secret``: mixed into the key that signs the connection's panel tokens; rotating it revokes
  every outstanding panel URL and embed token. Existing rows keep NULL (their tokens stay valid until a rotation).
- ``connections.admin_epoch``: admin links and sessions carry it; raising it revokes all of them.
- ``connections.crm_web_origin``: where the CRM's web pages live (the panel's ``frame-ancestors``); NULL means
  the origin of ``crm_base_url``, which is what existing rows used.
- ``inbound_events.payload_pruned_at``: when the retention job emptied the event's payload.

Revision ID: 0003_security
Revises: 0003_sync
Create Date: 2026-12-20 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0003_security'
down_revision = '0003_sync'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('connections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('panel_secret', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('admin_epoch', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('crm_web_origin', sa.String(length=500), nullable=True))
    with op.batch_alter_table('inbound_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payload_pruned_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('inbound_events', schema=None) as batch_op:
        batch_op.drop_column('payload_pruned_at')
    with op.batch_alter_table('connections', schema=None) as batch_op:
        batch_op.drop_column('crm_web_origin')
        batch_op.drop_column('admin_epoch')
        batch_op.drop_column('panel_secret')
