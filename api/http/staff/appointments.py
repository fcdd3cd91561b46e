"""Appointments: the day's list at the desk, check-in, no-show, and cancellation by staff (the
citizen is told, in their language)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy.engine import Connection, Row

from api.db import read
from api.domain import notices
from api.domain.booking import BookingService
from api.domain.closures import local_day_bounds
from api.domain.staff import StaffPrincipal
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
    post_filter,
    post_table,
    staff_write,
)
from api.http.staff.errors import ProblemError, ProblemRoute, responses
from api.http.staff.fields import ONE_LINE, Day, IdPath
from api.models import Appointment, AppointmentStatus, Service

router = APIRouter(tags=["appointments"], route_class=ProblemRoute, responses=responses(401, 422))

appointment_table = table(Appointment)
service_table = table(Service)


class AppointmentPublic(BaseModel):
    id: int
    reference: str
    post: str
    service: str
    status: AppointmentStatus
    starts_at: datetime = Field(description="UTC")
    local_time: datetime = Field(description="The same instant in the post's time zone")
    full_name: str
    citizen_id: int
    cancel_reason: str
    created_at: datetime
    updated_at: datetime


class CancelBody(BaseModel):
    reason: str = Field(min_length=1, max_length=300, pattern=ONE_LINE)


def appointments_query() -> sa.Select[Any]:
    return sa.select(
        appointment_table,
        post_table.c.code.label("post_code"),
        post_table.c.timezone.label("post_timezone"),
        service_table.c.code.label("service_code"),
    ).select_from(
        appointment_table.join(post_table, post_table.c.id == appointment_table.c.post_id).join(
            service_table, service_table.c.id == appointment_table.c.service_id
        )
    )


def to_public(row: Row[Any]) -> AppointmentPublic:
    return AppointmentPublic(
        id=row.id,
        reference=row.reference,
        post=row.post_code,
        service=row.service_code,
        status=AppointmentStatus(row.status),
        starts_at=row.starts_at,
        local_time=row.starts_at.astimezone(ZoneInfo(row.post_timezone)),
        full_name=row.full_name,
        citizen_id=row.citizen_id,
        cancel_reason=row.cancel_reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def snapshot(appointment: AppointmentPublic) -> dict[str, Any]:
    return appointment.model_dump(
        include={"reference", "post", "service", "status", "starts_at", "cancel_reason"}
    )


def get_visible(conn: Connection, staff: StaffPrincipal, appointment_id: int) -> Row[Any]:
    row = conn.execute(
        appointments_query().where(
            appointment_table.c.id == appointment_id,
            post_filter(staff, appointment_table.c.post_id),
        )
    ).first()
    if row is None:
        raise ProblemError(404, "no such appointment")
    return row


@router.get(
    "/appointments",
    summary="List appointments by post, local day and status",
    responses=responses(404),
)
def list_appointments(
    staff: CurrentStaff,
    db: DbDep,
    page: PageDep,
    post: Annotated[
        str | None, Query(max_length=8, pattern=ONE_LINE, description="Post code")
    ] = None,
    day: Annotated[Day | None, Query(description="Local date at the post")] = None,
    status: AppointmentStatus | None = None,
    reference: Annotated[str | None, Query(max_length=12, pattern=ONE_LINE)] = None,
) -> Page[AppointmentPublic]:
    query = appointments_query().where(post_filter(staff, appointment_table.c.post_id))
    with read(db) as conn:
        posts = conn.execute(
            sa.select(post_table.c.id, post_table.c.timezone).where(
                post_filter(staff, post_table.c.id)
            )
        ).all()
        if post is not None:
            chosen = get_post(conn, staff, post)
            query = query.where(appointment_table.c.post_id == chosen.id)
            posts = [p for p in posts if p.id == chosen.id]
        if day is not None:
            # The local day of each post is its own stretch of UTC.
            stretches = []
            for p in posts:
                start, end = local_day_bounds(day, p.timezone)
                stretches.append(
                    sa.and_(
                        appointment_table.c.post_id == p.id,
                        appointment_table.c.starts_at >= start,
                        appointment_table.c.starts_at < end,
                    )
                )
            query = query.where(sa.or_(sa.false(), *stretches))
        if status is not None:
            query = query.where(appointment_table.c.status == status.value)
        if reference is not None:
            query = query.where(appointment_table.c.reference == reference.strip().upper())
        query = query.order_by(appointment_table.c.starts_at, appointment_table.c.id)
        rows, total = paginate(conn, query, page)
    return page.wrap([to_public(r) for r in rows], total)


@router.get("/appointments/{appointment_id}", summary="One appointment", responses=responses(404))
def get_appointment(appointment_id: IdPath, staff: CurrentStaff, db: DbDep) -> AppointmentPublic:
    with read(db) as conn:
        return to_public(get_visible(conn, staff, appointment_id))


def _attendance(
    tx: StaffWrite, appointment_id: int, status: Literal["attended", "no_show"]
) -> AppointmentPublic:
    before = to_public(get_visible(tx.conn, tx.staff, appointment_id))
    if BookingService(tx.conn).set_attendance(appointment_id, status, tx.now) is None:
        if before.status is AppointmentStatus.cancelled:
            raise ProblemError(409, "the appointment was cancelled")
        raise ProblemError(409, "a no-show is recorded only once the appointment has started")
    after = to_public(get_visible(tx.conn, tx.staff, appointment_id))
    tx.audit(status, "appointment", appointment_id, snapshot(before), snapshot(after))
    return after


@router.post(
    "/appointments/{appointment_id}/check-in",
    summary="The citizen came: attended",
    responses=responses(404, 409),
)
def check_in(
    appointment_id: IdPath, staff: CurrentStaff, db: DbDep, now: NowDep
) -> AppointmentPublic:
    with staff_write(db, staff, now) as tx:
        return _attendance(tx, appointment_id, "attended")


@router.post(
    "/appointments/{appointment_id}/no-show",
    summary="The citizen did not come (once the appointment has started)",
    responses=responses(404, 409),
)
def no_show(
    appointment_id: IdPath, staff: CurrentStaff, db: DbDep, now: NowDep
) -> AppointmentPublic:
    with staff_write(db, staff, now) as tx:
        return _attendance(tx, appointment_id, "no_show")


@router.post(
    "/appointments/{appointment_id}/cancel",
    summary="Cancel a booked appointment, with a reason the citizen is told",
    responses=responses(404, 409),
)
def cancel(
    appointment_id: IdPath, body: CancelBody, staff: CurrentStaff, db: DbDep, now: NowDep
) -> AppointmentPublic:
    reason = " ".join(body.reason.split())
    if not reason:
        raise ProblemError(422, "a reason is needed")
    with staff_write(db, staff, now) as tx:
        before = to_public(get_visible(tx.conn, staff, appointment_id))
        info = BookingService(tx.conn).cancel_by_staff(appointment_id, reason, now)
        if info is None:
            raise ProblemError(409, f"only a booked appointment can be cancelled ({before.status})")
        notices.appointment_cancelled(tx.conn, before.citizen_id, info, reason, now)
        after = to_public(get_visible(tx.conn, staff, appointment_id))
        tx.audit("cancel", "appointment", appointment_id, snapshot(before), snapshot(after))
    return after
