"""Requests (dossiers): lodged at the desk, moved through their statuses, each change kept in
their history and told to the citizen."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field, field_validator
from sqlalchemy.engine import Connection

from api.db import read
from api.domain import request_desk as desk
from api.domain import search
from api.domain.citizens import normalise_phone
from api.domain.errors import NotVisible
from api.domain.requests import (
    RequestRecord,
    RequestService,
    clean_reference,
    record_query,
    to_record,
)
from api.domain.staff import StaffPrincipal
from api.domain.tables import table
from api.http.staff.deps import (
    CurrentStaff,
    DbDep,
    NowDep,
    Page,
    PageDep,
    get_post,
    paginate,
    perform,
    post_filter,
)
from api.http.staff.errors import ProblemError, ProblemRoute, responses
from api.http.staff.fields import NOT_A_PHONE, ONE_LINE, PostCode, ReferencePath, ServiceCode
from api.models import ConsularRequest, RequestStatus

router = APIRouter(tags=["requests"], route_class=ProblemRoute, responses=responses(401, 422))

request_table = table(ConsularRequest)


class RequestCreate(BaseModel):
    post: PostCode
    service: ServiceCode
    full_name: str = Field(min_length=1, max_length=120, pattern=ONE_LINE)
    birth_date: date = Field(description="Asked in the chat before the status is told")
    phone: str | None = Field(
        default=None,
        max_length=32,
        pattern=ONE_LINE,
        description="E.164 (+2250701000001). A citizen writing from this verified number "
        "learns the status without giving the birth date.",
        examples=["+2250701000001"],
    )

    @field_validator("birth_date")
    @classmethod
    def _plausible(cls, value: date) -> date:
        if not date(1900, 1, 1) <= value <= date.today():
            raise ValueError("a birth date between 1900 and today")
        return value

    @field_validator("phone")
    @classmethod
    def _e164(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        phone = normalise_phone(value)
        if phone is None:
            raise ValueError("not a phone number")
        return phone


class StatusChange(BaseModel):
    status: RequestStatus
    reason: str = Field(
        default="",
        max_length=300,
        pattern=ONE_LINE,
        description="Mandatory for `rejected`: told to the citizen.",
    )


class RequestPublic(BaseModel):
    reference: str
    post: str
    service: str
    status: RequestStatus
    reason: str
    full_name: str
    birth_date: date | None
    phone: str | None
    citizen_id: int | None
    created_at: datetime
    updated_at: datetime


class LookupGuardPublic(BaseModel):
    """Failed status lookups on the reference in the chat (wrong birth dates), the last day."""

    failures: int = Field(description="Failures from every sender together")
    senders: int = Field(description="How many different senders failed")
    locked_until: datetime | None = Field(
        description="Set when the failures reached the ceiling: nobody but the owner's "
        "verified phone can look the reference up until then"
    )


class RequestDetail(RequestPublic):
    lookups: LookupGuardPublic


class RequestEventPublic(BaseModel):
    status: RequestStatus
    note: str
    staff_id: int | None
    at: datetime


def to_public(record: RequestRecord) -> RequestPublic:
    return RequestPublic(
        reference=record.reference,
        post=record.post_code,
        service=record.service_code,
        status=record.status,
        reason=record.reason,
        full_name=record.full_name,
        birth_date=record.birth_date,
        phone=record.phone,
        citizen_id=record.citizen_id,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def get_visible(conn: Connection, staff: StaffPrincipal, reference: str) -> RequestRecord:
    try:
        return desk.visible(conn, staff, reference)
    except NotVisible:
        raise ProblemError(404, "no such request") from None


@router.post(
    "/requests",
    status_code=201,
    summary="Lodge a request and issue its reference (ABJ-2026-000123)",
    responses=responses(404),
)
def create_request(
    body: RequestCreate, staff: CurrentStaff, db: DbDep, now: NowDep
) -> RequestPublic:
    record = perform(
        db,
        staff,
        now,
        lambda tx: desk.lodge(
            tx, body.post, body.service, body.phone, body.full_name, body.birth_date
        ),
        unprocessable={"invalid"},
    )
    return to_public(record)


@router.get(
    "/requests",
    summary="List requests by post, status, reference or phone",
    responses=responses(404),
)
def list_requests(
    staff: CurrentStaff,
    db: DbDep,
    page: PageDep,
    post: Annotated[
        str | None, Query(max_length=8, pattern=ONE_LINE, description="Post code")
    ] = None,
    status: RequestStatus | None = None,
    reference: Annotated[str | None, Query(max_length=40, pattern=ONE_LINE)] = None,
    phone: Annotated[
        str | None,
        Query(
            max_length=32,
            pattern=ONE_LINE,
            description="The phone number on the request or its citizen's, international or "
            "local to the post (to each of the caller's posts when no post is given)",
        ),
    ] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=120,
            pattern=ONE_LINE,
            description="What the console's search box takes: a reference (abj 2026 123), a "
            "phone number, or a name, accents and case aside, in part",
        ),
    ] = None,
) -> Page[RequestPublic]:
    query = record_query().where(post_filter(staff, request_table.c.post_id))
    with read(db) as conn:
        chosen = get_post(conn, staff, post).id if post is not None else None
        if chosen is not None:
            query = query.where(request_table.c.post_id == chosen)
        if status is not None:
            query = query.where(request_table.c.status == status.value)
        if reference is not None:
            query = query.where(request_table.c.reference == clean_reference(reference))
        if phone is not None:
            terms = search.phone_terms(phone, search.countries_of(conn, staff, chosen))
            if terms is None:
                raise ProblemError(422, NOT_A_PHONE)
            query = query.where(search.request_matches(terms))
        if q is not None:
            terms = search.understand(q, search.countries_of(conn, staff))
            query = query.where(search.request_matches(terms))
        query = query.order_by(request_table.c.created_at.desc(), request_table.c.id.desc())
        rows, total = paginate(conn, query, page)
    return page.wrap([to_public(to_record(r)) for r in rows], total)


@router.get("/requests/{reference}", summary="One request", responses=responses(404))
def get_request(
    reference: ReferencePath, staff: CurrentStaff, db: DbDep, now: NowDep
) -> RequestDetail:
    with read(db) as conn:
        record = get_visible(conn, staff, reference)
        guard = RequestService(conn).guard(record.reference, now)
    return RequestDetail(
        **to_public(record).model_dump(),
        lookups=LookupGuardPublic(
            failures=guard.failures, senders=guard.senders, locked_until=guard.locked_until
        ),
    )


@router.post(
    "/requests/{reference}/status",
    summary="Move a request on (received → in_progress → ready → delivered, or rejected)",
    responses=responses(404, 409),
)
def change_status(
    reference: ReferencePath, body: StatusChange, staff: CurrentStaff, db: DbDep, now: NowDep
) -> RequestPublic:
    _, after = perform(
        db,
        staff,
        now,
        lambda tx: desk.move(tx, reference, body.status, body.reason),
        unprocessable={"reason_needed", "unknown_status"},
    )
    return to_public(after)


class Correction(BaseModel):
    reason: str = Field(min_length=1, max_length=300, pattern=ONE_LINE)


@router.post(
    "/requests/{reference}/step-back",
    summary="Correct a mistake: one step back (ready → in_progress → received), with a reason",
    description="The citizen is told only if they had been told the step it leaves.",
    responses=responses(404, 409),
)
def step_back(
    reference: ReferencePath, body: Correction, staff: CurrentStaff, db: DbDep, now: NowDep
) -> RequestPublic:
    _, after = perform(
        db,
        staff,
        now,
        lambda tx: desk.step_back(tx, reference, body.reason),
        unprocessable={"reason_needed"},
    )
    return to_public(after)


@router.get(
    "/requests/{reference}/history",
    summary="Every status a request went through, oldest first",
    responses=responses(404),
)
def history(reference: ReferencePath, staff: CurrentStaff, db: DbDep) -> list[RequestEventPublic]:
    with read(db) as conn:
        record = get_visible(conn, staff, reference)
        events = RequestService(conn).history(record.id)
    return [
        RequestEventPublic(status=e.status, note=e.note, staff_id=e.staff_id, at=e.at)
        for e in events
    ]
