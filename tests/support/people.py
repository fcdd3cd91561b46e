"""Rows for messaging tests: citizens with their channel identities, appointments, outbox rows.

Written straight to the tables (no flow, no booking rule in the way), so that a test states
exactly the situation it is about.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from api import db
from api.models import (
    Appointment,
    ChannelIdentity,
    Citizen,
    OutboxMessage,
    Post,
    PostService,
    Service,
    Slot,
)


def _table(model: Any) -> sa.Table:
    return cast(sa.Table, sa.inspect(model).local_table)


citizen = _table(Citizen)
identity = _table(ChannelIdentity)
outbox = _table(OutboxMessage)
appointment = _table(Appointment)
post = _table(Post)
service = _table(Service)
post_service = _table(PostService)
slot = _table(Slot)

_refs = itertools.count(1)


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def add_citizen(
    engine: Engine,
    *,
    lang: str | None = "fr",
    phone: str | None = None,
    verified: bool = False,
    opted_out: bool = False,
    identities: tuple[tuple[str, str, datetime | None], ...] = (),
) -> int:
    """A citizen and their identities: (channel, address, last_inbound_at)."""
    with db.write(engine) as conn:
        citizen_id = conn.execute(
            sa.insert(citizen)
            .values(
                phone=phone,
                phone_verified=verified,
                lang=lang,
                opted_out=opted_out,
                created_at=now(),
            )
            .returning(citizen.c.id)
        ).scalar_one()
        for channel, address, last in identities:
            conn.execute(
                sa.insert(identity).values(
                    channel=channel,
                    address=address,
                    citizen_id=citizen_id,
                    last_inbound_at=last,
                )
            )
    return int(citizen_id)


def add_appointment(
    engine: Engine,
    citizen_id: int,
    starts_at: datetime,
    *,
    post_code: str = "ABJ",
    service_code: str = "passport",
    created_at: datetime | None = None,
    status: str = "booked",
) -> tuple[int, str]:
    """An appointment (and its slot) on the demo network; returns (id, reference)."""
    reference = f"RDV-T{next(_refs):05d}"
    with db.write(engine) as conn:
        post_id = conn.execute(sa.select(post.c.id).where(post.c.code == post_code)).scalar_one()
        service_id = conn.execute(
            sa.select(service.c.id).where(service.c.code == service_code)
        ).scalar_one()
        offer_id = conn.execute(
            sa.select(post_service.c.id).where(
                post_service.c.post_id == post_id, post_service.c.service_id == service_id
            )
        ).scalar_one()
        slot_id = conn.execute(
            sa.insert(slot)
            .values(post_service_id=offer_id, starts_at=starts_at, capacity=2, booked=1)
            .returning(slot.c.id)
        ).scalar_one()
        created = created_at or starts_at - timedelta(days=7)
        appointment_id = conn.execute(
            sa.insert(appointment)
            .returning(appointment.c.id)
            .values(
                reference=reference,
                citizen_id=citizen_id,
                post_id=post_id,
                service_id=service_id,
                slot_id=slot_id,
                starts_at=starts_at,
                full_name="Awa Ouedraogo",
                status=status,
                cancel_reason="",
                created_at=created,
                updated_at=created,
            )
        ).scalar_one()
    return int(appointment_id), reference


def add_outbox(
    engine: Engine,
    channel: str,
    address: str,
    text: str = "Bonjour",
    *,
    lane: int = 1,
    status: str = "pending",
    due: datetime | None = None,
    lang: str = "fr",
    kind: str = "notification",
    choices: tuple[str, ...] = (),
    **extra: Any,
) -> int:
    moment = due or now()
    with db.write(engine) as conn:
        row_id = conn.execute(
            sa.insert(outbox)
            .returning(outbox.c.id)
            .values(
                lane=lane,
                kind=kind,
                channel=channel,
                address=address,
                lang=lang,
                payload={"text": text, "choices": list(choices)},
                status=status,
                skip_reason="",
                attempts=0,
                next_attempt_at=moment,
                error="",
                created_at=moment,
                **extra,
            )
        ).scalar_one()
    return int(row_id)


def outbox_rows(engine: Engine, **where: Any) -> list[Any]:
    query = sa.select(outbox).order_by(outbox.c.id)
    for name, value in where.items():
        query = query.where(outbox.c[name] == value)
    with db.read(engine) as conn:
        return list(conn.execute(query).all())


def identity_row(engine: Engine, channel: str, address: str) -> Any:
    with db.read(engine) as conn:
        return conn.execute(
            sa.select(identity).where(identity.c.channel == channel, identity.c.address == address)
        ).first()


def citizen_row(engine: Engine, citizen_id: int) -> Any:
    with db.read(engine) as conn:
        return conn.execute(sa.select(citizen).where(citizen.c.id == citizen_id)).first()


def count(engine: Engine, table: sa.Table) -> int:
    with db.read(engine) as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
