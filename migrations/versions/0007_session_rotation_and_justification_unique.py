"""a session keeps the code rotation it opened with; one live justification per student and session

Revision ID: b7c8d9e0f1a2
Revises: a1e2c3d4f5b6
Create Date: 2026-12-04 14:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'b7c8d9e0f1a2'
down_revision = 'a1e2c3d4f5b6'
branch_labels = None
depends_on = None

LIVE = sa.text("status IN ('pending', 'approved')")


def upgrade():
    with op.batch_alter_table('class_session', schema=None) as batch_op:
        batch_op.add_column(sa.Column('code_rotation_seconds', sa.Integer(), nullable=True))
    # Duplicates stored before the index existed: keep one live justification (the oldest approved one, else
    # the oldest pending one) and mark the others rejected.
    op.execute("""
        UPDATE justification SET status = 'rejected'
        WHERE status IN ('pending', 'approved') AND EXISTS (
            SELECT 1 FROM justification AS other
            WHERE other.class_session_id = justification.class_session_id
              AND other.student_id = justification.student_id AND other.id <> justification.id
              AND ((other.status = 'approved' AND justification.status = 'pending')
                   OR (other.status = justification.status AND other.id < justification.id)))
    """)
    op.create_index('uq_justification_live', 'justification', ['class_session_id', 'student_id'], unique=True,
                    sqlite_where=LIVE, postgresql_where=LIVE)


def downgrade():
    op.drop_index('uq_justification_live', table_name='justification', sqlite_where=LIVE, postgresql_where=LIVE)
    with op.batch_alter_table('class_session', schema=None) as batch_op:
        batch_op.drop_column('code_rotation_seconds')
