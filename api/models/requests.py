"""The tables of consular requests (dossiers)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from api.models.base import utc_field


class RequestStatus(StrEnum):
    received = "received"
    in_progress = "in_progress"
    ready = "ready"  # for pick-up
    delivered = "delivered"
    rejected = "rejected"


class ConsularRequest(SQLModel, table=True):
    """A file a citizen lodged at a post; staff issue its reference (ABJ-2026-000123)."""

    __tablename__ = "consular_request"
    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(max_length=20, unique=True)
    post_id: int = Field(foreign_key="post.id", index=True)
    service_id: int = Field(foreign_key="service.id")
    citizen_id: int | None = Field(default=None, foreign_key="citizen.id", index=True)
    phone: str | None = Field(default=None, max_length=20, index=True)  # E.164
    full_name: str = Field(max_length=120)
    name_key: str = Field(default="", max_length=120, index=True)  # flows.world.person_key
    birth_date: date | None = None
    status: RequestStatus = Field(
        default=RequestStatus.received,
        sa_column=sa.Column(sa.String(16), nullable=False, default="received", index=True),
    )
    reason: str = Field(default="", max_length=300)  # why rejected
    created_at: datetime = utc_field()
    updated_at: datetime = utc_field()


class RequestSequence(SQLModel, table=True):
    """The last serial issued per post and year: ABJ-2026-000123 comes from (ABJ, 2026) = 123."""

    __tablename__ = "request_sequence"
    post_id: int = Field(foreign_key="post.id", primary_key=True)
    year: int = Field(primary_key=True)
    last: int = 0


class RequestEvent(SQLModel, table=True):
    """The history of a request: each status it went through, who moved it, and why."""

    __tablename__ = "request_event"
    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="consular_request.id", index=True)
    status: str = Field(max_length=16)
    note: str = Field(default="", max_length=300)
    staff_id: int | None = Field(default=None, foreign_key="staff.id")
    at: datetime = utc_field()


class LookupGuard(SQLModel, table=True):
    """Wrong answers to a status lookup, per reference and sender (`c<citizen id>`): three in
    a row lock that sender out for 15 minutes. The row of sender `*` counts every sender's
    failures: its ceiling locks the reference for all but its verified owner."""

    __tablename__ = "lookup_guard"
    reference: str = Field(max_length=20, primary_key=True)
    sender: str = Field(max_length=24, primary_key=True)
    failures: int = 0
    locked_until: datetime | None = utc_field(nullable=True)
    updated_at: datetime = utc_field()
