"""sync_runs and sync_run_records: the first sync and history imports (preview, progress, checkpoint, report)

Existing connections have no run: they keep syncing as before (a run only holds back the writes of a connection
that was connected after this release and whose first sync has not finished).

Revision ID: 0004_firstsync
Revises: 0004_time
Create Date: 2026-12-02 01:30:00.000000

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision = '0004_firstsync'
down_revision = '0004_time'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade():
    op.create_table('sync_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('phase', sa.String(length=32), nullable=True),
    sa.Column('date_from', sa.Date(), nullable=True),
    sa.Column('date_to', sa.Date(), nullable=True),
    sa.Column('auto_start', sa.Boolean(), nullable=False),
    sa.Column('preview', JSON, nullable=False),
    sa.Column('progress', JSON, nullable=False),
    sa.Column('checkpoint', JSON, nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('previewed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('connection_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['connection_id'], ['connections.id'], name=op.f('fk_sync_runs_connection_id_connections'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_runs'))
    )
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.create_index('ix_sync_runs_connection_kind', ['connection_id', 'kind'], unique=False)

    op.create_table('sync_run_records',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('stage', sa.String(length=8), nullable=False),
    sa.Column('phase', sa.String(length=16), nullable=False),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('object_id', sa.String(length=128), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('planned', sa.String(length=16), nullable=True),
    sa.Column('partner_id', sa.String(length=128), nullable=True),
    sa.Column('partner_name', sa.String(length=200), nullable=True),
    sa.Column('candidates', JSON, nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('error_code', sa.String(length=64), nullable=True),
    sa.Column('intuit_tid', sa.String(length=128), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['sync_runs.id'], name=op.f('fk_sync_run_records_run_id_sync_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_run_records')),
    sa.UniqueConstraint('run_id', 'stage', 'entity', 'object_id', name=op.f('uq_sync_run_records_run_id_stage_entity_object_id'))
    )
    with op.batch_alter_table('sync_run_records', schema=None) as batch_op:
        batch_op.create_index('ix_sync_run_records_run_stage_action', ['run_id', 'stage', 'action'], unique=False)


def downgrade():
    with op.batch_alter_table('sync_run_records', schema=None) as batch_op:
        batch_op.drop_index('ix_sync_run_records_run_stage_action')
    op.drop_table('sync_run_records')
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_sync_runs_connection_kind')
    op.drop_table('sync_runs')
