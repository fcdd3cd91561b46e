"""Posts: the consulates and embassies. Administrators create and change them; an agent reads
their own."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from api.db import read
from api.http.staff.deps import (
    CurrentAdmin,
    CurrentStaff,
    DbDep,
    NowDep,
    Page,
    PageDep,
    get_post,
    paginate,
    post_filter,
    post_table,
    staff_write,
)
from api.http.staff.errors import ProblemError, ProblemRoute, responses
from api.http.staff.fields import ONE_LINE, CodePath, CountryCode, PostCode, TimeZoneName

router = APIRouter(tags=["posts"], route_class=ProblemRoute, responses=responses(401, 422))


class PostBase(BaseModel):
    name: str = Field(min_length=1, max_length=120, pattern=ONE_LINE)
    country: CountryCode
    city: str = Field(min_length=1, max_length=80, pattern=ONE_LINE)
    timezone: TimeZoneName
    address: str = Field(default="", max_length=300, pattern=ONE_LINE)
    phone: str = Field(default="", max_length=40, pattern=ONE_LINE)
    email: str = Field(default="", max_length=120, pattern=ONE_LINE)
    max_bookings_per_phone: int = Field(
        default=4, ge=0, le=1000, description="Bookings per phone in the rolling window"
    )
    max_bookings_per_name: int = Field(
        default=4, ge=0, le=1000, description="Bookings per full name in the rolling window"
    )
    limit_window_days: int = Field(default=30, ge=1, le=366, description="The rolling window")
    waitlist_hold_minutes: int = Field(
        default=120, ge=5, le=7 * 24 * 60, description="How long a waitlist offer holds"
    )
    no_show_limit: int = Field(default=2, ge=0, le=100, description="No-shows (0: no rule)")
    no_show_days: int = Field(default=90, ge=1, le=366, description="counted over these days")
    no_show_window_days: int = Field(
        default=7, ge=0, le=366, description="then book only within these days (0: no)"
    )
    no_show_delay_days: int = Field(
        default=0, ge=0, le=366, description="and not before the last no-show + these days"
    )


class PostCreate(PostBase):
    code: PostCode = Field(description="Three capital letters; request references start with it.")
    active: bool = True


class PostUpdate(BaseModel):
    """Fields to change; those left out (or null) stay as they are."""

    name: str | None = Field(default=None, min_length=1, max_length=120, pattern=ONE_LINE)
    country: CountryCode | None = None
    city: str | None = Field(default=None, min_length=1, max_length=80, pattern=ONE_LINE)
    timezone: TimeZoneName | None = None
    address: str | None = Field(default=None, max_length=300, pattern=ONE_LINE)
    phone: str | None = Field(default=None, max_length=40, pattern=ONE_LINE)
    email: str | None = Field(default=None, max_length=120, pattern=ONE_LINE)
    max_bookings_per_phone: int | None = Field(default=None, ge=0, le=1000)
    max_bookings_per_name: int | None = Field(default=None, ge=0, le=1000)
    limit_window_days: int | None = Field(default=None, ge=1, le=366)
    waitlist_hold_minutes: int | None = Field(default=None, ge=5, le=7 * 24 * 60)
    no_show_limit: int | None = Field(default=None, ge=0, le=100)
    no_show_days: int | None = Field(default=None, ge=1, le=366)
    no_show_window_days: int | None = Field(default=None, ge=0, le=366)
    no_show_delay_days: int | None = Field(default=None, ge=0, le=366)
    active: bool | None = None


class PostPublic(BaseModel):
    code: str
    name: str
    country: str
    city: str
    timezone: str
    address: str
    phone: str
    email: str
    max_bookings_per_phone: int
    max_bookings_per_name: int
    limit_window_days: int
    waitlist_hold_minutes: int
    no_show_limit: int
    no_show_days: int
    no_show_window_days: int
    no_show_delay_days: int
    active: bool


def to_public(row: Row[Any]) -> PostPublic:
    return PostPublic.model_validate(row, from_attributes=True)


def snapshot(row: Row[Any]) -> dict[str, Any]:
    return to_public(row).model_dump()


@router.get("/posts", summary="List posts (an agent: their own)")
def list_posts(
    staff: CurrentStaff,
    db: DbDep,
    page: PageDep,
    country: Annotated[str | None, Query(pattern=r"^[A-Za-z]{2}$")] = None,
    active: bool | None = None,
) -> Page[PostPublic]:
    query = sa.select(post_table).where(post_filter(staff, post_table.c.id))
    if country is not None:
        query = query.where(post_table.c.country == country.upper())
    if active is not None:
        query = query.where(post_table.c.active.is_(active))
    query = query.order_by(post_table.c.code)
    with read(db) as conn:
        rows, total = paginate(conn, query, page)
    return page.wrap([to_public(r) for r in rows], total)


@router.get("/posts/{code}", summary="One post", responses=responses(404))
def get_one(code: CodePath, staff: CurrentStaff, db: DbDep) -> PostPublic:
    with read(db) as conn:
        return to_public(get_post(conn, staff, code))


@router.post(
    "/posts",
    status_code=201,
    summary="Create a post (administrators)",
    responses=responses(403, 409),
)
def create(body: PostCreate, staff: CurrentAdmin, db: DbDep, now: NowDep) -> PostPublic:
    try:
        with staff_write(db, staff, now) as tx:
            row = tx.conn.execute(
                sa.insert(post_table).values(**body.model_dump()).returning(*post_table.c)
            ).one()
            post = to_public(row)
            tx.audit("create", "post", post.code, None, post.model_dump())
    except IntegrityError:
        raise ProblemError(409, f"a post with code {body.code} exists already") from None
    return post


@router.patch(
    "/posts/{code}",
    summary="Change a post (administrators)",
    responses=responses(403, 404),
)
def update(
    code: CodePath, body: PostUpdate, staff: CurrentAdmin, db: DbDep, now: NowDep
) -> PostPublic:
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    with staff_write(db, staff, now) as tx:
        current = get_post(tx.conn, staff, code)
        row = current
        if changes:
            row = tx.conn.execute(
                sa.update(post_table)
                .where(post_table.c.id == current.id)
                .values(**changes)
                .returning(*post_table.c)
            ).one()
        tx.audit("update", "post", current.code, snapshot(current), snapshot(row))
    return to_public(row)
