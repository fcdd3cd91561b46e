"""Appointment reminders: the day before and two hours before, each sent once.

The scheduler runs `send_reminders` every minute (api.worker); the database decides, not the
scheduler's memory. For each appointment that is due a reminder, one transaction claims it
with a conditional UPDATE (`SET reminded_day_before_at = :now WHERE id = :id AND
reminded_day_before_at IS NULL`) and writes the outbox message: two clocks, a restart or a
crash between the two statements can neither send it twice nor lose it.

Which reminder is due:
- the day before: the appointment starts in more than 2 hours and at most 24 hours, on a
  later day than today in the post's time zone (the text says "tomorrow");
- two hours before: it starts in at most 2 hours (and has not started).
An appointment booked less than an hour ago gets none yet (the booking confirmation said it
all); one booked for two hours from now gets only the second. After downtime, a reminder whose
window passed is not sent late: the next one is.

The text is in the citizen's language, with the day and time in the post's time zone. Opted-out
citizens get reminders too: STOP is about announcements, not their own appointments.

Catalog keys: `reminder.day_before` and `reminder.two_hours`, with {reference}, {service},
{post}, {day} and {time}.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from api import db
from api.domain.outbox import notify
from api.models import Appointment, AppointmentStatus, Post, Service
from bot.i18n import Renderer
from flows.choices import service_name
from flows.messages import msg, proof_of

log = logging.getLogger(__name__)

KIND = "reminder"
JUST_BOOKED = timedelta(hours=1)


def _table(model: type[SQLModel]) -> sa.Table:
    return cast(sa.Table, sa.inspect(model).local_table)


appointment = _table(Appointment)
post = _table(Post)
service = _table(Service)


@dataclass(frozen=True)
class Reminder:
    name: str  # in the dedupe key: reminder:<name>:<appointment id>
    column: str  # appointment column that records it was sent
    key: str  # catalog key
    after: timedelta  # due when the appointment starts later than now + after…
    until: timedelta  # …and no later than now + until
    next_day: bool = False  # …and on a later day than today, in the post's time zone


REMINDERS = (
    Reminder(
        "day",
        "reminded_day_before_at",
        "reminder.day_before",
        timedelta(hours=2),
        timedelta(hours=24),
        next_day=True,
    ),
    Reminder("2h", "reminded_two_hours_at", "reminder.two_hours", timedelta(0), timedelta(hours=2)),
)


def send_reminders(engine: Engine, now: datetime, *, renderer: Renderer | None = None) -> int:
    """Queue every reminder due at `now`; returns how many were queued."""
    queued = 0
    for reminder in REMINDERS:
        for appointment_id in _due(engine, reminder, now):
            with db.write(engine) as conn:
                if _claim(conn, reminder, appointment_id, now) and _queue(
                    conn, reminder, appointment_id, now, renderer
                ):
                    queued += 1
    if queued:
        log.info("reminders: %d queued", queued)
    return queued


def _due(engine: Engine, reminder: Reminder, now: datetime) -> list[int]:
    sent_at = appointment.c[reminder.column]
    with db.read(engine) as conn:
        rows = conn.execute(
            sa.select(appointment.c.id, appointment.c.starts_at, post.c.timezone)
            .join(post, post.c.id == appointment.c.post_id)
            .where(
                appointment.c.status == AppointmentStatus.booked.value,
                sent_at.is_(None),
                appointment.c.starts_at > now + reminder.after,
                appointment.c.starts_at <= now + reminder.until,
                appointment.c.created_at <= now - JUST_BOOKED,
            )
            .order_by(appointment.c.starts_at, appointment.c.id)
        ).all()
    if not reminder.next_day:
        return [row.id for row in rows]
    return [
        row.id
        for row in rows
        if row.starts_at.astimezone(ZoneInfo(row.timezone)).date()
        > now.astimezone(ZoneInfo(row.timezone)).date()
    ]


def _claim(conn: sa.Connection, reminder: Reminder, appointment_id: int, now: datetime) -> bool:
    sent_at = appointment.c[reminder.column]
    result = conn.execute(
        sa.update(appointment)
        .where(
            appointment.c.id == appointment_id,
            sent_at.is_(None),
            appointment.c.status == AppointmentStatus.booked.value,
        )
        .values({reminder.column: now})
    )
    return result.rowcount == 1


def _queue(
    conn: sa.Connection,
    reminder: Reminder,
    appointment_id: int,
    now: datetime,
    renderer: Renderer | None,
) -> bool:
    row = conn.execute(
        sa.select(
            appointment.c.reference,
            appointment.c.citizen_id,
            appointment.c.starts_at,
            post.c.name.label("post_name"),
            post.c.timezone,
            service.c.code.label("service_code"),
        )
        .join(post, post.c.id == appointment.c.post_id)
        .join(service, service.c.id == appointment.c.service_id)
        .where(appointment.c.id == appointment_id)
    ).one()
    local = row.starts_at.astimezone(ZoneInfo(row.timezone))
    message = msg(
        reminder.key,
        reference=row.reference,
        service=service_name(row.service_code),
        post=row.post_name,
        day=local.date(),
        time=local.time(),
    )
    return notify(
        conn,
        row.citizen_id,
        message,
        kind=KIND,
        dedupe_key=f"reminder:{reminder.name}:{appointment_id}",
        now=now,
        renderer=renderer,
        # the day before, the proof again: the QR code to show at the door tomorrow
        attachments=(proof_of(row.reference),) if reminder.name == "day" else (),
    )
