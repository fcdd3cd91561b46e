"""Closing a post for a day: the closure, and what it does to the appointments of that day.

Adding a closure on a day that has bookings cancels those still to come (reason
`closure`, their seats released) and tells each citizen, in their language, with an
invitation to book again through the menu. Appointments of that day that already started are
left as they are: staff record those as attended or not.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from api.domain import notices
from api.domain.booking import BookingService
from api.domain.tables import table
from api.models import Appointment, AppointmentStatus, Closure, Post
from flows.world import AppointmentInfo

CLOSURE_REASON = "closure"

closure_table = table(Closure)
appointment_table = table(Appointment)
post_table = table(Post)


def local_day_bounds(day: date, timezone: str) -> tuple[datetime, datetime]:
    """The UTC instants where a local day starts and the next one starts."""
    tz = ZoneInfo(timezone)
    start = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    return start, end


def add_closure(
    conn: Connection, post_id: int, day: date, reason: str, now: datetime
) -> list[AppointmentInfo]:
    """Close a post for a day; returns the appointments cancelled because of it. Raises
    sqlalchemy's IntegrityError when the day is closed already."""
    conn.execute(sa.insert(closure_table).values(post_id=post_id, day=day, reason=reason))
    timezone = conn.execute(
        sa.select(post_table.c.timezone).where(post_table.c.id == post_id)
    ).scalar_one()
    start, end = local_day_bounds(day, timezone)
    rows = conn.execute(
        sa.select(appointment_table.c.id, appointment_table.c.citizen_id)
        .where(
            appointment_table.c.post_id == post_id,
            appointment_table.c.status == AppointmentStatus.booked.value,
            appointment_table.c.starts_at >= max(start, now),
            appointment_table.c.starts_at < end,
        )
        .order_by(appointment_table.c.starts_at, appointment_table.c.id)
    ).all()
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
