"""contact_links: index the records waiting for review and, on PostgreSQL, their candidates

Every unit of a drain asks which records waiting for review name the contact or customer it just settled
(``crm_qb.sync.customers.review.waiting_naming``). With only the connection's index, the database read every link
of the connection for it and compared the text of each waiting record's candidates: about 10 ms a unit on
PostgreSQL with the 24,000 records a 100,000-customer first sync leaves waiting. (connection_id, state) narrows the
read to the waiting records on both databases; on PostgreSQL a GIN index (jsonb_path_ops) on the candidates answers
"which lists contain this id" (``@>``) directly.

Revision ID: 0006_review_idx
Revises: 0005_time_walk
Create Date: 2026-12-03 14:00:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0006_review_idx'
down_revision = '0005_time_walk'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_contact_links_connection_state', 'contact_links', ['connection_id', 'state'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        op.create_index('ix_contact_links_review_candidates', 'contact_links', ['review_candidates'], unique=False,
                        postgresql_using='gin', postgresql_ops={'review_candidates': 'jsonb_path_ops'})


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_index('ix_contact_links_review_candidates', table_name='contact_links')
    op.drop_index('ix_contact_links_connection_state', table_name='contact_links')
