"""time_entries and time_user_mappings: billable CRM activities as QBO TimeActivity (DESIGN §9)

- ``time_entries``: one row per CRM activity the time sync has seen (unique per connection), with its
  TimeActivity once created, the request id of its create, its billing status and, while held, why.
- ``time_user_mappings``: each CRM user's QBO Employee or Vendor (matched by e-mail, then name, or set by hand),
  or the reason it waits for a person.

Revision ID: 0004_time
Revises: 0004_hubspot
Create Date: 2026-12-02 02:00:00.000000

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision = '0004_time'
down_revision = '0004_hubspot'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
MONEY = sa.Numeric(18, 2).with_variant(sa.String(48), "sqlite")
RATE = sa.Numeric(18, 4).with_variant(sa.String(48), "sqlite")


def upgrade():
    op.create_table('time_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('connection_id', sa.Integer(), nullable=False),
    sa.Column('crm_activity_id', sa.String(length=128), nullable=False),
    sa.Column('crm_contact_id', sa.String(length=128), nullable=True),
    sa.Column('crm_user_id', sa.String(length=128), nullable=True),
    sa.Column('crm_version', sa.Integer(), nullable=True),
    sa.Column('state', sa.Enum('held', 'creating', 'synced', 'billed', 'removed', name='timestate',
                               native_enum=False, length=32), nullable=False),
    sa.Column('hold_kind', sa.String(length=16), nullable=True),
    sa.Column('hold_reason', sa.Text(), nullable=True),
    sa.Column('activity', JSON, nullable=False),
    sa.Column('qbo_id', sa.String(length=64), nullable=True),
    sa.Column('qbo_sync_token', sa.String(length=32), nullable=True),
    sa.Column('qbo_customer_id', sa.String(length=64), nullable=True),
    sa.Column('billable_status', sa.String(length=16), nullable=True),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('batch_item_id', sa.String(length=16), nullable=True),
    sa.Column('sent', JSON, nullable=True),
    sa.Column('written', JSON, nullable=True),
    sa.Column('txn_date', sa.Date(), nullable=True),
    sa.Column('minutes', sa.Integer(), nullable=True),
    sa.Column('hourly_rate', RATE, nullable=True),
    sa.Column('amount', MONEY, nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('conflict_version', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['connection_id'], ['connections.id'], name=op.f('fk_time_entries_connection_id_connections'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_time_entries')),
    sa.UniqueConstraint('connection_id', 'crm_activity_id', name=op.f('uq_time_entries_connection_id_crm_activity_id'))
    )
    with op.batch_alter_table('time_entries', schema=None) as batch_op:
        batch_op.create_index('ix_time_entries_contact', ['connection_id', 'crm_contact_id'], unique=False)
        batch_op.create_index('ix_time_entries_state', ['connection_id', 'state'], unique=False)

    op.create_table('time_user_mappings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('connection_id', sa.Integer(), nullable=False),
    sa.Column('crm_user_id', sa.String(length=128), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('qbo_kind', sa.String(length=16), nullable=True),
    sa.Column('qbo_id', sa.String(length=64), nullable=True),
    sa.Column('qbo_name', sa.String(length=500), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('review_reason', sa.Text(), nullable=True),
    sa.Column('candidates', JSON, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['connection_id'], ['connections.id'], name=op.f('fk_time_user_mappings_connection_id_connections'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_time_user_mappings')),
    sa.UniqueConstraint('connection_id', 'crm_user_id', name=op.f('uq_time_user_mappings_connection_id_crm_user_id'))
    )


def downgrade():
    op.drop_table('time_user_mappings')
    with op.batch_alter_table('time_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_time_entries_state')
        batch_op.drop_index('ix_time_entries_contact')
    op.drop_table('time_entries')
