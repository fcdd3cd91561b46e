"""token expiry and console logins

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 09:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import api.models

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', api.models.UTCDateTime(), nullable=True))
    op.create_table(
        'console_login',
        sa.Column('id_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('staff_id', sa.Integer(), nullable=False),
        sa.Column('created_at', api.models.UTCDateTime(), nullable=False),
        sa.Column('expires_at', api.models.UTCDateTime(), nullable=False),
        sa.Column('ended_at', api.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_console_login_staff_id_staff')),
        sa.PrimaryKeyConstraint('id_hash', name=op.f('pk_console_login')),
    )
    with op.batch_alter_table('console_login', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_console_login_staff_id'), ['staff_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('console_login', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_console_login_staff_id'))
    op.drop_table('console_login')
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.drop_column('expires_at')
