"""the desk's search and walk-ins: requests' name key; every name key accent-free

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-03 13:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from flows.world import person_key

revision: str = '0013'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _rekey(table: str) -> None:
    """Each row's name key from its full name (0007 could only lower-case appointments')."""
    rows = sa.table(table, sa.column('id'), sa.column('full_name'), sa.column('name_key'))
    conn = op.get_bind()
    for row_id, full_name in conn.execute(sa.select(rows.c.id, rows.c.full_name)).all():
        conn.execute(
            sa.update(rows).where(rows.c.id == row_id).values(name_key=person_key(full_name))
        )


def upgrade() -> None:
    with op.batch_alter_table('consular_request', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                'name_key',
                sqlmodel.sql.sqltypes.AutoString(length=120),
                nullable=False,
                server_default='',
            )
        )
        batch_op.create_index(
            batch_op.f('ix_consular_request_name_key'), ['name_key'], unique=False
        )
    _rekey('consular_request')
    _rekey('appointment')


def downgrade() -> None:
    with op.batch_alter_table('consular_request', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consular_request_name_key'))
        batch_op.drop_column('name_key')
