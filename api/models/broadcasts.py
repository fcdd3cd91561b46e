"""The tables of broadcasts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from api.models.base import json_field, utc_field


class BroadcastStatus(StrEnum):
    draft = "draft"
    scheduled = "scheduled"
    sending = "sending"  # audience being written to the outbox / being sent
    sent = "sent"
    cancelled = "cancelled"


class Broadcast(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=200)
    texts: dict[str, str] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))  # lang → text
    segment: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))
    status: str = Field(
        default="draft", sa_column=sa.Column(sa.String(12), nullable=False, default="draft")
    )
    send_at: datetime | None = utc_field(nullable=True)
    created_by: int | None = Field(default=None, foreign_key="staff.id")
    created_at: datetime = utc_field()
    started_at: datetime | None = utc_field(nullable=True)
    finished_at: datetime | None = utc_field(nullable=True)
    # Where fan-out stands: the last citizen id written to the outbox (resumable after a crash)
    cursor: int = 0
    queued: int = 0
    skipped: dict[str, int] | None = json_field(nullable=True)  # reason → count
