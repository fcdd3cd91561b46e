"""An appointment's record: its reference, its row written, and its row read as the flows'
`AppointmentInfo` (api.domain.booking books, cancels and reschedules with them)."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from api.domain.schedule import POST_COLUMNS, Offer, post_info
from api.domain.tables import table
from api.models import Appointment, AppointmentStatus, Post, Service
from flows.world import AppointmentInfo, person_key

REFERENCE_PREFIX = "RDV-"
REFERENCE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
REFERENCE_LENGTH = 6
REFERENCE_ATTEMPTS = 8  # 32**6 ≈ 10**9 references: a second collision in a row is already rare

_post = table(Post)
_service = table(Service)
_appt = table(Appointment)


def new_reference() -> str:
    """`RDV-` and six random Crockford base32 characters, easy to read out on a phone."""
    return REFERENCE_PREFIX + "".join(
        secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH)
    )


def insert_appointment(
    conn: Connection,
    citizen_id: int,
    offer: Offer,
    slot_id: int,
    starts_at: datetime,
    full_name: str,
    now: datetime,
) -> tuple[int, str]:
    """Insert the appointment with a fresh reference; a reference that is already taken
    is retried inside a SAVEPOINT, so the seat taken before is kept."""
    for _ in range(REFERENCE_ATTEMPTS):
        reference = new_reference()
        try:
            with conn.begin_nested():
                appointment_id = conn.execute(
                    sa.insert(_appt)
                    .values(
                        reference=reference,
                        citizen_id=citizen_id,
                        post_id=offer.post_id,
                        service_id=offer.service_id,
                        slot_id=slot_id,
                        starts_at=starts_at,
                        full_name=full_name,
                        name_key=person_key(full_name),
                        status=AppointmentStatus.booked.value,
                        cancel_reason="",
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(_appt.c.id)
                ).scalar_one()
        except IntegrityError as exc:
            if "reference" not in str(exc.orig):
                raise
            continue
        return int(appointment_id), reference
    raise RuntimeError(f"no free appointment reference after {REFERENCE_ATTEMPTS} attempts")


def appointment_query(*extra: sa.ColumnElement[Any]) -> sa.Select[Any]:
    """Appointments with their post and service code, as `appointment_info` reads them."""
    return sa.select(
        _appt.c.id.label("appointment_id"),
        _appt.c.reference,
        _appt.c.starts_at,
        _appt.c.full_name,
        _appt.c.status,
        _service.c.code.label("service_code"),
        *POST_COLUMNS,
        *extra,
    ).select_from(
        _appt.join(_post, _post.c.id == _appt.c.post_id).join(
            _service, _service.c.id == _appt.c.service_id
        )
    )


def appointment_info(row: Row[Any]) -> AppointmentInfo:
    post = post_info(row)
    return AppointmentInfo(
        id=row.appointment_id,
        reference=row.reference,
        post=post,
        service_code=row.service_code,
        starts_at=row.starts_at,
        local=row.starts_at.astimezone(ZoneInfo(post.timezone)),
        full_name=row.full_name,
        status=row.status,
    )
