"""The audit log of staff writes (administrators): who, what, when, from what to what."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.db import read
from api.domain.tables import table
from api.http.staff.deps import CurrentAdmin, DbDep, Page, PageDep, paginate
from api.http.staff.errors import ProblemRoute, responses
from api.http.staff.fields import ONE_LINE, Day
from api.models import AuditLog, Staff

router = APIRouter(tags=["audit"], route_class=ProblemRoute, responses=responses(401, 422))

audit_table = table(AuditLog)
staff_table = table(Staff)


class AuditEntry(BaseModel):
    id: int
    at: datetime
    staff_id: int | None
    staff_email: str | None
    action: str
    entity: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@router.get(
    "/audit", summary="The audit log, newest first (administrators)", responses=responses(403)
)
def list_audit(
    staff: CurrentAdmin,
    db: DbDep,
    page: PageDep,
    entity: Annotated[str | None, Query(max_length=40, pattern=ONE_LINE)] = None,
    entity_id: Annotated[str | None, Query(max_length=40, pattern=ONE_LINE)] = None,
    action: Annotated[str | None, Query(max_length=40, pattern=ONE_LINE)] = None,
    staff_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    since: Annotated[Day | None, Query(description="From this UTC day on")] = None,
) -> Page[AuditEntry]:
    query = sa.select(audit_table, staff_table.c.email.label("staff_email")).select_from(
        audit_table.outerjoin(staff_table, staff_table.c.id == audit_table.c.staff_id)
    )
    if entity is not None:
        query = query.where(audit_table.c.entity == entity)
    if entity_id is not None:
        query = query.where(audit_table.c.entity_id == entity_id)
    if action is not None:
        query = query.where(audit_table.c.action == action)
    if staff_id is not None:
        query = query.where(audit_table.c.staff_id == staff_id)
    if since is not None:
        query = query.where(
            audit_table.c.at >= datetime(since.year, since.month, since.day, tzinfo=UTC)
        )
    query = query.order_by(audit_table.c.at.desc(), audit_table.c.id.desc())
    with read(db) as conn:
        rows, total = paginate(conn, query, page)
    return page.wrap([AuditEntry.model_validate(r, from_attributes=True) for r in rows], total)
