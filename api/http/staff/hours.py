"""A post's weekly opening hours (replaced as a whole) and its closures (days off).

Hours are local wall times of the post, weekday 0 = Monday; the use case is
api.domain.hours.replace_hours (the console's too: seats the new hours open go to the
waitlist first). Closing a day that has bookings cancels the appointments still to come and
tells each citizen (see api.domain.closures).
"""

from __future__ import annotations

from datetime import date, time
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Body, Query, Response
from pydantic import BaseModel, Field, field_validator, model_validator
from sqlalchemy.exc import IntegrityError

from api.db import read
from api.domain import hours
from api.domain.audit import StaffWrite
from api.domain.closures import add_closure, remove_closure
from api.domain.tables import table
from api.http.staff.deps import (
    CurrentStaff,
    DbDep,
    NowDep,
    Page,
    PageDep,
    get_post,
    paginate,
    perform,
    staff_write,
)
from api.http.staff.errors import ProblemError, ProblemRoute, responses
from api.http.staff.fields import ONE_LINE, CodePath, Day
from api.models import Closure

router = APIRouter(tags=["hours"], route_class=ProblemRoute, responses=responses(401, 422))

closure_table = table(Closure)

MAX_INTERVALS = 7 * 6


class HoursInterval(BaseModel):
    weekday: int = Field(ge=0, le=6, description="0 = Monday … 6 = Sunday")
    opens: time = Field(examples=["08:00"])
    closes: time = Field(examples=["12:00"])

    @field_validator("opens", "closes")
    @classmethod
    def _wall_time(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("a local wall time, without offset")
        return value.replace(second=0, microsecond=0)

    @model_validator(mode="after")
    def _ordered(self) -> HoursInterval:
        if self.opens >= self.closes:
            raise ValueError("opens must come before closes")
        return self


class ClosureCreate(BaseModel):
    day: Day
    reason: str = Field(default="", max_length=200, pattern=ONE_LINE)


class ClosurePublic(BaseModel):
    day: date
    reason: str


class ClosureCreated(ClosurePublic):
    cancelled_appointments: list[str] = Field(
        description="References of the appointments cancelled by the closure (citizens told)."
    )


def _week(intervals: list[hours.Interval]) -> list[HoursInterval]:
    return [HoursInterval(weekday=i.weekday, opens=i.opens, closes=i.closes) for i in intervals]


@router.get(
    "/posts/{code}/hours", summary="A post's weekly opening hours", responses=responses(404)
)
def get_hours(code: CodePath, staff: CurrentStaff, db: DbDep) -> list[HoursInterval]:
    with read(db) as conn:
        post = get_post(conn, staff, code)
        return _week(hours.week(conn, post.id))


@router.put(
    "/posts/{code}/hours",
    summary="Replace a post's weekly opening hours",
    responses=responses(404),
)
def put_hours(
    code: CodePath,
    week: Annotated[list[HoursInterval], Body(max_length=MAX_INTERVALS)],
    staff: CurrentStaff,
    db: DbDep,
    now: NowDep,
) -> list[HoursInterval]:
    wanted = [hours.Interval(h.weekday, h.opens, h.closes) for h in week]

    def replace(tx: StaffWrite) -> list[hours.Interval]:
        post = get_post(tx.conn, staff, code)
        return hours.replace_hours(tx, post.id, post.code, wanted)

    return _week(perform(db, staff, now, replace, unprocessable={"hours_order", "hours_overlap"}))


@router.get("/posts/{code}/closures", summary="A post's closures, by day", responses=responses(404))
def list_closures(
    code: CodePath,
    staff: CurrentStaff,
    db: DbDep,
    page: PageDep,
    from_day: Annotated[Day | None, Query(alias="from", description="From this day on")] = None,
    to_day: Annotated[Day | None, Query(alias="to", description="Up to this day")] = None,
) -> Page[ClosurePublic]:
    with read(db) as conn:
        post = get_post(conn, staff, code)
        query = sa.select(closure_table.c.day, closure_table.c.reason).where(
            closure_table.c.post_id == post.id
        )
        if from_day is not None:
            query = query.where(closure_table.c.day >= from_day)
        if to_day is not None:
            query = query.where(closure_table.c.day <= to_day)
        rows, total = paginate(conn, query.order_by(closure_table.c.day), page)
    return page.wrap([ClosurePublic(day=r.day, reason=r.reason) for r in rows], total)


@router.post(
    "/posts/{code}/closures",
    status_code=201,
    summary="Close a post for a day (cancels that day's bookings, citizens told)",
    responses=responses(404, 409),
)
def create_closure(
    code: CodePath, body: ClosureCreate, staff: CurrentStaff, db: DbDep, now: NowDep
) -> ClosureCreated:
    reason = " ".join(body.reason.split())
    try:
        with staff_write(db, staff, now) as tx:
            post = get_post(tx.conn, staff, code)
            cancelled = add_closure(tx.conn, post.id, body.day, reason, now)
            created = ClosureCreated(
                day=body.day,
                reason=reason,
                cancelled_appointments=[a.reference for a in cancelled],
            )
            tx.audit("create", "closure", f"{post.code}/{body.day}", None, created.model_dump())
    except IntegrityError:
        raise ProblemError(409, f"the post is already closed on {body.day}") from None
    return created


@router.delete(
    "/posts/{code}/closures/{day}",
    status_code=204,
    summary="Open a closed day again (cancelled appointments stay cancelled)",
    responses=responses(404),
)
def delete_closure(
    code: CodePath, day: Day, staff: CurrentStaff, db: DbDep, now: NowDep
) -> Response:
    with staff_write(db, staff, now) as tx:
        post = get_post(tx.conn, staff, code)
        removed = remove_closure(tx.conn, post.id, day)
        if removed is None:
            raise ProblemError(404, "the post is not closed on that day")
        tx.audit("delete", "closure", f"{post.code}/{day}", removed, None)
    return Response(status_code=204)
