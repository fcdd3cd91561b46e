"""The consular desk: a citizen's conversation with a person at their post (menu 7).

Two sides, one set of tables (`desk_conversation`, `desk_message`):

- the chat (flows.desk through api.world.SqlWorld, inside the turn's transaction): which posts
  would answer (`desk_post_codes`), the conversation still open (`live`), a new one
  (`open_conversation`), a message for the agent — text, or a photo or voice note the bot
  cannot read (`citizen_wrote`);
- the desk (the staff API and the console, each a `staff_write`): the inbox (`inbox_query`,
  waiting first, oldest first), one conversation (`visible`, `messages`), `reply`, `assign`,
  `close`. An agent sees their posts' conversations only (`post_filter`); another post's
  is NotVisible.

Status: `waiting` — nobody took it yet; `open` — an agent answered or took it; `closed`. While
the citizen waits for an answer, `waiting_since` holds their first unanswered message.

Delivery. A reply goes out through the outbox (notification lane, before bulk) on the channel
the citizen last wrote from, in their language. On WhatsApp, more than 24 hours after their
last message only an approved template may go (`TWILIO_TEMPLATES`, theirs or French): without
one the reply is refused (`outside_window`) and not kept, so the agent knows it was not sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from api.domain import outbox
from api.domain.audit import StaffWrite
from api.domain.errors import NotVisible, Refused, hidden
from api.domain.staff import StaffPrincipal, post_filter
from api.domain.tables import table
from api.models import (
    Appointment,
    ChannelIdentity,
    ConsularRequest,
    DeskAnswer,
    DeskConversation,
    DeskMessage,
    DeskStatus,
    OutboxMessage,
    Post,
)
from bot.channels.whatsapp import TEMPLATE_FALLBACK, WINDOW
from flows.messages import msg, raw

conversation_table = table(DeskConversation)
message_table = table(DeskMessage)
post_table = table(Post)
appointment_table = table(Appointment)
request_table = table(ConsularRequest)
identity_table = table(ChannelIdentity)
outbox_table = table(OutboxMessage)
answer_table = table(DeskAnswer)

LANGUAGES = ("fr", "mos", "dyu", "ff", "en")
TITLE_MAX = 80
TEXT_MAX = 1500  # an agent's reply, within WhatsApp's 1,600 with the post's name before it
WAITING, OPEN, CLOSED = DeskStatus.waiting.value, DeskStatus.open.value, DeskStatus.closed.value


# -- the chat side (inside a turn) ---------------------------------------------------------------


def desk_post_codes(conn: Connection, citizen_id: int) -> list[str]:
    """The posts where the citizen booked or has a request linked to them."""
    ids = sa.union(
        sa.select(appointment_table.c.post_id).where(appointment_table.c.citizen_id == citizen_id),
        sa.select(request_table.c.post_id).where(request_table.c.citizen_id == citizen_id),
    ).subquery()
    return list(
        conn.execute(
            sa.select(post_table.c.code).where(post_table.c.id.in_(sa.select(ids.c.post_id)))
        ).scalars()
    )


def _with_post() -> sa.Select[Any]:
    return sa.select(
        conversation_table,
        post_table.c.code.label("post_code"),
        post_table.c.name.label("post_name"),
    ).join(post_table, post_table.c.id == conversation_table.c.post_id)


def live(conn: Connection, citizen_id: int) -> Row[Any] | None:
    """The citizen's conversation that is not closed (at most one), with its post's code."""
    return conn.execute(
        _with_post().where(
            conversation_table.c.citizen_id == citizen_id, conversation_table.c.status != CLOSED
        )
    ).first()


def open_conversation(
    conn: Connection,
    citizen_id: int,
    channel: str,
    post_code: str,
    lang: str,
    now: datetime,
    tried: tuple[tuple[str, str], ...] = (),
) -> Row[Any]:
    """A new conversation at that post, waiting for an agent (or the one still open), with
    what the citizen last typed to the bot (`tried`: step, text)."""
    current = live(conn, citizen_id)
    if current is not None:
        return current
    post_id = conn.execute(sa.select(post_table.c.id).where(post_table.c.code == post_code))
    conn.execute(
        sa.insert(conversation_table).values(
            citizen_id=citizen_id,
            post_id=post_id.scalar_one(),
            channel=channel,
            lang=lang,
            status=WAITING,
            created_at=now,
            waiting_since=now,
            last_message_at=now,
            tried=[list(pair) for pair in tried],
        )
    )
    opened = live(conn, citizen_id)
    assert opened is not None
    return opened


def citizen_wrote(
    conn: Connection,
    citizen_id: int,
    channel: str,
    text: str,
    kind: str,
    media: str,
    now: datetime,
) -> Row[Any] | None:
    """Keep the citizen's message for the agent; None when no conversation is open."""
    current = live(conn, citizen_id)
    if current is None:
        return None
    conn.execute(
        sa.insert(message_table).values(
            conversation_id=current.id,
            direction="in",
            kind=kind,
            text=text,
            media=media[:500],
            at=now,
        )
    )
    conn.execute(
        sa.update(conversation_table)
        .where(conversation_table.c.id == current.id)
        .values(
            channel=channel,
            last_message_at=now,
            waiting_since=sa.func.coalesce(conversation_table.c.waiting_since, now),
        )
    )
    return current


# -- the desk side -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConversationRecord:
    id: int
    post_code: str
    post_name: str
    citizen_id: int
    channel: str
    lang: str
    status: DeskStatus
    assigned_to: int | None
    created_at: datetime
    waiting_since: datetime | None
    first_response_at: datetime | None
    last_message_at: datetime
    closed_at: datetime | None
    tried: tuple[tuple[str, str], ...] = ()  # what the citizen last typed to the bot


@dataclass(frozen=True)
class MessageRecord:
    id: int
    direction: str  # in | out
    kind: str
    text: str
    media: str
    at: datetime
    staff_id: int | None
    delivery: str  # out: the outbox's status (pending, sent, delivered, read, failed, skipped)
    skip_reason: str


def to_record(row: Row[Any]) -> ConversationRecord:
    return ConversationRecord(
        id=row.id,
        post_code=row.post_code,
        post_name=row.post_name,
        citizen_id=row.citizen_id,
        channel=row.channel,
        lang=row.lang,
        status=DeskStatus(row.status),
        assigned_to=row.assigned_to,
        created_at=row.created_at,
        waiting_since=row.waiting_since,
        first_response_at=row.first_response_at,
        last_message_at=row.last_message_at,
        closed_at=row.closed_at,
        tried=tuple((str(w), str(t)) for w, t in row.tried or ()),
    )


def snapshot(record: ConversationRecord) -> dict[str, Any]:
    """What the audit log keeps: the conversation, never what was said."""
    return {
        "post": record.post_code,
        "status": record.status.value,
        "assigned_to": record.assigned_to,
    }


def inbox_query(
    staff: StaffPrincipal, *, post_id: int | None = None, status: DeskStatus | None = None
) -> sa.Select[Any]:
    """The caller's conversations: waiting first, then open, then closed; oldest first."""
    query = _with_post().where(post_filter(staff, conversation_table.c.post_id))
    if post_id is not None:
        query = query.where(conversation_table.c.post_id == post_id)
    if status is not None:
        query = query.where(conversation_table.c.status == status.value)
    rank = sa.case(
        (conversation_table.c.status == WAITING, 0),
        (conversation_table.c.status == OPEN, 1),
        else_=2,
    )
    since = sa.func.coalesce(
        conversation_table.c.waiting_since, conversation_table.c.last_message_at
    )
    return query.order_by(rank, since, conversation_table.c.id)


def visible(conn: Connection, staff: StaffPrincipal, conversation_id: int) -> ConversationRecord:
    row = conn.execute(
        _with_post().where(
            conversation_table.c.id == conversation_id,
            post_filter(staff, conversation_table.c.post_id),
        )
    ).first()
    if row is None:
        exists = sa.select(conversation_table.c.id).where(
            conversation_table.c.id == conversation_id
        )
        raise hidden("conversation", exists=conn.execute(exists).first() is not None)
    return to_record(row)


def messages(conn: Connection, conversation_id: int, after: int = 0) -> list[MessageRecord]:
    """Its messages in order (those after the message id `after`, for the inbox's polling)."""
    rows = conn.execute(
        sa.select(
            message_table,
            outbox_table.c.status.label("delivery"),
            outbox_table.c.skip_reason,
        )
        .outerjoin(outbox_table, outbox_table.c.id == message_table.c.outbox_id)
        .where(message_table.c.conversation_id == conversation_id, message_table.c.id > after)
        .order_by(message_table.c.at, message_table.c.id)
    ).all()
    return [
        MessageRecord(
            id=r.id,
            direction=r.direction,
            kind=r.kind,
            text=r.text,
            media=r.media,
            at=r.at,
            staff_id=r.staff_id,
            delivery=r.delivery or "",
            skip_reason=r.skip_reason or "",
        )
        for r in rows
    ]


def _update(tx: StaffWrite, conversation_id: int, **values: Any) -> None:
    tx.conn.execute(
        sa.update(conversation_table)
        .where(conversation_table.c.id == conversation_id)
        .values(**values)
    )


def _deliverable(
    conn: Connection, citizen_id: int, now: datetime, templates: Mapping[str, str]
) -> None:
    """Refused when the reply could not reach the citizen: no channel that can push, or
    WhatsApp outside the 24-hour window without an approved template."""
    target = outbox.reachable_channel(conn, citizen_id)
    if target is None:
        raise Refused(
            "unreachable", "the citizen cannot be reached (no WhatsApp or Telegram channel)"
        )
    if target.channel != "whatsapp":
        return
    last = target.last_inbound_at
    lang = target.lang or outbox.DEFAULT_LANGUAGE
    if (last is None or now - last >= WINDOW) and not (
        templates.get(lang) or templates.get(TEMPLATE_FALLBACK)
    ):
        raise Refused(
            "outside_window",
            "WhatsApp: the citizen last wrote more than 24 hours ago and no approved template "
            f"is set for {lang} or {TEMPLATE_FALLBACK} (TWILIO_TEMPLATES): not sent",
        )


def reply(
    tx: StaffWrite, conversation_id: int, text: str, templates: Mapping[str, str]
) -> tuple[ConversationRecord, MessageRecord]:
    """Send `text` to the citizen, on their channel, in the conversation; (after, message).
    Refused `empty`, `closed`, `unreachable` or `outside_window` (nothing is sent nor kept)."""
    text = text.strip()[:TEXT_MAX]
    before = visible(tx.conn, tx.staff, conversation_id)
    if not text:
        raise Refused("empty", "the reply is empty")
    if before.status is DeskStatus.closed:
        raise Refused("closed", "the conversation is closed")
    _deliverable(tx.conn, before.citizen_id, tx.now, templates)
    inserted = tx.conn.execute(
        sa.insert(message_table)
        .values(
            conversation_id=conversation_id,
            direction="out",
            kind="text",
            text=text,
            media="",
            staff_id=tx.staff.id,
            at=tx.now,
        )
        .returning(message_table.c.id)
    ).scalar_one()
    key = f"desk:{conversation_id}:{inserted}"
    notice = msg("desk.reply", post=raw(before.post_name), text=raw(text))
    outbox.notify(tx.conn, before.citizen_id, notice, kind="desk", dedupe_key=key, now=tx.now)
    outbox_id = tx.conn.execute(
        sa.select(outbox_table.c.id).where(outbox_table.c.dedupe_key == key)
    ).scalar()
    tx.conn.execute(
        sa.update(message_table).where(message_table.c.id == inserted).values(outbox_id=outbox_id)
    )
    _update(
        tx,
        conversation_id,
        status=OPEN,
        waiting_since=None,
        last_message_at=tx.now,
        first_response_at=sa.func.coalesce(conversation_table.c.first_response_at, tx.now),
        assigned_to=sa.func.coalesce(conversation_table.c.assigned_to, tx.staff.id),
    )
    _move_chats(tx.conn, before.citizen_id, to_desk=True)
    after = visible(tx.conn, tx.staff, conversation_id)
    tx.audit("reply", "desk_conversation", conversation_id, snapshot(before), snapshot(after))
    sent = [m for m in messages(tx.conn, conversation_id, inserted - 1) if m.id == inserted]
    return after, sent[0]


def assign(tx: StaffWrite, conversation_id: int) -> ConversationRecord:
    """The caller takes the conversation. Refused `closed`."""
    before = visible(tx.conn, tx.staff, conversation_id)
    if before.status is DeskStatus.closed:
        raise Refused("closed", "the conversation is closed")
    _update(tx, conversation_id, assigned_to=tx.staff.id, status=OPEN)
    after = visible(tx.conn, tx.staff, conversation_id)
    tx.audit("assign", "desk_conversation", conversation_id, snapshot(before), snapshot(after))
    return after


def close(tx: StaffWrite, conversation_id: int) -> ConversationRecord:
    """Close it: the citizen is told in their language and is back with the bot (their chat
    leaves the desk at once). Refused `closed`."""
    before = visible(tx.conn, tx.staff, conversation_id)
    if before.status is DeskStatus.closed:
        raise Refused("closed", "the conversation is closed already")
    _update(tx, conversation_id, status=CLOSED, closed_at=tx.now, waiting_since=None)
    outbox.notify(
        tx.conn,
        before.citizen_id,
        msg("desk.closed"),
        kind="desk",
        dedupe_key=f"desk:{conversation_id}:closed",
        now=tx.now,
    )
    _move_chats(tx.conn, before.citizen_id, to_desk=False)
    after = visible(tx.conn, tx.staff, conversation_id)
    tx.audit("close", "desk_conversation", conversation_id, snapshot(before), snapshot(after))
    return after


def _move_chats(conn: Connection, citizen_id: int, *, to_desk: bool) -> None:
    """The citizen's chats go to the desk (an agent answered: their next message is for the
    agent), or those with the desk go back to the main menu (closed)."""
    rows = conn.execute(
        sa.select(identity_table.c.id, identity_table.c.state).where(
            identity_table.c.citizen_id == citizen_id
        )
    ).all()
    flow, step = ("desk", "chat") if to_desk else ("menu", "main")
    for row in rows:
        state = row.state if isinstance(row.state, dict) else json.loads(row.state or "null")
        if not state or state.get("flow") == flow or (not to_desk and state.get("flow") != "desk"):
            continue
        moved: dict[str, Any] = {"lang": state.get("lang"), "flow": flow, "step": step}
        conn.execute(
            sa.update(identity_table).where(identity_table.c.id == row.id).values(state=moved)
        )


# -- the numbers: waiting conversations and median first response, per post ---------------------


NUMBERS_WINDOW = timedelta(days=30)


@dataclass(frozen=True)
class DeskNumbers:
    post_code: str
    waiting: int  # conversations whose citizen waits for an answer now
    median_first_response: timedelta | None  # over the conversations opened in 30 days


def numbers(
    conn: Connection, now: datetime, staff: StaffPrincipal | None = None
) -> list[DeskNumbers]:
    """Per post (the caller's, or every post): waiting now, and the median time from a
    conversation's opening to an agent's first answer over the last 30 days."""
    visible = sa.true() if staff is None else post_filter(staff, post_table.c.id)
    codes = list(
        conn.execute(
            sa.select(post_table.c.code).where(visible).order_by(post_table.c.code)
        ).scalars()
    )
    waiting: dict[str, int] = {
        code: count
        for code, count in conn.execute(
            sa.select(post_table.c.code, sa.func.count())
            .join(conversation_table, conversation_table.c.post_id == post_table.c.id)
            .where(
                visible,
                conversation_table.c.waiting_since.is_not(None),
                conversation_table.c.status != CLOSED,
            )
            .group_by(post_table.c.code)
        ).all()
    }
    delays: dict[str, list[timedelta]] = {}
    for code, created, answered in conn.execute(
        sa.select(
            post_table.c.code,
            conversation_table.c.created_at,
            conversation_table.c.first_response_at,
        )
        .join(conversation_table, conversation_table.c.post_id == post_table.c.id)
        .where(
            visible,
            conversation_table.c.first_response_at.is_not(None),
            conversation_table.c.created_at >= now - NUMBERS_WINDOW,
        )
    ).all():
        delays.setdefault(code, []).append(answered - created)
    return [
        DeskNumbers(code, int(waiting.get(code, 0)), _median(delays.get(code, [])))
        for code in codes
    ]


def _median(values: list[timedelta]) -> timedelta | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


# -- canned answers, per language ----------------------------------------------------------------


@dataclass(frozen=True)
class CannedAnswer:
    id: int
    lang: str
    title: str
    text: str


def canned_answers(conn: Connection, lang: str | None = None) -> list[CannedAnswer]:
    query = sa.select(answer_table).order_by(answer_table.c.lang, answer_table.c.title)
    if lang is not None:
        query = query.where(answer_table.c.lang == lang)
    return [CannedAnswer(r.id, r.lang, r.title, r.text) for r in conn.execute(query)]


def add_canned_answer(tx: StaffWrite, lang: str, title: str, text: str) -> CannedAnswer:
    """Refused `bad_language` or `empty`."""
    title, text = " ".join(title.split())[:TITLE_MAX], text.strip()[:TEXT_MAX]
    if lang not in LANGUAGES:
        raise Refused("bad_language", f"the language must be one of {', '.join(LANGUAGES)}")
    if not title or not text:
        raise Refused("empty", "a canned answer needs a title and a text")
    new_id = tx.conn.execute(
        sa.insert(answer_table)
        .values(lang=lang, title=title, text=text, created_by=tx.staff.id, created_at=tx.now)
        .returning(answer_table.c.id)
    ).scalar_one()
    tx.audit("create", "desk_answer", new_id, None, {"lang": lang, "title": title})
    return CannedAnswer(new_id, lang, title, text)


def delete_canned_answer(tx: StaffWrite, answer_id: int) -> None:
    row = tx.conn.execute(sa.select(answer_table).where(answer_table.c.id == answer_id)).first()
    if row is None:
        raise NotVisible("answer")
    tx.conn.execute(sa.delete(answer_table).where(answer_table.c.id == answer_id))
    tx.audit("delete", "desk_answer", answer_id, {"lang": row.lang, "title": row.title}, None)
