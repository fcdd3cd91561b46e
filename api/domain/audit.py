"""The audit log: who changed what, when, from what to what — in the change's transaction.

`staff_write(engine, staff, now)` is the one way a staff action writes: a transaction that
records the change in the audit log (`tx.audit(…)`) and refuses to commit one that recorded
nothing. The use cases (api.domain.appointment_desk, api.domain.request_desk…) take its `tx`; the
API and the console only open it and translate what the use case raises.

Snapshots (`before`, `after`) describe the thing changed, never the citizen: no phone number,
name or birth date goes into the log, so that erasing a citizen leaves nothing of theirs
behind in it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pydantic_core import to_jsonable_python
from sqlalchemy.engine import Connection, Engine

from api.db import write
from api.domain.tables import table
from api.models import AuditLog

if TYPE_CHECKING:
    from api.domain.staff import StaffPrincipal

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


@dataclass
class StaffWrite:
    """One staff write: its connection, who, when — and the audit records it made."""

    conn: Connection
    staff: StaffPrincipal
    now: datetime
    recorded: list[str] = field(default_factory=list)

    def audit(
        self,
        action: str,
        entity: str,
        entity_id: str | int,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        record(
            self.conn,
            staff_id=self.staff.id,
            action=action,
            entity=entity,
            entity_id=entity_id,
            before=before,
            after=after,
            now=self.now,
        )
        self.recorded.append(action)


@contextmanager
def staff_write(db: Engine, staff: StaffPrincipal, now: datetime) -> Iterator[StaffWrite]:
    """A write transaction for a staff action; commits only if the action was audited."""
    with write(db) as conn:
        tx = StaffWrite(conn, staff, now)
        yield tx
        if not tx.recorded:
            raise RuntimeError("a staff write must record what it did in the audit log")
