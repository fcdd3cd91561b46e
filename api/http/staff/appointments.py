"""Appointments: the day's list at the desk, check-in, no-show, and cancellation by staff (the
citizen is told, in their language)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.engine import Connection, Engine

from api.db import read
from api.domain import appointment_desk as domain
from api.domain import appointment_proof, search
from api.domain.appointment_desk import (
    AppointmentRecord,
    Attendance,
    appointment_table,
    appointments_query,
    to_record,
)
from api.domain.closures import local_day_bounds
from api.domain.errors import NotVisible
from api.domain.staff import StaffPrincipal
from api.http.staff.deps import (
    CurrentStaff,
    DbDep,
    NowDep,
    Page,
    PageDep,
    get_post,
    paginate,
    perform,
    post_filter,
    post_table,
)
from api.http.staff.errors import ProblemError, ProblemRoute, responses
from api.http.staff.fields import NOT_A_PHONE, ONE_LINE, Day, IdPath
from api.models import AppointmentStatus

router = APIRouter(tags=["appointments"], route_class=ProblemRoute, responses=responses(401, 422))


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


def to_public(record: AppointmentRecord) -> AppointmentPublic:
    return AppointmentPublic(
        id=record.id,
        reference=record.reference,
        post=record.post_code,
        service=record.service_code,
        status=record.status,
        starts_at=record.starts_at,
        local_time=record.local_time,
        full_name=record.full_name,
        citizen_id=record.citizen_id,
        cancel_reason=record.cancel_reason,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def get_visible(conn: Connection, staff: StaffPrincipal, appointment_id: int) -> AppointmentRecord:
    try:
        return domain.visible(conn, staff, appointment_id)
    except NotVisible:
        raise ProblemError(404, "no such appointment") from None


@router.get(
    "/appointments",
    summary="List appointments by post, local day, status, phone or search text",
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
    phone: Annotated[
        str | None,
        Query(
            max_length=32,
            pattern=ONE_LINE,
            description="The citizen's phone number, international or local to the post "
            "(to each of the caller's posts when no post is given): 07 01 00 01 23",
        ),
    ] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=120,
            pattern=ONE_LINE,
            description="What the console's search box takes: a reference (rdv 7k2m9q), a "
            "phone number, or a name, accents and case aside, in part (ouedr awa)",
        ),
    ] = None,
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
        if phone is not None or q is not None:
            countries = search.countries_of(conn, staff, chosen.id if post is not None else None)
        if phone is not None:
            terms = search.phone_terms(phone, countries)
            if terms is None:
                raise ProblemError(422, NOT_A_PHONE)
            query = query.where(search.appointment_matches(terms))
        if q is not None:
            query = query.where(search.appointment_matches(search.understand(q, countries)))
        query = query.order_by(appointment_table.c.starts_at, appointment_table.c.id)
        rows, total = paginate(conn, query, page)
    return page.wrap([to_public(to_record(r)) for r in rows], total)


@router.get("/appointments/{appointment_id}", summary="One appointment", responses=responses(404))
def get_appointment(appointment_id: IdPath, staff: CurrentStaff, db: DbDep) -> AppointmentPublic:
    with read(db) as conn:
        return to_public(get_visible(conn, staff, appointment_id))


def _attendance(
    db: Engine, staff: StaffPrincipal, now: datetime, appointment_id: int, status: Attendance
) -> AppointmentPublic:
    _, after = perform(db, staff, now, lambda tx: domain.set_attendance(tx, appointment_id, status))
    return to_public(after)


@router.post(
    "/appointments/{appointment_id}/check-in",
    summary="The citizen came: attended",
    responses=responses(404, 409),
)
def check_in(
    appointment_id: IdPath, staff: CurrentStaff, db: DbDep, now: NowDep
) -> AppointmentPublic:
    return _attendance(db, staff, now, appointment_id, "attended")


class ProofBody(BaseModel):
    proof: str = Field(
        min_length=1,
        max_length=200,
        description="What the citizen's QR code holds (scanned, or typed): RDV-XXXXXX.<code>",
    )


@router.post(
    "/appointments/check-in",
    summary="The citizen came, on the proof they show (their QR code): attended",
    responses=responses(409),
)
def check_in_by_proof(
    body: ProofBody, request: Request, staff: CurrentStaff, db: DbDep, now: NowDep
) -> AppointmentPublic:
    """422 for a code that is not a proof of ours (forged, altered) or whose appointment is
    gone; 409 for a genuine one that cannot be checked in: another post's, cancelled, already
    checked in, or of another day."""
    key = request.app.state.proof_key
    _, after = perform(
        db,
        staff,
        now,
        lambda tx: appointment_proof.check_in(tx, key, body.proof),
        unprocessable={"invalid_proof"},
    )
    return to_public(after)


@router.post(
    "/appointments/{appointment_id}/no-show",
    summary="The citizen did not come (once the appointment has started)",
    responses=responses(404, 409),
)
def no_show(
    appointment_id: IdPath, staff: CurrentStaff, db: DbDep, now: NowDep
) -> AppointmentPublic:
    return _attendance(db, staff, now, appointment_id, "no_show")


@router.post(
    "/appointments/{appointment_id}/cancel",
    summary="Cancel a booked appointment, with a reason the citizen is told",
    responses=responses(404, 409),
)
def cancel(
    appointment_id: IdPath, body: CancelBody, staff: CurrentStaff, db: DbDep, now: NowDep
) -> AppointmentPublic:
    _, after = perform(
        db,
        staff,
        now,
        lambda tx: domain.cancel(tx, appointment_id, body.reason),
        unprocessable={"reason_needed"},
    )
    return to_public(after)


class UndoBody(BaseModel):
    reason: str = Field(min_length=1, max_length=300, pattern=ONE_LINE)


@router.post(
    "/appointments/{appointment_id}/undo-attendance",
    summary="Undo a check-in or a no-show made by mistake (within the appointment's day)",
    responses=responses(404, 409),
)
def undo_attendance(
    appointment_id: IdPath, body: UndoBody, staff: CurrentStaff, db: DbDep, now: NowDep
) -> AppointmentPublic:
    _, after = perform(
        db,
        staff,
        now,
        lambda tx: domain.undo_attendance(tx, appointment_id, body.reason),
        unprocessable={"reason_needed"},
    )
    return to_public(after)
