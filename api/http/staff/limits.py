"""Booking limits of one citizen: where they stand at each post (per phone, per full name),
and lifting a limit for them (api.domain.limit_desk)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.db import read
from api.domain import limit_desk
from api.domain.errors import NotVisible, Refused
from api.http.staff.deps import CurrentStaff, DbDep, NowDep, staff_write
from api.http.staff.errors import ProblemError, ProblemRoute, responses
from api.http.staff.fields import ONE_LINE, IdPath

router = APIRouter(tags=["citizens"], route_class=ProblemRoute, responses=responses(401, 422))


class LimitPublic(BaseModel):
    post: str
    kind: Literal["phone", "name"]
    subject: str = Field(description="The phone number, or the full name as booked")
    used: int = Field(description="Bookings counted in the rolling window, cancelled included")
    limit: int
    days: int = Field(description="The rolling window")
    reached: bool
    lifts_at: datetime | None = Field(description="When one more booking becomes possible")


class LiftIn(BaseModel):
    post: str = Field(max_length=8, pattern=ONE_LINE)
    kind: Literal["phone", "name"]
    full_name: str = Field(default="", max_length=120, pattern=ONE_LINE)


def _public(standing: limit_desk.Standing) -> LimitPublic:
    return LimitPublic(
        post=standing.post_code,
        kind="phone" if standing.kind == "phone" else "name",
        subject=standing.subject,
        used=standing.used,
        limit=standing.limit,
        days=standing.days,
        reached=standing.reached,
        lifts_at=standing.lifts_at,
    )


@router.get(
    "/citizens/{citizen_id}/limits",
    summary="Where one citizen stands against each post's booking limits",
    responses=responses(404),
)
def get_limits(
    citizen_id: IdPath, staff: CurrentStaff, db: DbDep, now: NowDep
) -> list[LimitPublic]:
    try:
        with read(db) as conn:
            return [_public(s) for s in limit_desk.standing(conn, staff, citizen_id, now)]
    except NotVisible as missing:
        raise ProblemError(404, f"no such {missing.what}") from None


@router.post(
    "/citizens/{citizen_id}/limits/lift",
    summary="Lift a booking limit at a post for one citizen (their phone, or one full name)",
    responses=responses(404, 409),
)
def lift_limit(
    citizen_id: IdPath, body: LiftIn, staff: CurrentStaff, db: DbDep, now: NowDep
) -> list[LimitPublic]:
    try:
        with staff_write(db, staff, now) as tx:
            limit_desk.lift(tx, citizen_id, body.post, body.kind, body.full_name)
            standing = limit_desk.standing(tx.conn, staff, citizen_id, now)
    except NotVisible as missing:
        raise ProblemError(404, f"no such {missing.what}") from None
    except Refused as refused:
        raise ProblemError(409, refused.detail) from None
    return [_public(s) for s in standing]
