"""The audit log of staff writes (administrators): who, what, when, from what to what; the
whole log as CSV for an inspection or an archive (`/audit/export`)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from sqlalchemy.engine import Engine

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


AUDIT_CSV_COLUMNS = ("id", "at", "staff_email", "action", "entity", "entity_id", "before", "after")


def audit_csv(engine: Engine, since: date | None = None) -> Iterator[str]:
    """The audit log as CSV, oldest first, streamed in batches (memory does not grow with
    the log): one header line, then one line per entry, `before` and `after` as JSON."""
    query = sa.select(audit_table, staff_table.c.email.label("staff_email")).select_from(
        audit_table.outerjoin(staff_table, staff_table.c.id == audit_table.c.staff_id)
    )
    if since is not None:
        query = query.where(
            audit_table.c.at >= datetime(since.year, since.month, since.day, tzinfo=UTC)
        )
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\n")
    out.writerow(AUDIT_CSV_COLUMNS)
    last = 0
    while True:
        with read(engine) as conn:
            rows = conn.execute(
                query.where(audit_table.c.id > last).order_by(audit_table.c.id).limit(1000)
            ).all()
        if not rows:
            break
        for r in rows:
            out.writerow(
                (
                    r.id,
                    r.at.isoformat(),
                    r.staff_email or "",
                    r.action,
                    r.entity,
                    r.entity_id,
                    json.dumps(r.before, ensure_ascii=False) if r.before is not None else "",
                    json.dumps(r.after, ensure_ascii=False) if r.after is not None else "",
                )
            )
        last = rows[-1].id
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


@router.get(
    "/audit/export",
    summary="The whole audit log as CSV, oldest first (administrators)",
    response_class=StreamingResponse,
    responses={**responses(403), 200: {"content": {"text/csv": {}}}},
)
def export_audit(
    staff: CurrentAdmin,
    db: DbDep,
    since: Annotated[Day | None, Query(description="From this UTC day on")] = None,
) -> StreamingResponse:
    del staff  # administrators only
    return StreamingResponse(
        audit_csv(db, since),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
    )
