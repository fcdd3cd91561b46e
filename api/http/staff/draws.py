"""Draws: the seats of a coming period of a service at a post allotted at random among those
who registered interest, offered in turn (api.domain.draws). Agents for their posts."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import AfterValidator, BaseModel, Field

from api.db import read
from api.domain import draws
from api.domain.errors import NotVisible
from api.http.staff.deps import CurrentStaff, DbDep, NowDep, perform
from api.http.staff.errors import ProblemRoute, not_found, responses
from api.http.staff.fields import FIRST_DAY, LAST_DAY, CodePath, Day, IdPath, ServiceCode

router = APIRouter(tags=["draws"], route_class=ProblemRoute, responses=responses(401, 422))

DrawStatus = Literal["open", "drawn", "done", "cancelled"]
Result = Literal["registered", "waiting", "offered", "booked", "declined", "expired", "not_reached"]
REFUSED_AS_INVALID = {
    "window_order",
    "window_past",
    "period_order",
    "period_long",
    "period_before_close",
}


def _calendar_time(value: datetime) -> datetime:
    if not FIRST_DAY <= value.date() <= LAST_DAY:
        raise ValueError(f"a time between {FIRST_DAY} and {LAST_DAY}")
    return value


LocalTime = Annotated[datetime, AfterValidator(_calendar_time)]
"""A time in the post's local time (an explicit offset is honoured), 2000 to 2199."""


class DrawIn(BaseModel):
    service: ServiceCode
    opens_at: LocalTime = Field(
        description="Registration opens, in the post's local time (an offset is honoured)",
        examples=["2026-12-01T08:00:00"],
    )
    closes_at: LocalTime = Field(description="Registration closes, in the post's local time")
    first_day: Day = Field(description="The period whose seats are drawn: its first day")
    last_day: Day = Field(description="… and its last day (local days, inclusive)")


class RegistrantPublic(BaseModel):
    id: int
    citizen_id: int
    full_name: str
    registered_at: datetime
    rank: int | None = Field(description="In the drawn order, 1 = first; null before the draw")
    result: Result = Field(
        description="registered (before the draw), then the seat's fate: waiting, offered, "
        "booked, declined, expired, not_reached (the period's seats ran out before their turn)"
    )


class DrawPublic(BaseModel):
    id: int
    post: str
    service: str
    opens_at: datetime
    closes_at: datetime
    first_day: date
    last_day: date
    status: DrawStatus
    seed: str | None = Field(description="Recorded when drawn: the order is reproducible")
    drawn_at: datetime | None
    registrants_count: int
    registrants: list[RegistrantPublic] = Field(description="In the drawn order once drawn")


def to_public(view: draws.DrawView) -> DrawPublic:
    return DrawPublic(
        id=view.id,
        post=view.post_code,
        service=view.service_code,
        opens_at=view.opens_at,
        closes_at=view.closes_at,
        first_day=view.first_day,
        last_day=view.last_day,
        status=view.status,
        seed=view.seed,
        drawn_at=view.drawn_at,
        registrants_count=len(view.registrants),
        registrants=[
            RegistrantPublic(
                id=r.id,
                citizen_id=r.citizen_id,
                full_name=r.full_name,
                registered_at=r.registered_at,
                rank=r.rank,
                result=r.result,
            )
            for r in view.registrants
        ],
    )


@router.post(
    "/posts/{code}/draws",
    status_code=201,
    summary="Allot a coming period's seats of a service by draw",
    responses=responses(404, 409),
)
def create_draw(
    code: CodePath, body: DrawIn, staff: CurrentStaff, db: DbDep, now: NowDep
) -> DrawPublic:
    view = perform(
        db,
        staff,
        now,
        lambda tx: draws.open_draw(
            tx,
            code,
            body.service,
            body.opens_at,
            body.closes_at,
            body.first_day,
            body.last_day,
        ),
        unprocessable=REFUSED_AS_INVALID,
    )
    return to_public(view)


@router.get("/posts/{code}/draws", summary="A post's draws", responses=responses(404))
def list_draws(code: CodePath, staff: CurrentStaff, db: DbDep) -> list[DrawPublic]:
    try:
        with read(db) as conn:
            return [to_public(v) for v in draws.draws_of(conn, staff, code)]
    except NotVisible as missing:
        raise not_found(missing.what) from None


@router.get("/draws/{draw_id}", summary="One draw and its result", responses=responses(404))
def get_draw(draw_id: IdPath, staff: CurrentStaff, db: DbDep) -> DrawPublic:
    try:
        with read(db) as conn:
            return to_public(draws.get(conn, staff, draw_id))
    except NotVisible as missing:
        raise not_found(missing.what) from None


@router.post(
    "/draws/{draw_id}/cancel",
    summary="Cancel a draw before it is drawn (registrants are told)",
    responses=responses(404, 409),
)
def cancel_draw(draw_id: IdPath, staff: CurrentStaff, db: DbDep, now: NowDep) -> DrawPublic:
    return to_public(perform(db, staff, now, lambda tx: draws.cancel(tx, draw_id)))
