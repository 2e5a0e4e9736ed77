"""HubSpot connections: the portal a connection belongs to, its OAuth refresh token, and its CRM status

- ``connections.crm_account_id``: the CRM's own account id (HubSpot's portal or hub id); webhooks and app-card
  requests name the portal, and this is how they find their connections. NULL for REST connections.
- ``connections.crm_refresh_token_encrypted`` and ``crm_access_expires_at``: a HubSpot OAuth grant (the access
  token stays in ``crm_token_encrypted``); NULL for a private-app token, which does not expire.
- ``connections.crm_status`` and ``crm_status_reason``: ``connected`` or ``needs_reconnect`` (the CRM refused
  the grant: an uninstalled app, a revoked refresh token).

Revision ID: 0004_hubspot
Revises: 0004_retry
Create Date: 2026-12-02 01:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004_hubspot'
down_revision = '0004_retry'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('connections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('crm_account_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('crm_refresh_token_encrypted', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('crm_access_expires_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('crm_status', sa.String(length=32), server_default='connected',
                                      nullable=False))
        batch_op.add_column(sa.Column('crm_status_reason', sa.Text(), nullable=True))
        batch_op.create_index('ix_connections_crm_account_id', ['crm_account_id'], unique=False)


def downgrade():
    with op.batch_alter_table('connections', schema=None) as batch_op:
        batch_op.drop_index('ix_connections_crm_account_id')
        batch_op.drop_column('crm_status_reason')
        batch_op.drop_column('crm_status')
        batch_op.drop_column('crm_access_expires_at')
        batch_op.drop_column('crm_refresh_token_encrypted')
        batch_op.drop_column('crm_account_id')
