"""identity burst: the per-sender flood rule's count

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 09:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import api.models

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('channel_identity', schema=None) as batch_op:
        batch_op.add_column(sa.Column('burst_started_at', api.models.UTCDateTime(), nullable=True))
        batch_op.add_column(
            sa.Column('burst_count', sa.Integer(), nullable=False, server_default='0')
        )


def downgrade() -> None:
    with op.batch_alter_table('channel_identity', schema=None) as batch_op:
        batch_op.drop_column('burst_count')
        batch_op.drop_column('burst_started_at')
