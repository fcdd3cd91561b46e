"""A slot's seats, as booking takes and gives them back (api.domain.booking).

A `slot` row exists only once someone has booked it; until then it has
`post_service.seats_per_slot` seats (what is left of them: api.domain.schedule.seats_left).
Taking a seat is one conditional statement (`UPDATE slot SET booked = booked + 1 WHERE … AND
booked < capacity`), never a read followed by a write; the CHECK `booked BETWEEN 0 AND
capacity` on the table is the backstop.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from api.domain.schedule import Offer
from api.domain.tables import table
from api.models import Slot

_slot = table(Slot)


def ensure_slot(conn: Connection, offer: Offer, starts_at: datetime) -> None:
    """Create the slot row on its first booking; a row that exists is left alone."""
    insert = sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert
    conn.execute(
        insert(_slot)
        .values(
            post_service_id=offer.post_service_id,
            starts_at=starts_at,
            capacity=offer.seats_per_slot,
            booked=0,
        )
        .on_conflict_do_nothing(index_elements=["post_service_id", "starts_at"])
    )


def take_seat(conn: Connection, post_service_id: int, starts_at: datetime) -> int | None:
    """The one conditional statement that takes a seat: the slot's id, or None when full.
    The slot is addressed by its unique key, so no read is needed to learn its id."""
    row = conn.execute(
        sa.update(_slot)
        .where(
            _slot.c.post_service_id == post_service_id,
            _slot.c.starts_at == starts_at,
            _slot.c.booked < _slot.c.capacity,
        )
        .values(booked=_slot.c.booked + 1)
        .returning(_slot.c.id)
    ).first()
    return None if row is None else int(row.id)


def release_seat(conn: Connection, slot_id: int) -> None:
    conn.execute(sa.update(_slot).where(_slot.c.id == slot_id).values(booked=_slot.c.booked - 1))
