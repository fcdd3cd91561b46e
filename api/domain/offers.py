"""What each post offers of the services: slot length, seats, booking window, notice, fee
note — and the staff use case that changes it (`save_offer`, one audited staff write).

Changing the seats of an offer also resizes the slots already opened after now, never below
the seats they have sold: bookings made stay made. Seats the change frees (more seats, shorter
slots, the offer made active) go first to the citizens on its waitlist, in the same
transaction (api.domain.waitlist.offer_free_seats).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from api.domain import waitlist
from api.domain.audit import StaffWrite
from api.domain.errors import NotVisible
from api.domain.tables import table
from api.models import PostService, Service, Slot

service_table = table(Service)
offer_table = table(PostService)
slot_table = table(Slot)

SETTINGS = (
    "slot_minutes",
    "seats_per_slot",
    "booking_window_days",
    "min_notice_hours",
    "fee_note",
    "active",
)


def offers_query() -> sa.Select[Any]:
    return (
        sa.select(
            offer_table.c.id,
            offer_table.c.post_id,
            *(offer_table.c[name] for name in SETTINGS),
            service_table.c.code.label("service"),
            service_table.c.name.label("service_name"),
        )
        .select_from(
            offer_table.join(service_table, service_table.c.id == offer_table.c.service_id)
        )
        .order_by(service_table.c.position, service_table.c.id)
    )


def offers_of(conn: Connection, post_id: int) -> list[Row[Any]]:
    return list(conn.execute(offers_query().where(offer_table.c.post_id == post_id)))


def service_id(conn: Connection, service_code: str) -> int:
    found = conn.execute(
        sa.select(service_table.c.id).where(service_table.c.code == service_code)
    ).scalar_one_or_none()
    if found is None:
        raise NotVisible("service")
    return int(found)


def offer(conn: Connection, post_id: int, service: int) -> Row[Any] | None:
    return conn.execute(
        offers_query().where(offer_table.c.post_id == post_id, offer_table.c.service_id == service)
    ).first()


def snapshot(post_code: str, row: Row[Any]) -> dict[str, Any]:
    return {
        "post": post_code,
        **{k: getattr(row, k) for k in (*SETTINGS, "service", "service_name")},
    }


def _resize_future_slots(tx: StaffWrite, offer_id: int, seats: int) -> None:
    tx.conn.execute(
        sa.update(slot_table)
        .where(slot_table.c.post_service_id == offer_id, slot_table.c.starts_at > tx.now)
        .values(capacity=sa.case((slot_table.c.booked > seats, slot_table.c.booked), else_=seats))
    )


def save_offer(
    tx: StaffWrite,
    post_id: int,
    post_code: str,
    service_code: str,
    values: dict[str, Any],
    *,
    create: bool,
) -> Row[Any]:
    """Offer the service at the post (`create`) or change its offer, audited; the row after.
    NotVisible("service") for an unknown service, NotVisible("offer") for one the post does
    not offer when not creating. The caller has checked that the post is the staff's."""
    found_service = service_id(tx.conn, service_code)
    before = offer(tx.conn, post_id, found_service)
    if before is None and not create:
        raise NotVisible("offer")
    if before is None:
        tx.conn.execute(
            sa.insert(offer_table).values(post_id=post_id, service_id=found_service, **values)
        )
    elif values:
        tx.conn.execute(
            sa.update(offer_table).where(offer_table.c.id == before.id).values(**values)
        )
    after = offer(tx.conn, post_id, found_service)
    assert after is not None
    if "seats_per_slot" in values:
        _resize_future_slots(tx, after.id, values["seats_per_slot"])
    if after.active:
        waitlist.offer_free_seats(tx.conn, tx.now, post_id, found_service)
    tx.audit(
        "create" if before is None else "update",
        "offer",
        f"{post_code}/{service_code}",
        None if before is None else snapshot(post_code, before),
        snapshot(post_code, after),
    )
    return after
