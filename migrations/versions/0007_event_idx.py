"""inbound_events: index the pending events by connection (in id order) and by realm

A drain reads its connection's pending events in id order (``events.pending``), and a QBO drain first routes its
realm's new events and settles deliveries to connections gone (``routing``). Each filtered the status index,
which holds every tenant's pending events: a first sync's 3,000 echoes waiting to be settled made every other
tenant's drain read them all (0.6 to 2.4 ms a query against 0.1 ms), so one tenant's backlog slowed the others.

Revision ID: 0007_event_idx
Revises: 0006_review_idx
Create Date: 2026-12-03 15:00:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0007_event_idx'
down_revision = '0006_review_idx'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_inbound_events_connection_status', 'inbound_events', ['connection_id', 'status', 'id'],
                    unique=False)
    op.create_index('ix_inbound_events_realm_status', 'inbound_events', ['realm_id', 'status'], unique=False)


def downgrade():
    op.drop_index('ix_inbound_events_realm_status', table_name='inbound_events')
    op.drop_index('ix_inbound_events_connection_status', table_name='inbound_events')
