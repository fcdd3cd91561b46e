"""The tables of the outbox: every message the bot sends on its own initiative."""

from __future__ import annotations

from datetime import datetime
from enum import Enum, StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from api.models.base import utc_field


class Lane(int, Enum):
    """Priority: replies and notifications before bulk announcements."""

    reply = 0
    notification = 1
    bulk = 2


class OutboxStatus(StrEnum):
    pending = "pending"
    sending = "sending"  # claimed by a worker
    sent = "sent"  # accepted by the provider
    delivered = "delivered"
    read = "read"
    failed = "failed"  # permanently
    skipped = "skipped"  # not sendable: opted out, unreachable, outside the 24-hour window…
    cancelled = "cancelled"


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (
        sa.Index("ix_outbox_due", "status", "lane", "next_attempt_at"),
        sa.UniqueConstraint("dedupe_key"),
    )
    id: int | None = Field(default=None, primary_key=True)
    lane: int = 0
    kind: str = Field(max_length=24)  # reply, notification, reminder, broadcast
    channel: str = Field(max_length=16)
    address: str = Field(max_length=64)
    citizen_id: int | None = Field(default=None, foreign_key="citizen.id", index=True)
    lang: str = Field(default="fr", max_length=8)
    payload: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))
    dedupe_key: str | None = Field(default=None, max_length=120)  # exactly once per purpose
    broadcast_id: int | None = Field(default=None, foreign_key="broadcast.id", index=True)
    status: str = Field(
        default="pending", sa_column=sa.Column(sa.String(12), nullable=False, default="pending")
    )
    skip_reason: str = Field(default="", max_length=40)
    attempts: int = 0
    next_attempt_at: datetime = utc_field()
    claimed_by: str | None = Field(default=None, max_length=64)
    claimed_at: datetime | None = utc_field(nullable=True)
    # Set when a send may have reached the provider without its answer being recorded (the
    # worker's lease expired, or the call broke after the request went out): the start of
    # the claim it happened in. The next claim asks the provider before sending again.
    in_doubt_since: datetime | None = utc_field(nullable=True)
    provider_message_id: str | None = Field(default=None, max_length=64, index=True)
    error: str = Field(default="", max_length=300)
    created_at: datetime = utc_field()
    sent_at: datetime | None = utc_field(nullable=True)
    delivered_at: datetime | None = utc_field(nullable=True)
    read_at: datetime | None = utc_field(nullable=True)
