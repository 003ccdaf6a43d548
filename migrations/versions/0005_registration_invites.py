"""registration invitations, pending approval and service hosts

Revision ID: 5c1f0e2a9b71
Revises: 08bfad050656
Create Date: 2026-12-04 13:50:00

"""
from alembic import op
import sqlalchemy as sa


revision = '5c1f0e2a9b71'
down_revision = '08bfad050656'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('lti_registration_invite',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('note', sa.String(length=255), nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('registration_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['registration_id'], ['lti_registration.id'],
                            name=op.f('fk_lti_registration_invite_registration_id_lti_registration'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lti_registration_invite')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_lti_registration_invite_token_hash'))
    )
    with op.batch_alter_table('lti_registration', schema=None) as batch_op:
        batch_op.add_column(sa.Column('service_hosts', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('pending_approval', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade():
    with op.batch_alter_table('lti_registration', schema=None) as batch_op:
        batch_op.drop_column('pending_approval')
        batch_op.drop_column('service_hosts')
    op.drop_table('lti_registration_invite')
