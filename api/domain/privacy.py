"""Everything held about one citizen: what belongs to whom, the export, and the erasure.

A citizen's requests are those linked to them, and those lodged with their verified phone
number before they first wrote to the bot (not linked yet).

Erasure removes the person and keeps the statistics. The citizen row stays, without phone,
as an anonymous stub (country, language and dates kept, `erased_at` set); appointment and
request rows keep their post, service, status and times, with the name replaced by "—" and
the phone and birth date removed; upcoming appointments are cancelled (their seats go back
on sale); channel identities, and the conversations held on them, are deleted; messages
still waiting in the outbox are cancelled, and the address and content of every message are
removed; the conversations with the desk keep their post, status and times, and their
messages (what the citizen and the agents wrote) are deleted. Nothing is sent to the
citizen about it: there is no longer anywhere to send it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from api.domain.booking import BookingService
from api.domain.tables import table
from api.models import (
    Appointment,
    AppointmentStatus,
    ChannelIdentity,
    Citizen,
    ConsularRequest,
    DeskConversation,
    DeskMessage,
    OutboxMessage,
)

ERASED = "—"
ERASED_REASON = "erased"

citizen_table = table(Citizen)
identity_table = table(ChannelIdentity)
appointment_table = table(Appointment)
request_table = table(ConsularRequest)
outbox_table = table(OutboxMessage)
desk_table = table(DeskConversation)
desk_message_table = table(DeskMessage)


def requests_of(citizen_id: int) -> sa.ColumnElement[bool]:
    """Condition on consular_request: the request is this citizen's."""
    verified_phone = (
        sa.select(citizen_table.c.phone)
        .where(citizen_table.c.id == citizen_id, citizen_table.c.phone_verified.is_(True))
        .scalar_subquery()
    )
    return sa.or_(
        request_table.c.citizen_id == citizen_id,
        sa.and_(request_table.c.citizen_id.is_(None), request_table.c.phone == verified_phone),
    )


@dataclass(frozen=True)
class Erasure:
    appointments_cancelled: int
    appointments_anonymised: int
    requests_anonymised: int
    identities_deleted: int
    messages_cancelled: int
    messages_scrubbed: int
    desk_messages_deleted: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def export_rows(conn: Connection, citizen_id: int) -> dict[str, list[dict[str, Any]]] | None:
    """The raw rows held about a citizen, by table; None if there is no such citizen."""
    citizen = (
        conn.execute(sa.select(citizen_table).where(citizen_table.c.id == citizen_id))
        .mappings()
        .first()
    )
    if citizen is None:
        return None

    def rows(query: sa.Select[Any]) -> list[dict[str, Any]]:
        return [dict(r) for r in conn.execute(query).mappings()]

    return {
        "citizen": [dict(citizen)],
        "identities": rows(
            sa.select(identity_table)
            .where(identity_table.c.citizen_id == citizen_id)
            .order_by(identity_table.c.id)
        ),
        "outbox": rows(
            sa.select(outbox_table)
            .where(outbox_table.c.citizen_id == citizen_id)
            .order_by(outbox_table.c.id)
        ),
        "desk_conversations": rows(
            sa.select(desk_table.c.id)
            .where(desk_table.c.citizen_id == citizen_id)
            .order_by(desk_table.c.id)
        ),
    }


def erase(conn: Connection, citizen_id: int, now: datetime) -> Erasure | None:
    """Erase a citizen (see the module docstring); None if there is no such citizen or it was
    erased already."""
    locked = conn.execute(
        sa.select(citizen_table.c.id)
        .where(citizen_table.c.id == citizen_id, citizen_table.c.erased_at.is_(None))
        .with_for_update()
    ).first()
    if locked is None:
        return None

    booking = BookingService(conn)
    upcoming = (
        conn.execute(
            sa.select(appointment_table.c.id).where(
                appointment_table.c.citizen_id == citizen_id,
                appointment_table.c.status == AppointmentStatus.booked.value,
                appointment_table.c.starts_at > now,
            )
        )
        .scalars()
        .all()
    )
    cancelled = sum(
        1
        for appointment_id in upcoming
        if booking.cancel_by_staff(appointment_id, ERASED_REASON, now)
    )
    appointments = conn.execute(
        sa.update(appointment_table)
        .where(appointment_table.c.citizen_id == citizen_id)
        .values(full_name=ERASED, name_key="", updated_at=now)
    ).rowcount
    requests = conn.execute(
        sa.update(request_table)
        .where(requests_of(citizen_id))
        .values(citizen_id=citizen_id, phone=None, full_name=ERASED, name_key="", birth_date=None)
    ).rowcount
    identities = conn.execute(
        sa.delete(identity_table).where(identity_table.c.citizen_id == citizen_id)
    ).rowcount
    messages_cancelled = conn.execute(
        sa.update(outbox_table)
        .where(outbox_table.c.citizen_id == citizen_id, outbox_table.c.status == "pending")
        .values(status="cancelled", skip_reason="erased")
    ).rowcount
    messages_scrubbed = conn.execute(
        sa.update(outbox_table)
        .where(outbox_table.c.citizen_id == citizen_id)
        .values(address=ERASED, payload={}, error="")
    ).rowcount
    conversations = sa.select(desk_table.c.id).where(desk_table.c.citizen_id == citizen_id)
    desk_messages = conn.execute(
        sa.delete(desk_message_table).where(desk_message_table.c.conversation_id.in_(conversations))
    ).rowcount
    conn.execute(
        sa.update(desk_table)
        .where(desk_table.c.citizen_id == citizen_id, desk_table.c.status != "closed")
        .values(status="closed", closed_at=now, waiting_since=None)
    )
    conn.execute(
        sa.update(desk_table).where(desk_table.c.citizen_id == citizen_id).values(tried=None)
    )
    conn.execute(
        sa.update(citizen_table)
        .where(citizen_table.c.id == citizen_id)
        .values(phone=None, phone_verified=False, opted_out=True, erased_at=now)
    )
    return Erasure(
        appointments_cancelled=cancelled,
        appointments_anonymised=appointments,
        requests_anonymised=requests,
        identities_deleted=identities,
        messages_cancelled=messages_cancelled,
        messages_scrubbed=messages_scrubbed,
        desk_messages_deleted=desk_messages,
    )
