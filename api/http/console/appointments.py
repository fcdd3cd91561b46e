"""The day's appointments of each post (in the post's own local day), check-in, no-show and
cancellation with a reason — the use cases of api.domain.appointment_desk, as forms."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import Form, Query, Response
from sqlalchemy.engine import Connection

from api import db
from api.domain import appointment_desk, search
from api.domain.appointment_desk import Attendance
from api.domain.closures import local_day_bounds
from api.domain.errors import Refused
from api.domain.tables import table
from api.http.console.base import (
    APPOINTMENT_STATUSES,
    AnyRow,
    Desk,
    DeskDep,
    FormDesk,
    IdPath,
    flash_refused,
    french_day,
    local_today,
    not_found,
    one_line,
    parse_day,
    perform,
    pick_post,
    safe_next,
    section_router,
    visible_posts,
)
from api.models import Appointment, Service, StaffRole

router = section_router()

_appt = table(Appointment)
_service = table(Service)


@dataclass(frozen=True)
class AppointmentLine:
    id: int
    reference: str
    time: str
    full_name: str
    service: str
    status: str
    cancel_reason: str
    started: bool
    today: bool  # the appointment's day at its post: check-in and corrections allowed
    channel: str  # where the citizen is reached (api.domain.search.DESK: nowhere)
    lang: str
    phone: str  # masked: the screen is shared


@dataclass(frozen=True)
class DayOfPost:
    post: AnyRow
    day: date
    day_label: str
    lines: list[AppointmentLine]
    counts: dict[str, int]


def _appointments_of_day(
    conn: Connection, post: AnyRow, day: date, status: str, now: datetime
) -> DayOfPost:
    tz = ZoneInfo(post.timezone)
    start, end = local_day_bounds(day, post.timezone)
    rows = conn.execute(
        sa.select(
            _appt.c.id,
            _appt.c.reference,
            _appt.c.starts_at,
            _appt.c.full_name,
            _appt.c.status,
            _appt.c.cancel_reason,
            _service.c.name.label("service_name"),
            *search.contact_columns(_appt.c.citizen_id),
        )
        .select_from(_appt.join(_service, _service.c.id == _appt.c.service_id))
        .where(_appt.c.post_id == post.id, _appt.c.starts_at >= start, _appt.c.starts_at < end)
        .order_by(_appt.c.starts_at, _appt.c.reference)
    ).all()
    counts = dict.fromkeys(APPOINTMENT_STATUSES, 0)
    lines = []
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
        if status and row.status != status:
            continue
        lines.append(
            AppointmentLine(
                id=row.id,
                reference=row.reference,
                time=row.starts_at.astimezone(tz).strftime("%H:%M"),
                full_name=row.full_name,
                service=row.service_name,
                status=row.status,
                cancel_reason=row.cancel_reason,
                started=row.starts_at <= now,
                today=day == local_today(post, now),
                channel=row.channel or search.DESK,
                lang=row.lang or "",
                phone=search.mask_phone(row.phone),
            )
        )
    return DayOfPost(post, day, french_day(day), lines, counts)


@router.get("/appointments", response_model=None)
def appointments(
    desk: DeskDep,
    post: Annotated[str, Query(max_length=8)] = "",
    day: Annotated[str, Query(max_length=10)] = "",
    status: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    if desk.staff.role is StaffRole.translator and not desk.staff.post_ids:
        return desk.redirect("/console/translations")  # a translator's home
    status = status if status in APPOINTMENT_STATUSES else ""
    wanted_day = parse_day(day)
    with db.read(desk.engine) as conn:
        posts = visible_posts(conn, desk.staff)
        chosen = pick_post(posts, post)
        if post and chosen is None:
            raise not_found(desk, "post")
        shown = [chosen] if chosen is not None else posts
        days = [
            _appointments_of_day(conn, p, wanted_day or local_today(p, desk.now), status, desk.now)
            for p in shown
        ]
    shown_day = wanted_day or (local_today(shown[0], desk.now) if shown else desk.now.date())
    filters = {
        "post": chosen.code if chosen else "",
        "day": wanted_day.isoformat() if wanted_day else "",
        "status": status,
    }

    def url(**changes: str) -> str:
        query = urlencode({k: v for k, v in {**filters, **changes}.items() if v})
        return "/console/appointments" + ("?" + query if query else "")

    return desk.page(
        "console/appointments.html",
        "appointments",
        posts=posts,
        days=days,
        filters=filters,
        statuses=APPOINTMENT_STATUSES,
        back=url(),
        day_value=shown_day,
        day_links={
            "previous": url(day=(shown_day - timedelta(days=1)).isoformat()),
            "today": url(day=""),
            "next": url(day=(shown_day + timedelta(days=1)).isoformat()),
        },
    )


def _attendance(desk: Desk, appointment_id: int, status: Attendance, back: str) -> Response:
    """`POST /api/v1/appointments/{id}/check-in|no-show`, as a form."""
    try:
        _, after = perform(
            desk, lambda tx: appointment_desk.set_attendance(tx, appointment_id, status)
        )
    except Refused as refused:
        codes = {"cancelled": "was_cancelled", "not_today": "check_in_not_today"}
        flash_refused(desk, refused, codes, "no_show_too_early")
    else:
        desk.session.flash("ok", status, reference=after.reference)  # no name in the cookie
    return desk.redirect(safe_next(back))


@router.post("/appointments/{appointment_id}/attended", response_model=None)
def check_in(
    desk: FormDesk, appointment_id: IdPath, back: Annotated[str, Form(max_length=500)] = ""
) -> Response:
    return _attendance(desk, appointment_id, "attended", back)


@router.post("/appointments/{appointment_id}/no-show", response_model=None)
def no_show(
    desk: FormDesk, appointment_id: IdPath, back: Annotated[str, Form(max_length=500)] = ""
) -> Response:
    return _attendance(desk, appointment_id, "no_show", back)


@router.post("/appointments/{appointment_id}/cancel", response_model=None)
def cancel_appointment(
    desk: FormDesk,
    appointment_id: IdPath,
    reason: Annotated[str, Form(max_length=1000)] = "",
    back: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """`POST /api/v1/appointments/{id}/cancel`, as a form: cancel, tell the citizen, audit."""
    try:
        _, after = perform(
            desk, lambda tx: appointment_desk.cancel(tx, appointment_id, one_line(reason, 300))
        )
    except Refused as refused:
        flash_refused(desk, refused, {"reason_needed": "cancel_reason_needed"}, "not_booked")
    else:
        desk.session.flash("ok", "cancelled", reference=after.reference)
    return desk.redirect(safe_next(back))


@router.post("/appointments/{appointment_id}/undo-attendance", response_model=None)
def undo_attendance(
    desk: FormDesk,
    appointment_id: IdPath,
    reason: Annotated[str, Form(max_length=1000)] = "",
    back: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """`POST /api/v1/appointments/{id}/undo-attendance`, as a form: back to booked, audited."""
    try:
        _, after = perform(
            desk,
            lambda tx: appointment_desk.undo_attendance(tx, appointment_id, one_line(reason, 300)),
        )
    except Refused as refused:
        codes = {"reason_needed": "correction_reason_needed", "day_over": "correction_day_over"}
        flash_refused(desk, refused, codes, "nothing_to_undo")
    else:
        desk.session.flash("ok", "attendance_undone", reference=after.reference)
    return desk.redirect(safe_next(back))
