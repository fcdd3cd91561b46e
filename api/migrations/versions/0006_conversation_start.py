"""conversation start: one row per conversation, for the console's dashboard

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import api.models

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'conversation_start',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=16), nullable=False),
        sa.Column('lang', sa.String(length=8), nullable=False),
        sa.Column('citizen_id', sa.Integer(), nullable=False),
        sa.Column('started_at', api.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_conversation_start')),
    )
    with op.batch_alter_table('conversation_start', schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f('ix_conversation_start_citizen_id'), ['citizen_id'], unique=False
        )
        batch_op.create_index(
            batch_op.f('ix_conversation_start_started_at'), ['started_at'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('conversation_start', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_conversation_start_started_at'))
        batch_op.drop_index(batch_op.f('ix_conversation_start_citizen_id'))
    op.drop_table('conversation_start')
