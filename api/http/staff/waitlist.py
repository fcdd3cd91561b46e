"""A post's waitlist: citizens waiting for a seat of each service, in order, and the seats
held for the first of them (api.domain.waitlist)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.db import read
from api.domain import waitlist
from api.http.staff.deps import CurrentStaff, DbDep, NowDep, get_post
from api.http.staff.errors import ProblemRoute, responses
from api.http.staff.fields import CodePath

router = APIRouter(tags=["posts"], route_class=ProblemRoute, responses=responses(401, 422))


class WaitlistEntryPublic(BaseModel):
    id: int
    post: str
    service: str
    place: int = Field(description="In the line of that service, 1 = first")
    status: Literal["waiting", "offered"]
    citizen_id: int
    full_name: str
    joined_at: datetime
    offered_starts_at: datetime | None = Field(description="The seat held, while offered")
    offer_expires_at: datetime | None


@router.get(
    "/posts/{code}/waitlist",
    summary="A post's waitlist, per service in line order",
    responses=responses(404),
)
def get_waitlist(
    code: CodePath, staff: CurrentStaff, db: DbDep, now: NowDep
) -> list[WaitlistEntryPublic]:
    with read(db) as conn:
        post = get_post(conn, staff, code)
        entries = waitlist.line(conn, post.id, now)
    return [
        WaitlistEntryPublic(
            id=e.id,
            post=e.post_code,
            service=e.service_code,
            place=e.place or 0,
            status="offered" if e.status == waitlist.OFFERED else "waiting",
            citizen_id=e.citizen_id,
            full_name=e.full_name,
            joined_at=e.created_at,
            offered_starts_at=e.offered_starts_at,
            offer_expires_at=e.offer_expires_at,
        )
        for e in entries
    ]
