"""Citizens: find one by phone (with their appointments and requests), export everything held
about one, erase one.

A citizen belongs to the posts where they have booked or have a request; one with neither
belongs to the posts of their phone number's country. An agent finds the citizens of their
posts only, and sees only their posts' appointments and requests; export and erasure are for
administrators.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy.engine import Connection, Row

from api.db import read
from api.domain import appointment_desk as appointment_domain
from api.domain import membership, privacy
from api.domain.citizens import normalise_phone
from api.domain.requests import RequestService, record_query, to_record
from api.domain.staff import StaffPrincipal
from api.domain.tables import table
from api.http.staff import appointments as appointment_routes
from api.http.staff import conversations as conversation_routes
from api.http.staff import requests as request_routes
from api.http.staff.deps import (
    CurrentAdmin,
    CurrentStaff,
    DbDep,
    NowDep,
    Page,
    PageDep,
    paginate,
    post_filter,
    staff_write,
)
from api.http.staff.errors import ProblemError, ProblemRoute, responses
from api.http.staff.fields import ONE_LINE, IdPath
from api.models import Appointment, ChannelIdentity, Citizen, ConsularRequest, Service

router = APIRouter(tags=["citizens"], route_class=ProblemRoute, responses=responses(401, 422))

citizen_table = table(Citizen)
identity_table = table(ChannelIdentity)
appointment_table = table(Appointment)
request_table = table(ConsularRequest)
service_table = table(Service)


class AppointmentSummary(BaseModel):
    id: int
    reference: str
    post: str
    service: str
    status: str
    starts_at: datetime


class RequestSummary(BaseModel):
    reference: str
    post: str
    service: str
    status: str
    updated_at: datetime


class CitizenBase(BaseModel):
    id: int
    phone: str | None
    phone_verified: bool
    country: str | None
    lang: str | None
    opted_out: bool = Field(description="Announcements stopped (STOP)")
    voice: bool | None = Field(
        default=None, description="Voice prompts on or off (VOIX); null until a first voice note"
    )
    created_at: datetime
    erased_at: datetime | None


class CitizenPublic(CitizenBase):
    channels: list[str] = Field(description="Where they write from: whatsapp, telegram…")
    appointments: list[AppointmentSummary]
    requests: list[RequestSummary]


class IdentityExport(BaseModel):
    channel: str
    address: str
    last_inbound_at: datetime | None
    unreachable_at: datetime | None
    state: dict[str, Any] | None = Field(description="The conversation held on this channel")
    state_updated_at: datetime | None


class MessageExport(BaseModel):
    id: int
    kind: str
    channel: str
    address: str
    lang: str
    payload: dict[str, Any]
    status: str
    skip_reason: str
    attempts: int
    error: str
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None


class RequestExport(request_routes.RequestPublic):
    history: list[request_routes.RequestEventPublic]


class CitizenExport(BaseModel):
    exported_at: datetime
    citizen: CitizenBase
    identities: list[IdentityExport]
    appointments: list[appointment_routes.AppointmentPublic]
    requests: list[RequestExport]
    messages: list[MessageExport]
    desk_conversations: list[conversation_routes.ConversationDetail] = Field(
        description="Conversations with the desk (menu 7), with their messages"
    )


class ErasurePublic(BaseModel):
    citizen_id: int
    erased_at: datetime
    appointments_cancelled: int
    appointments_anonymised: int
    requests_anonymised: int
    identities_deleted: int
    messages_cancelled: int
    messages_scrubbed: int
    desk_messages_deleted: int


# --- who belongs where ----------------------------------------------------------------------------


def citizen_filter(staff: StaffPrincipal) -> sa.ColumnElement[bool]:
    """The citizens an agent may see: those who belong to one of their posts."""
    if staff.is_admin:
        return sa.true()
    return membership.belongs_to(citizen_table, sorted(staff.post_ids))


def _visible(conn: Connection, staff: StaffPrincipal, citizen_id: int) -> Row[Any]:
    row = conn.execute(
        sa.select(citizen_table).where(citizen_table.c.id == citizen_id, citizen_filter(staff))
    ).first()
    if row is None:
        raise ProblemError(404, "no such citizen")
    return row


def _base(row: Row[Any]) -> CitizenBase:
    return CitizenBase.model_validate(row, from_attributes=True)


def _public(conn: Connection, staff: StaffPrincipal, rows: list[Row[Any]]) -> list[CitizenPublic]:
    """Citizens with their channels, appointments and requests (of the caller's posts)."""
    ids = [r.id for r in rows]
    channels: dict[int, list[str]] = {i: [] for i in ids}
    appointments: dict[int, list[AppointmentSummary]] = {i: [] for i in ids}
    requests: dict[int, list[RequestSummary]] = {i: [] for i in ids}
    if not ids:
        return []
    for identity in conn.execute(
        sa.select(identity_table.c.citizen_id, identity_table.c.channel)
        .where(identity_table.c.citizen_id.in_(ids))
        .order_by(identity_table.c.id)
    ):
        if identity.channel not in channels[identity.citizen_id]:
            channels[identity.citizen_id].append(identity.channel)
    for a in conn.execute(
        appointment_domain.appointments_query()
        .where(
            appointment_table.c.citizen_id.in_(ids),
            post_filter(staff, appointment_table.c.post_id),
        )
        .order_by(appointment_table.c.starts_at, appointment_table.c.id)
    ):
        appointments[a.citizen_id].append(
            AppointmentSummary(
                id=a.id,
                reference=a.reference,
                post=a.post_code,
                service=a.service_code,
                status=a.status,
                starts_at=a.starts_at,
            )
        )
    for row in conn.execute(
        record_query()
        .where(request_table.c.citizen_id.in_(ids), post_filter(staff, request_table.c.post_id))
        .order_by(request_table.c.created_at, request_table.c.id)
    ):
        requests[row.citizen_id].append(
            RequestSummary(
                reference=row.reference,
                post=row.post_code,
                service=row.service_code,
                status=row.status,
                updated_at=row.updated_at,
            )
        )
    return [
        CitizenPublic(
            **_base(r).model_dump(),
            channels=channels[r.id],
            appointments=appointments[r.id],
            requests=requests[r.id],
        )
        for r in rows
    ]


# --- routes -------------------------------------------------------------------------------------


@router.get(
    "/citizens",
    summary="Find citizens by phone (verified numbers first), with appointments and requests",
)
def list_citizens(
    staff: CurrentStaff,
    db: DbDep,
    page: PageDep,
    phone: Annotated[
        str | None,
        Query(
            max_length=32,
            pattern=ONE_LINE,
            description="Any usual form: +2250701000001, 00225 07 01…",
        ),
    ] = None,
) -> Page[CitizenPublic]:
    query = sa.select(citizen_table).where(citizen_filter(staff))
    if phone is not None:
        query = query.where(citizen_table.c.phone == (normalise_phone(phone) or ""))
    query = query.order_by(citizen_table.c.phone_verified.desc(), citizen_table.c.id)
    with read(db) as conn:
        rows, total = paginate(conn, query, page)
        items = _public(conn, staff, rows)
    return page.wrap(items, total)


@router.get("/citizens/{citizen_id}", summary="One citizen", responses=responses(404))
def get_citizen(citizen_id: IdPath, staff: CurrentStaff, db: DbDep) -> CitizenPublic:
    with read(db) as conn:
        return _public(conn, staff, [_visible(conn, staff, citizen_id)])[0]


@router.get(
    "/citizens/{citizen_id}/export",
    summary="Everything held about one citizen, as JSON (administrators)",
    responses=responses(403, 404),
)
def export(citizen_id: IdPath, staff: CurrentAdmin, db: DbDep, now: NowDep) -> CitizenExport:
    with read(db) as conn:
        held = privacy.export_rows(conn, citizen_id)
        if held is None:
            raise ProblemError(404, "no such citizen")
        appointments = [
            appointment_routes.to_public(appointment_domain.to_record(r))
            for r in conn.execute(
                appointment_domain.appointments_query()
                .where(appointment_table.c.citizen_id == citizen_id)
                .order_by(appointment_table.c.starts_at, appointment_table.c.id)
            )
        ]
        service = RequestService(conn)
        requests = []
        for row in conn.execute(
            record_query()
            .where(privacy.requests_of(citizen_id))
            .order_by(request_table.c.created_at, request_table.c.id)
        ):
            record = to_record(row)
            requests.append(
                RequestExport(
                    **request_routes.to_public(record).model_dump(),
                    history=[
                        request_routes.RequestEventPublic(
                            status=e.status, note=e.note, staff_id=e.staff_id, at=e.at
                        )
                        for e in service.history(record.id)
                    ],
                )
            )
    return CitizenExport(
        exported_at=now,
        citizen=CitizenBase.model_validate(held["citizen"][0]),
        identities=[IdentityExport.model_validate(i) for i in held["identities"]],
        appointments=appointments,
        requests=requests,
        messages=[MessageExport.model_validate(m) for m in held["outbox"]],
        desk_conversations=[
            conversation_routes.detail(db, staff, row["id"]) for row in held["desk_conversations"]
        ],
    )


@router.delete(
    "/citizens/{citizen_id}",
    summary="Erase a citizen: personal data removed, statistics kept (administrators)",
    responses=responses(403, 404, 409),
)
def erase(citizen_id: IdPath, staff: CurrentAdmin, db: DbDep, now: NowDep) -> ErasurePublic:
    with staff_write(db, staff, now) as tx:
        exists = tx.conn.execute(
            sa.select(citizen_table.c.erased_at).where(citizen_table.c.id == citizen_id)
        ).first()
        if exists is None:
            raise ProblemError(404, "no such citizen")
        done = privacy.erase(tx.conn, citizen_id, now)
        if done is None:
            raise ProblemError(409, "this citizen was erased already")
        tx.audit("erase", "citizen", citizen_id, None, done.as_dict())
    return ErasurePublic(citizen_id=citizen_id, erased_at=now, **done.as_dict())
