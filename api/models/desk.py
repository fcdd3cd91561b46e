"""The tables of the consular desk: conversations with a person (menu 7)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from api.models.base import json_field, unique_where, utc_field


class DeskStatus(StrEnum):
    waiting = "waiting"  # the citizen wrote last: an agent has to answer
    open = "open"  # an agent answered or took it
    closed = "closed"


class DeskConversation(SQLModel, table=True):
    """A citizen's conversation with the desk of one post (the console's inbox). At most one
    is not closed per citizen."""

    __tablename__ = "desk_conversation"
    __table_args__ = (
        sa.Index("ix_desk_conversation_inbox", "post_id", "status", "waiting_since"),
        unique_where("uq_desk_conversation_live", "citizen_id", "status != 'closed'"),
    )
    id: int | None = Field(default=None, primary_key=True)
    citizen_id: int = Field(foreign_key="citizen.id", index=True)
    post_id: int = Field(foreign_key="post.id")
    channel: str = Field(max_length=16)  # where the citizen wrote from
    lang: str = Field(default="fr", max_length=8)
    status: str = Field(
        default="waiting", sa_column=sa.Column(sa.String(12), nullable=False, default="waiting")
    )
    assigned_to: int | None = Field(default=None, foreign_key="staff.id")
    created_at: datetime = utc_field()
    # the citizen's first message not answered yet (None once an agent answered)
    waiting_since: datetime | None = utc_field(nullable=True)
    first_response_at: datetime | None = utc_field(nullable=True)
    last_message_at: datetime = utc_field()
    closed_at: datetime | None = utc_field(nullable=True)
    # what the citizen last typed to the bot before asking for a person: [[step, text], …]
    tried: list[list[str]] | None = json_field(nullable=True)


class DeskMessage(SQLModel, table=True):
    """One message of a desk conversation: `in` from the citizen, `out` from an agent."""

    __tablename__ = "desk_message"
    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="desk_conversation.id", index=True)
    direction: str = Field(max_length=3)  # in | out
    kind: str = Field(default="text", max_length=16)  # text, photo, voice… (as flows.Kind)
    text: str = Field(default="", sa_column=sa.Column(sa.Text(), nullable=False, default=""))
    media: str = Field(default="", max_length=500)  # the provider's reference to a photo…
    staff_id: int | None = Field(default=None, foreign_key="staff.id")
    outbox_id: int | None = Field(default=None, foreign_key="outbox.id")
    at: datetime = utc_field()


class DeskAnswer(SQLModel, table=True):
    """A canned answer of the desk, in one language, maintained by staff."""

    __tablename__ = "desk_answer"
    id: int | None = Field(default=None, primary_key=True)
    lang: str = Field(max_length=8, index=True)
    title: str = Field(max_length=80)
    text: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    created_by: int | None = Field(default=None, foreign_key="staff.id")
    created_at: datetime = utc_field()
