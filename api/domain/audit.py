"""The audit log: who changed what, when, from what to what — in the change's transaction.

Snapshots (`before`, `after`) describe the thing changed, never the citizen: no phone number,
name or birth date goes into the log, so that erasing a citizen leaves nothing of theirs
behind in it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic_core import to_jsonable_python
from sqlalchemy.engine import Connection

from api.domain.tables import table
from api.models import AuditLog

audit_log = table(AuditLog)

# A safety net: callers snapshot things, not people; these never reach the log anyway. (A
# post's phone is the consulate's and stays; a citizen's is never put in a snapshot.)
PERSONAL_FIELDS = frozenset({"full_name", "birth_date"})


def snapshot(values: dict[str, Any] | None) -> dict[str, Any] | None:
    """JSON-able values without personal fields (dates become ISO strings)."""
    if values is None:
        return None
    kept = {k: v for k, v in values.items() if k not in PERSONAL_FIELDS}
    result: dict[str, Any] = to_jsonable_python(kept)
    return result


def record(
    conn: Connection,
    *,
    staff_id: int | None,
    action: str,
    entity: str,
    entity_id: str | int,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    now: datetime,
) -> None:
    conn.execute(
        sa.insert(audit_log).values(
            staff_id=staff_id,
            action=action[:40],
            entity=entity[:40],
            entity_id=str(entity_id)[:40],
            before=snapshot(before),
            after=snapshot(after),
            at=now,
        )
    )
