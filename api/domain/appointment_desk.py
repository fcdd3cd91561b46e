"""Appointments at the desk: what staff see of them and what they do to them.

Each use case is one staff write (`api.domain.audit.staff_write`): check that the
appointment is the caller's to see, change it (api.domain.booking), tell the citizen
(api.domain.notices) and audit the change, in one transaction. The staff API and the console
call these and only translate the outcome: `NotVisible` is a 404 (or the console's "not
found" page), `Refused` a 409 (or a flash message), by its `code`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from api.domain import notices
from api.domain.audit import StaffWrite
from api.domain.booking import BookingService
from api.domain.errors import Refused, hidden
from api.domain.staff import StaffPrincipal, post_filter
from api.domain.tables import table
from api.models import Appointment, AppointmentStatus, Post, Service

appointment_table = table(Appointment)
post_table = table(Post)
service_table = table(Service)

Attendance = Literal["attended", "no_show"]
REASON_MAX = 300


@dataclass(frozen=True)
class AppointmentRecord:
    """An appointment with the codes of its post and service, as staff see it."""

    id: int
    reference: str
    post_code: str
    post_id: int
    service_code: str
    status: AppointmentStatus
    starts_at: datetime  # UTC
    local_time: datetime  # the same instant in the post's time zone
    full_name: str
    citizen_id: int
    cancel_reason: str
    created_at: datetime
    updated_at: datetime


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


def to_record(row: Row[Any]) -> AppointmentRecord:
    return AppointmentRecord(
        id=row.id,
        reference=row.reference,
        post_code=row.post_code,
        post_id=row.post_id,
        service_code=row.service_code,
        status=AppointmentStatus(row.status),
        starts_at=row.starts_at,
        local_time=row.starts_at.astimezone(ZoneInfo(row.post_timezone)),
        full_name=row.full_name,
        citizen_id=row.citizen_id,
        cancel_reason=row.cancel_reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def snapshot(record: AppointmentRecord) -> dict[str, Any]:
    """What the audit log keeps: the appointment, not the person."""
    return {
        "reference": record.reference,
        "post": record.post_code,
        "service": record.service_code,
        "status": record.status.value,
        "starts_at": record.starts_at,
        "cancel_reason": record.cancel_reason,
    }


def visible(conn: Connection, staff: StaffPrincipal, appointment_id: int) -> AppointmentRecord:
    """The appointment, if the caller may see it; else NotVisible."""
    row = conn.execute(
        appointments_query().where(
            appointment_table.c.id == appointment_id,
            post_filter(staff, appointment_table.c.post_id),
        )
    ).first()
    if row is None:
        exists = sa.select(appointment_table.c.id).where(appointment_table.c.id == appointment_id)
        raise hidden("appointment", exists=conn.execute(exists).first() is not None)
    return to_record(row)


def _on_its_day(record: AppointmentRecord, now: datetime) -> bool:
    """Is it the appointment's day at its post (in the post's time zone)?"""
    return now.astimezone(record.local_time.tzinfo).date() == record.local_time.date()


def set_attendance(
    tx: StaffWrite, appointment_id: int, status: Attendance
) -> tuple[AppointmentRecord, AppointmentRecord]:
    """The citizen came (`attended`, on the appointment's day only) or did not (`no_show`,
    once the time has passed); (before, after). Refused `not_today`, `cancelled` or
    `too_early`."""
    before = visible(tx.conn, tx.staff, appointment_id)
    if status == "attended" and not _on_its_day(before, tx.now):
        raise Refused(
            "not_today",
            "a check-in is recorded on the day of the appointment only",
            before.reference,
            day=before.local_time.date().isoformat(),
        )
    if BookingService(tx.conn).set_attendance(appointment_id, status, tx.now) is None:
        if before.status is AppointmentStatus.cancelled:
            raise Refused("cancelled", "the appointment was cancelled", before.reference)
        raise Refused(
            "too_early",
            "a no-show is recorded only once the appointment has started",
            before.reference,
        )
    after = visible(tx.conn, tx.staff, appointment_id)
    tx.audit(status, "appointment", appointment_id, snapshot(before), snapshot(after))
    return before, after


def cancel(
    tx: StaffWrite, appointment_id: int, reason: str
) -> tuple[AppointmentRecord, AppointmentRecord]:
    """Cancel a booked appointment with a reason the citizen is told in their language;
    (before, after). Refused `reason_needed` or `not_booked`."""
    reason = " ".join(reason.split())[:REASON_MAX]
    before = visible(tx.conn, tx.staff, appointment_id)
    if not reason:
        raise Refused("reason_needed", "a reason is needed", before.reference)
    info = BookingService(tx.conn).cancel_by_staff(appointment_id, reason, tx.now)
    if info is None:
        raise Refused(
            "not_booked",
            f"only a booked appointment can be cancelled ({before.status.value})",
            before.reference,
        )
    notices.appointment_cancelled(tx.conn, before.citizen_id, info, reason, tx.now)
    after = visible(tx.conn, tx.staff, appointment_id)
    tx.audit("cancel", "appointment", appointment_id, snapshot(before), snapshot(after))
    return before, after


def undo_attendance(
    tx: StaffWrite, appointment_id: int, reason: str
) -> tuple[AppointmentRecord, AppointmentRecord]:
    """Undo a check-in or a no-show made by mistake, within the appointment's day, with a
    reason for the audit log; (before, after). Refused `reason_needed`, `not_recorded` (it
    was neither) or `day_over`."""
    reason = " ".join(reason.split())[:REASON_MAX]
    before = visible(tx.conn, tx.staff, appointment_id)
    if not reason:
        raise Refused("reason_needed", "a reason is needed", before.reference)
    if before.status not in (AppointmentStatus.attended, AppointmentStatus.no_show):
        raise Refused("not_recorded", "neither a check-in nor a no-show to undo", before.reference)
    if not _on_its_day(before, tx.now):
        raise Refused(
            "day_over", "a check-in or no-show is undone within its day", before.reference
        )
    if BookingService(tx.conn).undo_attendance(appointment_id, tx.now) is None:
        raise Refused("not_recorded", "neither a check-in nor a no-show to undo", before.reference)
    after = visible(tx.conn, tx.staff, appointment_id)
    tx.audit(
        "undo_attendance",
        "appointment",
        appointment_id,
        snapshot(before),
        {**snapshot(after), "reason": reason},
    )
    return before, after
