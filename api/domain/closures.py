"""Closing a post for a day: the closure, and what it does to the appointments of that day.

Adding a closure on a day that has bookings cancels those still to come (reason
`closure`, their seats released) and tells each citizen, in their language, with an
invitation to book again through the menu. Appointments of that day that already started are
left as they are: staff record those as attended or not.

Before closing, `preview` says which appointments the closure would cancel (the same query
`add_closure` cancels by), with a `token` naming that exact set: `add_closure(…, expected=
token)` refuses (`ClosureChanged`, nothing written) when the set changed meanwhile — a booking
made or cancelled between the question and the confirmation — so that what was confirmed is
what is cancelled.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from api.domain import notices
from api.domain.booking import BookingService
from api.domain.errors import Refused
from api.domain.tables import table
from api.models import Appointment, AppointmentStatus, Citizen, Closure, Post, Service
from flows.world import AppointmentInfo

CLOSURE_REASON = "closure"

closure_table = table(Closure)
appointment_table = table(Appointment)
post_table = table(Post)
citizen_table = table(Citizen)
service_table = table(Service)


class ClosureChanged(Refused):
    """The appointments of the day changed since the preview that was confirmed."""

    def __init__(self, day: date) -> None:
        super().__init__("closure_stale", "the day's appointments changed: confirm again")
        self.day = day


@dataclass(frozen=True)
class ClosurePreview:
    """What closing `day` would cancel: the appointments (id, reference, starts_at,
    full_name, service, phone), in time order."""

    day: date
    appointments: list[Row[Any]]

    @property
    def token(self) -> str:
        return _token(row.id for row in self.appointments)


def _token(ids: Any) -> str:
    """A name for one set of appointments (their ids), to compare a confirmation with."""
    joined = ",".join(str(i) for i in sorted(ids))
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


def local_day_bounds(day: date, timezone: str) -> tuple[datetime, datetime]:
    """The UTC instants where a local day starts and the next one starts."""
    tz = ZoneInfo(timezone)
    start = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    return start, end


def _to_cancel(conn: Connection, post_id: int, day: date, now: datetime) -> list[Row[Any]]:
    """The appointments a closure of `day` cancels: booked, still to come, that local day."""
    timezone = conn.execute(
        sa.select(post_table.c.timezone).where(post_table.c.id == post_id)
    ).scalar_one()
    start, end = local_day_bounds(day, timezone)
    return list(
        conn.execute(
            sa.select(
                appointment_table.c.id,
                appointment_table.c.citizen_id,
                appointment_table.c.reference,
                appointment_table.c.starts_at,
                appointment_table.c.full_name,
                service_table.c.code.label("service"),
                citizen_table.c.phone,
            )
            .join(service_table, service_table.c.id == appointment_table.c.service_id)
            .join(citizen_table, citizen_table.c.id == appointment_table.c.citizen_id)
            .where(
                appointment_table.c.post_id == post_id,
                appointment_table.c.status == AppointmentStatus.booked.value,
                appointment_table.c.starts_at >= max(start, now),
                appointment_table.c.starts_at < end,
            )
            .order_by(appointment_table.c.starts_at, appointment_table.c.id)
        )
    )


def preview(conn: Connection, post_id: int, day: date, now: datetime) -> ClosurePreview:
    """What adding a closure of `day` now would cancel (nothing is changed)."""
    return ClosurePreview(day, _to_cancel(conn, post_id, day, now))


def add_closure(
    conn: Connection,
    post_id: int,
    day: date,
    reason: str,
    now: datetime,
    *,
    expected: str | None = None,
) -> list[AppointmentInfo]:
    """Close a post for a day; returns the appointments cancelled because of it. Raises
    sqlalchemy's IntegrityError when the day is closed already, and ClosureChanged when
    `expected` (a preview's token) no longer names the appointments it would cancel."""
    conn.execute(sa.insert(closure_table).values(post_id=post_id, day=day, reason=reason))
    rows = _to_cancel(conn, post_id, day, now)
    if expected is not None and _token(row.id for row in rows) != expected:
        raise ClosureChanged(day)
    booking = BookingService(conn)
    cancelled = []
    for row in rows:
        info = booking.cancel_by_staff(row.id, CLOSURE_REASON, now)
        if info is None:  # cancelled meanwhile by its holder
            continue
        cancelled.append(info)
        notices.appointment_closed(conn, row.citizen_id, info, day, reason, now)
    return cancelled


def remove_closure(conn: Connection, post_id: int, day: date) -> dict[str, object] | None:
    """Open the day again (cancelled appointments stay cancelled); the closure removed."""
    row = conn.execute(
        sa.delete(closure_table)
        .where(closure_table.c.post_id == post_id, closure_table.c.day == day)
        .returning(closure_table.c.day, closure_table.c.reason)
    ).first()
    return None if row is None else {"day": row.day, "reason": row.reason}
