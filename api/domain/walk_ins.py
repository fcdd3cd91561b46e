"""Walk-ins: an agent books for a citizen standing at the desk.

The booking is the chat's own (`BookingService.book`): the same grid of free times, notice
and window, fair-access limits, one person one procedure, and the one conditional UPDATE
that takes a seat — so when the chat and the desk want the last seat at once, one wins. It is
a staff write (`api.domain.audit.staff_write`), audited `walk_in`, all in one transaction: a
refusal leaves nothing behind, not even the citizen it would have created.

Who the appointment is for. Without a phone number, a citizen of their own (who counts alone
against the phone limit). With one — read in the post's country, so "07 01 00 01 23" at
Abidjan is +2250701000123 — the citizen that number leads to in the chat: the one behind
its WhatsApp identity, else the one who owns it verified. So that a number typed at a desk
pulls nobody into the agent's view (README, Security model), that citizen is taken only when
they already belong to one of the agent's posts (an administrator: anyone,
`api.domain.membership`); otherwise the walk-in gets a citizen of their own with that
number. A new citizen is never marked verified by the desk: their number gets a WhatsApp
identity, so that reminders reach them there (as a template, outside WhatsApp's 24 hours),
and it becomes verified when they first write from it (`api.conversations`).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from api.domain import appointment_desk, membership, search
from api.domain.appointment_desk import AppointmentRecord
from api.domain.audit import StaffWrite
from api.domain.booking import BookingService
from api.domain.citizens import country_of
from api.domain.errors import NotVisible, Refused
from api.domain.staff import StaffPrincipal, post_filter
from api.domain.tables import table
from api.models import ChannelIdentity, Citizen, Post
from flows.booking import full_name as valid_full_name
from flows.engine import LANGUAGES
from flows.world import BookingOutcome

WHATSAPP = "whatsapp"  # bot.channels.whatsapp.CHANNEL

_post = table(Post)
_citizen = table(Citizen)
_identity = table(ChannelIdentity)


def book(
    tx: StaffWrite,
    post_code: str,
    service_code: str,
    starts_at: datetime,
    full_name: str,
    phone: str = "",
    lang: str = "fr",
) -> AppointmentRecord:
    """Book a seat for the person at the desk. NotVisible `post` for another post's; Refused
    `name_invalid`, `phone_invalid`, `unavailable` (not a free time of that service),
    `full` (taken meanwhile) or `limit_reached` (the post's fair-access rules)."""
    post = tx.conn.execute(
        sa.select(_post.c.id, _post.c.code, _post.c.country).where(
            _post.c.code == post_code.strip().upper(), post_filter(tx.staff, _post.c.id)
        )
    ).first()
    if post is None:
        raise NotVisible("post")
    name = valid_full_name(" ".join(full_name.split()))
    if name is None or len(name.split()) < 2:
        raise Refused("name_invalid", "a full name: at least two words, letters, no digits")
    number = None
    if phone.strip():
        readings = search.phone_readings(phone, [post.country])
        if not readings:
            raise Refused("phone_invalid", "not a phone number")
        number = readings[0]
    citizen_id = _citizen_for(tx.conn, tx.staff, number, lang, tx.now)
    result = BookingService(tx.conn, at_desk=True).book(
        citizen_id, post.code, service_code, starts_at, name, tx.now
    )
    if result.outcome is not BookingOutcome.booked or result.appointment is None:
        raise Refused(result.outcome.value, f"not booked: {result.outcome.value}")
    record = appointment_desk.visible(tx.conn, tx.staff, result.appointment.id)
    tx.audit(
        "walk_in",
        "appointment",
        record.id,
        None,
        {**appointment_desk.snapshot(record), "phone_given": number is not None},
    )
    return record


def _citizen_for(
    conn: Connection, staff: StaffPrincipal, phone: str | None, lang: str, now: datetime
) -> int:
    """Who the appointment is for (see the module docstring)."""
    behind = None
    if phone is not None:
        behind = conn.execute(
            sa.select(_identity.c.citizen_id).where(
                _identity.c.channel == WHATSAPP, _identity.c.address == phone
            )
        ).scalar()
        owner = behind
        if owner is None:
            owner = conn.execute(
                sa.select(_citizen.c.id).where(
                    _citizen.c.phone == phone, _citizen.c.phone_verified.is_(True)
                )
            ).scalar()
        scope = None if staff.is_admin else staff.post_ids
        if owner is not None and membership.citizen_in_posts(conn, int(owner), scope):
            return int(owner)
    citizen_id = int(
        conn.execute(
            sa.insert(_citizen)
            .values(
                phone=phone,
                phone_verified=False,
                country=country_of(phone),
                lang=lang if lang in LANGUAGES else None,
                created_at=now,
            )
            .returning(_citizen.c.id)
        ).scalar_one()
    )
    if phone is not None and behind is None:
        try:
            with conn.begin_nested():
                conn.execute(
                    sa.insert(_identity).values(
                        channel=WHATSAPP, address=phone, citizen_id=citizen_id
                    )
                )
        except IntegrityError:
            pass  # their first WhatsApp message came meanwhile: reminders follow it there
    return citizen_id
