"""Services (the catalogue) and what each post offers of them: slot length, seats, booking
window, notice, fee note.

The use case is api.domain.offers.save_offer (the console's too): changing the seats of an
offer also resizes the slots already opened after now, never below the seats they have sold.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy.engine import Row

from api.db import read
from api.domain import offers
from api.domain.errors import NotVisible
from api.domain.tables import table
from api.http.staff.deps import (
    CurrentStaff,
    DbDep,
    NowDep,
    Page,
    PageDep,
    StaffWrite,
    get_post,
    paginate,
    staff_write,
)
from api.http.staff.errors import ProblemError, ProblemRoute, responses
from api.http.staff.fields import ONE_LINE, CodePath
from api.models import Service

router = APIRouter(tags=["services"], route_class=ProblemRoute, responses=responses(401, 422))

service_table = table(Service)


class ServicePublic(BaseModel):
    code: str
    name: str
    position: int


class OfferSettings(BaseModel):
    slot_minutes: int = Field(default=30, ge=5, le=480)
    seats_per_slot: int = Field(default=2, ge=0, le=100)
    booking_window_days: int = Field(default=30, ge=1, le=366)
    min_notice_hours: int = Field(default=12, ge=0, le=24 * 30)
    fee_note: str = Field(default="", max_length=300, pattern=ONE_LINE)
    active: bool = True


class OfferCreate(OfferSettings):
    """The whole offer: fields left out take their defaults."""


class OfferUpdate(BaseModel):
    """Fields to change; those left out (or null) stay as they are."""

    slot_minutes: int | None = Field(default=None, ge=5, le=480)
    seats_per_slot: int | None = Field(default=None, ge=0, le=100)
    booking_window_days: int | None = Field(default=None, ge=1, le=366)
    min_notice_hours: int | None = Field(default=None, ge=0, le=24 * 30)
    fee_note: str | None = Field(default=None, max_length=300, pattern=ONE_LINE)
    active: bool | None = None


class OfferPublic(OfferSettings):
    post: str
    service: str
    service_name: str


_SETTINGS = tuple(OfferSettings.model_fields)


def _public(post_code: str, row: Row[Any]) -> OfferPublic:
    return OfferPublic(
        post=post_code, **{k: getattr(row, k) for k in (*_SETTINGS, "service", "service_name")}
    )


@router.get("/services", summary="The services citizens may book or file")
def list_services(staff: CurrentStaff, db: DbDep, page: PageDep) -> Page[ServicePublic]:
    query = sa.select(service_table).order_by(service_table.c.position, service_table.c.id)
    with read(db) as conn:
        rows, total = paginate(conn, query, page)
    return page.wrap([ServicePublic.model_validate(r, from_attributes=True) for r in rows], total)


@router.get("/posts/{code}/services", summary="What a post offers", responses=responses(404))
def list_offers(code: CodePath, staff: CurrentStaff, db: DbDep, page: PageDep) -> Page[OfferPublic]:
    with read(db) as conn:
        post = get_post(conn, staff, code)
        rows, total = paginate(
            conn, offers.offers_query().where(offers.offer_table.c.post_id == post.id), page
        )
    return page.wrap([_public(post.code, r) for r in rows], total)


def _save(
    tx: StaffWrite, post: Row[Any], service_code: str, values: dict[str, Any], create: bool
) -> OfferPublic:
    try:
        after = offers.save_offer(tx, post.id, post.code, service_code, values, create=create)
    except NotVisible as missing:
        detail = (
            "no such service"
            if missing.what == "service"
            else "this post does not offer this service"
        )
        raise ProblemError(404, detail) from None
    return _public(post.code, after)


@router.put(
    "/posts/{code}/services/{service}",
    summary="Offer a service at a post, or replace the whole offer",
    responses=responses(404),
)
def put_offer(
    code: CodePath,
    service: CodePath,
    body: OfferCreate,
    staff: CurrentStaff,
    db: DbDep,
    now: NowDep,
) -> OfferPublic:
    with staff_write(db, staff, now) as tx:
        post = get_post(tx.conn, staff, code)
        return _save(tx, post, service, body.model_dump(), create=True)


@router.patch(
    "/posts/{code}/services/{service}",
    summary="Change what a post offers of one service",
    responses=responses(404),
)
def patch_offer(
    code: CodePath,
    service: CodePath,
    body: OfferUpdate,
    staff: CurrentStaff,
    db: DbDep,
    now: NowDep,
) -> OfferPublic:
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    with staff_write(db, staff, now) as tx:
        post = get_post(tx.conn, staff, code)
        return _save(tx, post, service, changes, create=False)
