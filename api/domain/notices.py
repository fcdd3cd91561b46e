"""What the bot tells a citizen on its own when staff change something that is theirs.

Each function builds one message (a catalog key with its parameters, rendered later in the
citizen's language) and hands it to the outbox in the caller's transaction, so that the
change and the message are written together or not at all. A dedupe key per purpose makes
each notice go out once, however often the change is retried.

Catalog keys used here (each language's catalog holds them):
- `notify.request_status`: {reference}, {service}, {post}, {status}, {note}
- `notify.appointment_cancelled`: {reference}, {service}, {post}, {when}, {reason}
- `notify.request_corrected`: {reference}, {status}, {reason} — a correction: back one step.
- `notify.request_guessed`: {reference} — someone failed to open it repeatedly; it stays
  safe, and its owner may follow it from their own phone.
- `notify.closure`: {reference}, {service}, {post}, {when}, {day}, {reason} — and an
  invitation to book again through the menu (1).
"""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from api.domain import outbox
from api.domain.tables import table
from api.models import OutboxMessage
from flows.choices import service_name
from flows.messages import Msg, msg, raw
from flows.status import STATUS_TEXTS, note
from flows.world import AppointmentInfo, PostInfo

KIND = "notification"
_outbox = table(OutboxMessage)


def _send(conn: Connection, citizen_id: int, message: Msg, dedupe_key: str, now: datetime) -> None:
    outbox.notify(conn, citizen_id, message, kind=KIND, dedupe_key=dedupe_key, now=now)


def request_status_changed(
    conn: Connection,
    citizen_id: int,
    *,
    request_id: int,
    event_id: int,
    reference: str,
    service_code: str,
    post: PostInfo,
    status: str,
    reason: str,
    now: datetime,
) -> None:
    message = msg(
        "notify.request_status",
        reference=reference,
        service=service_name(service_code),
        post=raw(post.name),
        status=STATUS_TEXTS.get(status, raw(status)),
        note=note(reason),
    )
    # Once per change (a status reached again after a correction is told again).
    _send(conn, citizen_id, message, f"request:{request_id}:{status}:{event_id}", now)


def was_told(conn: Connection, request_id: int, status: str) -> bool:
    """Was the citizen ever told that this request reached `status`?"""
    found = conn.execute(
        sa.select(_outbox.c.id)
        .where(_outbox.c.dedupe_key.like(f"request:{request_id}:{status}:%"))
        .limit(1)
    ).first()
    return found is not None


def request_corrected(
    conn: Connection,
    citizen_id: int,
    *,
    request_id: int,
    event_id: int,
    reference: str,
    status: str,
    reason: str,
    now: datetime,
) -> None:
    """A correction of what they were told: the request is back one step, and why."""
    message = msg(
        "notify.request_corrected",
        reference=reference,
        status=STATUS_TEXTS.get(status, raw(status)),
        reason=raw(reason),
    )
    _send(conn, citizen_id, message, f"request:{request_id}:corrected:{event_id}", now)


def request_guessed(
    conn: Connection, citizen_id: int, *, request_id: int, reference: str, now: datetime
) -> None:
    """Once a day at most: wrong birth dates keep coming for this citizen's reference."""
    message = msg("notify.request_guessed", reference=reference)
    _send(conn, citizen_id, message, f"request:{request_id}:guessed:{now.date()}", now)


def appointment_cancelled(
    conn: Connection, citizen_id: int, appointment: AppointmentInfo, reason: str, now: datetime
) -> None:
    message = msg(
        "notify.appointment_cancelled",
        reference=appointment.reference,
        service=service_name(appointment.service_code),
        post=raw(appointment.post.name),
        when=appointment.local,
        reason=raw(reason or "-"),
    )
    _send(conn, citizen_id, message, f"appointment:{appointment.id}:cancelled", now)


def appointment_closed(
    conn: Connection,
    citizen_id: int,
    appointment: AppointmentInfo,
    day: date,
    reason: str,
    now: datetime,
) -> None:
    message = msg(
        "notify.closure",
        reference=appointment.reference,
        service=service_name(appointment.service_code),
        post=raw(appointment.post.name),
        when=appointment.local,
        day=day,
        reason=raw(reason or "-"),
    )
    _send(conn, citizen_id, message, f"appointment:{appointment.id}:cancelled", now)
