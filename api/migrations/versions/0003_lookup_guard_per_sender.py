"""lookup guard per sender

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 09:00:00

The guard's counts are short-lived (locks of minutes to an hour): the table is recreated with
its new key rather than migrated row by row.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import api.models

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _create(with_sender: bool) -> None:
    columns = [sa.Column('reference', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False)]
    if with_sender:
        columns.append(sa.Column('sender', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False))
    op.create_table(
        'lookup_guard',
        *columns,
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('locked_until', api.models.UTCDateTime(), nullable=True),
        sa.Column('updated_at', api.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint(
            *(['reference', 'sender'] if with_sender else ['reference']),
            name=op.f('pk_lookup_guard'),
        ),
    )


def upgrade() -> None:
    op.drop_table('lookup_guard')
    _create(with_sender=True)


def downgrade() -> None:
    op.drop_table('lookup_guard')
    _create(with_sender=False)
