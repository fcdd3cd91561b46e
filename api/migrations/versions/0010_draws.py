"""draws: a period's seats allotted at random among those who registered interest

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import api.models

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_str = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        'draw',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('post_id', sa.Integer(), nullable=False),
        sa.Column('service_id', sa.Integer(), nullable=False),
        sa.Column('opens_at', api.models.UTCDateTime(), nullable=False),
        sa.Column('closes_at', api.models.UTCDateTime(), nullable=False),
        sa.Column('first_day', sa.Date(), nullable=False),
        sa.Column('last_day', sa.Date(), nullable=False),
        sa.Column('status', _str(length=12), nullable=False),
        sa.Column('seed', _str(length=64), nullable=True),
        sa.Column('drawn_at', api.models.UTCDateTime(), nullable=True),
        sa.Column('staff_id', sa.Integer(), nullable=True),
        sa.Column('created_at', api.models.UTCDateTime(), nullable=False),
        sa.Column('updated_at', api.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['post_id'], ['post.id'], name=op.f('fk_draw_post_id_post')),
        sa.ForeignKeyConstraint(
            ['service_id'], ['service.id'], name=op.f('fk_draw_service_id_service')
        ),
        sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_draw_staff_id_staff')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_draw')),
    )
    with op.batch_alter_table('draw', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_draw_post_id'), ['post_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_draw_status'), ['status'], unique=False)
    with op.batch_alter_table('waitlist_entry', schema=None) as batch_op:
        batch_op.add_column(sa.Column('draw_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_waitlist_entry_draw_id'), ['draw_id'], unique=False)
        batch_op.create_foreign_key(
            batch_op.f('fk_waitlist_entry_draw_id_draw'), 'draw', ['draw_id'], ['id']
        )
    op.create_table(
        'draw_entry',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('draw_id', sa.Integer(), nullable=False),
        sa.Column('citizen_id', sa.Integer(), nullable=False),
        sa.Column('full_name', _str(length=120), nullable=False),
        sa.Column('name_key', _str(length=120), nullable=False),
        sa.Column('created_at', api.models.UTCDateTime(), nullable=False),
        sa.Column('rank', sa.Integer(), nullable=True),
        sa.Column('waitlist_entry_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ['citizen_id'], ['citizen.id'], name=op.f('fk_draw_entry_citizen_id_citizen')
        ),
        sa.ForeignKeyConstraint(['draw_id'], ['draw.id'], name=op.f('fk_draw_entry_draw_id_draw')),
        sa.ForeignKeyConstraint(
            ['waitlist_entry_id'],
            ['waitlist_entry.id'],
            name=op.f('fk_draw_entry_waitlist_entry_id_waitlist_entry'),
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_draw_entry')),
        sa.UniqueConstraint('draw_id', 'citizen_id', name=op.f('uq_draw_entry_draw_id_citizen_id')),
        sa.UniqueConstraint('draw_id', 'name_key', name=op.f('uq_draw_entry_draw_id_name_key')),
    )
    with op.batch_alter_table('draw_entry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_draw_entry_citizen_id'), ['citizen_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_draw_entry_draw_id'), ['draw_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('draw_entry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_draw_entry_draw_id'))
        batch_op.drop_index(batch_op.f('ix_draw_entry_citizen_id'))
    op.drop_table('draw_entry')
    with op.batch_alter_table('waitlist_entry', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_waitlist_entry_draw_id_draw'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_waitlist_entry_draw_id'))
        batch_op.drop_column('draw_id')
    with op.batch_alter_table('draw', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_draw_status'))
        batch_op.drop_index(batch_op.f('ix_draw_post_id'))
    op.drop_table('draw')
