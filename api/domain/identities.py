"""Linking channel identities to citizens: one citizen, one history, whatever the channel.

A phone number vouched for by a provider (WhatsApp's sender, a Telegram contact the user
shared as their own) is verified and belongs to one citizen only. When a Telegram user shares
their number and a citizen already owns it — they wrote on WhatsApp before — the Telegram
identity moves to that citizen; what the Telegram-only citizen had (appointments, requests)
moves along if nothing else leads to them, and the empty citizen is removed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel

from api.domain.citizens import country_of, normalise_phone
from api.models import Appointment, ChannelIdentity, Citizen, ConsularRequest, OutboxMessage


def _table(model: type[SQLModel]) -> sa.Table:
    return cast(sa.Table, sa.inspect(model).local_table)


identity = _table(ChannelIdentity)
citizen = _table(Citizen)
appointment = _table(Appointment)
request = _table(ConsularRequest)
outbox = _table(OutboxMessage)


def link_verified_phone(
    conn: Connection, channel: str, address: str, phone: str, now: datetime
) -> int | None:
    """The identity (channel, address) is vouched to own `phone`: make its citizen the one who
    owns that number. Returns that citizen's id; None when the identity does not exist yet
    (its first turn will find the owner by the verified phone) or the phone is not valid.
    Idempotent. Runs in the caller's transaction."""
    number = normalise_phone(phone)
    if number is None:
        return None
    select = sa.select(identity.c.id, identity.c.citizen_id).where(
        identity.c.channel == channel, identity.c.address == address
    )
    if conn.dialect.name == "postgresql":
        select = select.with_for_update()
    row = conn.execute(select).first()
    if row is None:
        return None
    for _ in range(2):  # a concurrent claim of the same number: the second pass re-points
        owner = _owner(conn, number)
        if owner is None:
            try:
                with conn.begin_nested():
                    conn.execute(
                        sa.update(citizen)
                        .where(citizen.c.id == row.citizen_id)
                        .values(phone=number, phone_verified=True, country=country_of(number))
                    )
            except IntegrityError:
                continue
            return int(row.citizen_id)
        if owner == row.citizen_id:
            return owner
        _move(conn, row, owner)
        return owner
    return None


def _owner(conn: Connection, phone: str) -> int | None:
    found = conn.execute(
        sa.select(citizen.c.id).where(citizen.c.phone == phone, citizen.c.phone_verified.is_(True))
    ).scalar()
    return int(found) if found is not None else None


def _move(conn: Connection, row: Any, owner: int) -> None:
    """Re-point the identity to `owner`; if its former citizen is left with no identity, give
    their history to `owner` and remove them."""
    former = int(row.citizen_id)
    conn.execute(sa.update(identity).where(identity.c.id == row.id).values(citizen_id=owner))
    others = conn.execute(
        sa.select(sa.func.count()).select_from(identity).where(identity.c.citizen_id == former)
    ).scalar_one()
    if others:
        return
    for table in (appointment, request, outbox):
        conn.execute(sa.update(table).where(table.c.citizen_id == former).values(citizen_id=owner))
    lang = conn.execute(sa.select(citizen.c.lang).where(citizen.c.id == former)).scalar()
    if lang:
        conn.execute(
            sa.update(citizen)
            .where(citizen.c.id == owner, citizen.c.lang.is_(None))
            .values(lang=lang)
        )
    try:
        with conn.begin_nested():
            conn.execute(sa.delete(citizen).where(citizen.c.id == former))
    except IntegrityError:
        pass  # something else still points at them (a table added later): keep the row
