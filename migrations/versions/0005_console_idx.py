"""audit_entries index on (outcome, connection_id); sync_run_records.dismissed_at

The failed-record count of /healthz and the health panel asks for the audit entries of one outcome ("failed") of
a connection; without an index on (outcome, connection_id) it read every audit entry of the connection (or, for
/healthz, of the installation). ``dismissed_at`` lets the console dismiss a failed record of a first sync or a
history import without changing what the run's report says happened to it.

Revision ID: 0005_console_idx
Revises: 0004_firstsync
Create Date: 2026-12-02 06:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005_console_idx'
down_revision = '0004_firstsync'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.create_index('ix_audit_entries_outcome_connection', ['outcome', 'connection_id'], unique=False)
    with op.batch_alter_table('sync_run_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dismissed_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('sync_run_records', schema=None) as batch_op:
        batch_op.drop_column('dismissed_at')
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_entries_outcome_connection')
