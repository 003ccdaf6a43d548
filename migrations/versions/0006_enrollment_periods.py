"""enrollment periods: when each student was an active member of a course

Revision ID: a1e2c3d4f5b6
Revises: 5c1f0e2a9b71
Create Date: 2026-12-04 14:10:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'a1e2c3d4f5b6'
down_revision = '5c1f0e2a9b71'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('enrollment_period',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('course_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['course_id'], ['course.id'], name=op.f('fk_enrollment_period_course_id_course'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_enrollment_period_user_id_user'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_enrollment_period'))
    )
    with op.batch_alter_table('enrollment_period', schema=None) as batch_op:
        batch_op.create_index('ix_enrollment_period_course_user', ['course_id', 'user_id'], unique=False)
    # Existing students keep the grades they had: members since the beginning (until they left, when inactive).
    op.execute("INSERT INTO enrollment_period (course_id, user_id, started_at, ended_at) "
               "SELECT course_id, user_id, '1970-01-01 00:00:00', "
               "CASE WHEN active THEN NULL ELSE updated_at END FROM enrollment WHERE role = 'student'")


def downgrade():
    with op.batch_alter_table('enrollment_period', schema=None) as batch_op:
        batch_op.drop_index('ix_enrollment_period_course_user')
    op.drop_table('enrollment_period')
