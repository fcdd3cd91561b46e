"""desk conversations: talk to a person at the consulate (issue 13)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import api.models

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'desk_conversation',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('citizen_id', sa.Integer(), nullable=False),
        sa.Column('post_id', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=16), nullable=False),
        sa.Column('lang', sa.String(length=8), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('assigned_to', sa.Integer(), nullable=True),
        sa.Column('created_at', api.models.UTCDateTime(), nullable=False),
        sa.Column('waiting_since', api.models.UTCDateTime(), nullable=True),
        sa.Column('first_response_at', api.models.UTCDateTime(), nullable=True),
        sa.Column('last_message_at', api.models.UTCDateTime(), nullable=False),
        sa.Column('closed_at', api.models.UTCDateTime(), nullable=True),
        sa.Column('tried', sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ['assigned_to'], ['staff.id'], name=op.f('fk_desk_conversation_assigned_to_staff')
        ),
        sa.ForeignKeyConstraint(
            ['citizen_id'], ['citizen.id'], name=op.f('fk_desk_conversation_citizen_id_citizen')
        ),
        sa.ForeignKeyConstraint(
            ['post_id'], ['post.id'], name=op.f('fk_desk_conversation_post_id_post')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_desk_conversation')),
    )
    op.create_index(
        op.f('ix_desk_conversation_citizen_id'), 'desk_conversation', ['citizen_id'], unique=False
    )
    op.create_index(
        'ix_desk_conversation_inbox',
        'desk_conversation',
        ['post_id', 'status', 'waiting_since'],
        unique=False,
    )
    op.create_index(
        'uq_desk_conversation_live',
        'desk_conversation',
        ['citizen_id'],
        unique=True,
        sqlite_where=sa.text("status != 'closed'"),
        postgresql_where=sa.text("status != 'closed'"),
    )
    op.create_table(
        'desk_message',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('conversation_id', sa.Integer(), nullable=False),
        sa.Column('direction', sa.String(length=3), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('media', sa.String(length=500), nullable=False),
        sa.Column('staff_id', sa.Integer(), nullable=True),
        sa.Column('outbox_id', sa.Integer(), nullable=True),
        sa.Column('at', api.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ['conversation_id'],
            ['desk_conversation.id'],
            name=op.f('fk_desk_message_conversation_id_desk_conversation'),
        ),
        sa.ForeignKeyConstraint(
            ['outbox_id'], ['outbox.id'], name=op.f('fk_desk_message_outbox_id_outbox')
        ),
        sa.ForeignKeyConstraint(
            ['staff_id'], ['staff.id'], name=op.f('fk_desk_message_staff_id_staff')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_desk_message')),
    )
    op.create_index(
        op.f('ix_desk_message_conversation_id'), 'desk_message', ['conversation_id'], unique=False
    )
    op.create_table(
        'desk_answer',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('lang', sa.String(length=8), nullable=False),
        sa.Column('title', sa.String(length=80), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('created_by', sa.Integer(), nullable=True),
        sa.Column('created_at', api.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ['created_by'], ['staff.id'], name=op.f('fk_desk_answer_created_by_staff')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_desk_answer')),
    )
    op.create_index(op.f('ix_desk_answer_lang'), 'desk_answer', ['lang'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_desk_answer_lang'), table_name='desk_answer')
    op.drop_table('desk_answer')
    op.drop_index(op.f('ix_desk_message_conversation_id'), table_name='desk_message')
    op.drop_table('desk_message')
    op.drop_index('uq_desk_conversation_live', table_name='desk_conversation')
    op.drop_index('ix_desk_conversation_inbox', table_name='desk_conversation')
    op.drop_index(op.f('ix_desk_conversation_citizen_id'), table_name='desk_conversation')
    op.drop_table('desk_conversation')
