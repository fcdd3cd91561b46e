"""The tables of citizens and their channels."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from api.models.base import json_field, unique_where, utc_field


class Citizen(SQLModel, table=True):
    """A person writing to the bot. A phone number vouched for by a provider (WhatsApp, a
    shared Telegram contact) is verified and belongs to one citizen only; a number typed
    into the simulator is not, and is never merged with anyone."""

    __table_args__ = (unique_where("uq_citizen_verified_phone", "phone", "phone_verified"),)
    id: int | None = Field(default=None, primary_key=True)
    phone: str | None = Field(default=None, max_length=20, index=True)  # E.164
    phone_verified: bool = False
    country: str | None = Field(default=None, max_length=2, index=True)  # from the phone number
    lang: str | None = Field(default=None, max_length=8)
    opted_out: bool = False  # announcements only; own reminders continue
    # voice prompts with the bot's messages: None until the first voice note turns them on,
    # then what the citizen chose (the language menu's last option, or the keyword VOIX)
    voice: bool | None = None
    created_at: datetime = utc_field()
    erased_at: datetime | None = utc_field(nullable=True)


class ChannelIdentity(SQLModel, table=True):
    """One address on one channel (whatsapp:+225…, telegram chat id, simulator user), with the
    conversation held there. The conversation lives on this row so that one turn reads and
    writes a single row."""

    __tablename__ = "channel_identity"
    __table_args__ = (sa.UniqueConstraint("channel", "address"),)
    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    address: str = Field(max_length=64)
    citizen_id: int = Field(foreign_key="citizen.id", index=True)
    last_inbound_at: datetime | None = utc_field(nullable=True)
    unreachable_at: datetime | None = utc_field(nullable=True)
    state: dict[str, Any] | None = json_field(nullable=True)
    state_updated_at: datetime | None = utc_field(nullable=True)
    # This sender's messages since `burst_started_at` (bot.runtime's flood rule).
    burst_started_at: datetime | None = utc_field(nullable=True)
    burst_count: int = 0


class InboundMessage(SQLModel, table=True):
    """Provider message ids already processed: the dedupe set (purged after 48 hours)."""

    __tablename__ = "inbound_message"
    channel: str = Field(max_length=16, primary_key=True)
    provider_id: str = Field(max_length=64, primary_key=True)
    received_at: datetime = utc_field(index=True)


class ConversationStart(SQLModel, table=True):
    """One row per conversation (a first message, or the first after 30 minutes of silence):
    the dashboard's conversations per day, channel and language. No address, no text."""

    __tablename__ = "conversation_start"
    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    lang: str = Field(default="fr", max_length=8)
    citizen_id: int = Field(index=True)
    started_at: datetime = utc_field(index=True)
