"""translations reviewed in the console, translators' languages, glossary, voice prompts

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 10:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import api.models

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_str = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    with op.batch_alter_table('staff', schema=None) as batch_op:
        batch_op.alter_column(
            'role', existing_type=sa.String(length=8), type_=sa.String(length=16)
        )
    op.create_table(
        'staff_language',
        sa.Column('staff_id', sa.Integer(), nullable=False),
        sa.Column('lang', _str(length=8), nullable=False),
        sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_staff_language_staff_id_staff')),
        sa.PrimaryKeyConstraint('staff_id', 'lang', name=op.f('pk_staff_language')),
    )
    op.create_table(
        'translation',
        sa.Column('lang', _str(length=8), nullable=False),
        sa.Column('key', _str(length=80), nullable=False),
        sa.Column('text', _str(length=4096), nullable=False),
        sa.Column('source', _str(length=4096), nullable=False),
        sa.Column('reviewed', sa.Boolean(), nullable=False),
        sa.Column('previous_text', _str(length=4096), nullable=True),
        sa.Column('comment', _str(length=1000), nullable=False),
        sa.Column('staff_id', sa.Integer(), nullable=True),
        sa.Column('updated_at', api.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_translation_staff_id_staff')),
        sa.PrimaryKeyConstraint('lang', 'key', name=op.f('pk_translation')),
    )
    op.create_table(
        'translation_version',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_translation_version')),
    )
    op.create_table(
        'glossary_term',
        sa.Column('term_id', _str(length=40), nullable=False),
        sa.Column('lang', _str(length=8), nullable=False),
        sa.Column('text', _str(length=200), nullable=False),
        sa.Column('staff_id', sa.Integer(), nullable=True),
        sa.Column('updated_at', api.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_glossary_term_staff_id_staff')),
        sa.PrimaryKeyConstraint('term_id', 'lang', name=op.f('pk_glossary_term')),
    )
    op.create_table(
        'voice_prompt',
        sa.Column('lang', _str(length=8), nullable=False),
        sa.Column('key', _str(length=80), nullable=False),
        sa.Column('token', _str(length=64), nullable=False),
        sa.Column('audio', sa.LargeBinary(), nullable=False),
        sa.Column('seconds', sa.Float(), nullable=False),
        sa.Column('staff_id', sa.Integer(), nullable=True),
        sa.Column('updated_at', api.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_voice_prompt_staff_id_staff')),
        sa.PrimaryKeyConstraint('lang', 'key', name=op.f('pk_voice_prompt')),
        sa.UniqueConstraint('token', name=op.f('uq_voice_prompt_token')),
    )


def downgrade() -> None:
    op.drop_table('voice_prompt')
    op.drop_table('glossary_term')
    op.drop_table('translation_version')
    op.drop_table('translation')
    op.drop_table('staff_language')
    with op.batch_alter_table('staff', schema=None) as batch_op:
        batch_op.alter_column(
            'role', existing_type=sa.String(length=16), type_=sa.String(length=8)
        )
