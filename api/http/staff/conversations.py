"""Conversations with the desk (menu 7 of the chat): the inbox, one conversation with its
messages, a reply to the citizen (through the outbox, on their channel), assign, close.

The use cases are api.domain.desk_conversations'; these routes only translate: NotVisible →
404 (another post's conversation too), Refused → 409 (422 for an empty reply).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine

from api.db import read
from api.domain import desk_conversations as domain
from api.domain.desk_conversations import ConversationRecord, MessageRecord
from api.domain.errors import NotVisible
from api.domain.staff import StaffPrincipal
from api.http.staff.deps import (
    CurrentStaff,
    DbDep,
    NowDep,
    Page,
    PageDep,
    StaffWrite,
    get_post,
    paginate,
    perform,
)
from api.http.staff.errors import ProblemError, ProblemRoute, responses
from api.http.staff.fields import ONE_LINE, IdPath
from api.models import DeskStatus

router = APIRouter(tags=["conversations"], route_class=ProblemRoute, responses=responses(401, 422))


class ConversationPublic(BaseModel):
    id: int
    post: str
    citizen_id: int
    channel: str
    lang: str
    status: DeskStatus
    assigned_to: int | None = Field(description="The staff id of the agent who has it")
    created_at: datetime
    waiting_since: datetime | None = Field(
        description="The citizen's first message not answered yet"
    )
    first_response_at: datetime | None
    last_message_at: datetime
    closed_at: datetime | None


class MessagePublic(BaseModel):
    id: int
    direction: str = Field(description="`in` from the citizen, `out` from an agent")
    text: str
    at: datetime
    kind: str = Field(description="text, or what the bot could not read: photo, voice…")
    media: str = Field(description="The provider's reference to a photo or a voice note")
    staff_id: int | None
    delivery: str = Field(description="out: the outbox's status (pending, sent, delivered…)")
    skip_reason: str


class ConversationDetail(ConversationPublic):
    messages: list[MessagePublic]


class ReplyBody(BaseModel):
    text: str = Field(min_length=1, max_length=domain.TEXT_MAX)


def to_public(record: ConversationRecord) -> ConversationPublic:
    return ConversationPublic(
        id=record.id,
        post=record.post_code,
        citizen_id=record.citizen_id,
        channel=record.channel,
        lang=record.lang,
        status=record.status,
        assigned_to=record.assigned_to,
        created_at=record.created_at,
        waiting_since=record.waiting_since,
        first_response_at=record.first_response_at,
        last_message_at=record.last_message_at,
        closed_at=record.closed_at,
    )


def message_public(record: MessageRecord) -> MessagePublic:
    return MessagePublic(
        id=record.id,
        direction=record.direction,
        text=record.text,
        at=record.at,
        kind=record.kind,
        media=record.media,
        staff_id=record.staff_id,
        delivery=record.delivery,
        skip_reason=record.skip_reason,
    )


def detail(db: Engine, staff: StaffPrincipal, conversation_id: int) -> ConversationDetail:
    with read(db) as conn:
        try:
            record = domain.visible(conn, staff, conversation_id)
        except NotVisible:
            raise ProblemError(404, "no such conversation") from None
        messages = [message_public(m) for m in domain.messages(conn, conversation_id)]
    return ConversationDetail(**to_public(record).model_dump(), messages=messages)


@router.get(
    "/conversations", summary="The inbox: waiting first, oldest first", responses=responses(404)
)
def list_conversations(
    staff: CurrentStaff,
    db: DbDep,
    page: PageDep,
    post: Annotated[
        str | None, Query(max_length=8, pattern=ONE_LINE, description="Post code")
    ] = None,
    status: DeskStatus | None = None,
) -> Page[ConversationPublic]:
    with read(db) as conn:
        post_id = get_post(conn, staff, post).id if post is not None else None
        query = domain.inbox_query(staff, post_id=post_id, status=status)
        rows, total = paginate(conn, query, page)
    return page.wrap([to_public(domain.to_record(r)) for r in rows], total)


@router.get(
    "/conversations/{conversation_id}",
    summary="One conversation with its messages in order",
    responses=responses(404),
)
def get_conversation(conversation_id: IdPath, staff: CurrentStaff, db: DbDep) -> ConversationDetail:
    return detail(db, staff, conversation_id)


@router.post(
    "/conversations/{conversation_id}/messages",
    summary="Send a message to the citizen, on their channel",
    responses=responses(404, 409),
    status_code=201,
)
def send_message(
    conversation_id: IdPath,
    body: ReplyBody,
    staff: CurrentStaff,
    db: DbDep,
    now: NowDep,
    request: Request,
) -> MessagePublic:
    templates = request.app.state.settings.whatsapp_templates
    _, sent = perform(
        db,
        staff,
        now,
        lambda tx: domain.reply(tx, conversation_id, body.text, templates),
        unprocessable={"empty"},
    )
    return message_public(sent)


def _change(
    db: Engine,
    staff: StaffPrincipal,
    now: datetime,
    conversation_id: int,
    use_case: Callable[[StaffWrite, int], ConversationRecord],
) -> ConversationPublic:
    return to_public(perform(db, staff, now, lambda tx: use_case(tx, conversation_id)))


@router.post(
    "/conversations/{conversation_id}/assign",
    summary="Take the conversation",
    responses=responses(404, 409),
)
def assign(
    conversation_id: IdPath, staff: CurrentStaff, db: DbDep, now: NowDep
) -> ConversationPublic:
    return _change(db, staff, now, conversation_id, domain.assign)


@router.post(
    "/conversations/{conversation_id}/close",
    summary="Close it: the citizen is told and is back with the bot",
    responses=responses(404, 409),
)
def close(
    conversation_id: IdPath, staff: CurrentStaff, db: DbDep, now: NowDep
) -> ConversationPublic:
    return _change(db, staff, now, conversation_id, domain.close)
