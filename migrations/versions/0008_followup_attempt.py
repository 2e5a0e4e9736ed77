"""follow_ups: when a create of the row's task was first sent to the CRM

Before creating a task, a scan listed the contact's tasks to find one a crashed run had created but not recorded
(every task carries its row's marker). That read was made for every task, even for rows no run had ever tried:
a first sync with 2,000 overdue invoices made 2,000 task reads that could find nothing, over a third of what it
asked of the CRM. A scan now commits ``task_attempted_at`` before the create, and searches only where it is set.

Rows pending when this migration runs may have had a create sent by the code before it, which kept no such
record: they are marked as attempted, so their marker is still searched for.

Revision ID: 0008_followup_attempt
Revises: 0007_event_idx
Create Date: 2026-12-04 17:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008_followup_attempt'
down_revision = '0007_event_idx'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('follow_ups') as batch_op:
        batch_op.add_column(sa.Column('task_attempted_at', sa.DateTime(timezone=True), nullable=True))
    op.execute(sa.text("UPDATE follow_ups SET task_attempted_at = created_at WHERE status = 'pending'"))


def downgrade():
    with op.batch_alter_table('follow_ups') as batch_op:
        batch_op.drop_column('task_attempted_at')
