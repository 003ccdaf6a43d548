"""course policy: NULL rules mean "the site's default"

Revision ID: c3d4e5f6a7b8
Revises: b7c8d9e0f1a2
Create Date: 2026-12-04 15:00:00

Existing values stay as they are (they may have been chosen by a teacher); from now on a partial
save writes only what changed, and what a course never set follows the site's settings.
"""
from alembic import op
import sqlalchemy as sa


revision = 'c3d4e5f6a7b8'
down_revision = 'b7c8d9e0f1a2'
branch_labels = None
depends_on = None

COLUMNS = (
    ("points_present", sa.Float()), ("points_late", sa.Float()), ("points_absent", sa.Float()),
    ("present_minutes", sa.Integer()), ("late_minutes", sa.Integer()), ("code_rotation_seconds", sa.Integer()),
    ("drop_lowest", sa.Integer()), ("denominator", sa.String(length=16)),
)


def upgrade():
    with op.batch_alter_table('course_policy', schema=None) as batch_op:
        for name, type_ in COLUMNS:
            batch_op.alter_column(name, existing_type=type_, nullable=True, server_default=None)


def downgrade():
    defaults = {"points_present": "1.0", "points_late": "0.5", "points_absent": "0.0", "present_minutes": "10",
                "late_minutes": "30", "code_rotation_seconds": "15", "drop_lowest": "0", "denominator": "'closed'"}
    for name, value in defaults.items():
        op.execute(f"UPDATE course_policy SET {name} = {value} WHERE {name} IS NULL")
    with op.batch_alter_table('course_policy', schema=None) as batch_op:
        for name, type_ in COLUMNS:
            batch_op.alter_column(name, existing_type=type_, nullable=False)
