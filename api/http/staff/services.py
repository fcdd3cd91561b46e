"""Services (the catalogue) and what each post offers of them: slot length, seats, booking
window, notice, fee note.

Changing the seats of an offer also resizes the slots already opened after now, never below
the seats they have sold: bookings made stay made.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy.engine import Connection, Row

from api.db import read
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
from api.models import PostService, Service, Slot

router = APIRouter(tags=["services"], route_class=ProblemRoute, responses=responses(401, 422))

service_table = table(Service)
offer_table = table(PostService)
slot_table = table(Slot)


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


def _offers_query() -> sa.Select[Any]:
    return (
        sa.select(
            offer_table.c.id,
            *(offer_table.c[name] for name in _SETTINGS),
            service_table.c.code.label("service"),
            service_table.c.name.label("service_name"),
        )
        .select_from(
            offer_table.join(service_table, service_table.c.id == offer_table.c.service_id)
        )
        .order_by(service_table.c.position, service_table.c.id)
    )


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
        rows, total = paginate(conn, _offers_query().where(offer_table.c.post_id == post.id), page)
    return page.wrap([_public(post.code, r) for r in rows], total)


def _service_id(conn: Connection, service_code: str) -> int:
    found = conn.execute(
        sa.select(service_table.c.id).where(service_table.c.code == service_code)
    ).scalar_one_or_none()
    if found is None:
        raise ProblemError(404, "no such service")
    return int(found)


def _offer(conn: Connection, post_id: int, service_id: int) -> Row[Any] | None:
    return conn.execute(
        _offers_query().where(
            offer_table.c.post_id == post_id, offer_table.c.service_id == service_id
        )
    ).first()


def _resize_future_slots(tx: StaffWrite, offer_id: int, seats: int) -> None:
    tx.conn.execute(
        sa.update(slot_table)
        .where(slot_table.c.post_service_id == offer_id, slot_table.c.starts_at > tx.now)
        .values(capacity=sa.case((slot_table.c.booked > seats, slot_table.c.booked), else_=seats))
    )


def _save(
    tx: StaffWrite, post: Row[Any], service_code: str, values: dict[str, Any], create: bool
) -> OfferPublic:
    service_id = _service_id(tx.conn, service_code)
    before = _offer(tx.conn, post.id, service_id)
    if before is None and not create:
        raise ProblemError(404, "this post does not offer this service")
    if before is None:
        tx.conn.execute(
            sa.insert(offer_table).values(post_id=post.id, service_id=service_id, **values)
        )
    elif values:
        tx.conn.execute(
            sa.update(offer_table).where(offer_table.c.id == before.id).values(**values)
        )
    after = _offer(tx.conn, post.id, service_id)
    assert after is not None
    if "seats_per_slot" in values:
        _resize_future_slots(tx, after.id, values["seats_per_slot"])
    public = _public(post.code, after)
    tx.audit(
        "create" if before is None else "update",
        "offer",
        f"{post.code}/{service_code}",
        None if before is None else _public(post.code, before).model_dump(),
        public.model_dump(),
    )
    return public


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
