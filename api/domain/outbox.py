"""The outbox: every message the bot sends after the fact, written in the transaction of the
change that causes it, and sent by the worker (bot.outbox_sender.OutboxSender) through
`api.domain.outbox_store.SqlOutboxStore`.

Writing (the caller's connection and transaction; nothing here commits):
- `enqueue_replies(conn, outbound)` — a turn's replies on a channel that answers later
  (Telegram), lane `reply`; long replies become several rows within the channel's limit.
- `notify(conn, citizen_id, message, kind=…, dedupe_key=…, now=…)` — a message the citizen did
  not ask for (a request's new status, a cancelled appointment, a reminder), rendered in their
  language (with its voice prompt when they have voice on), on the channel they last wrote
  from, lane `notification`. Returns False and writes
  nothing when they have no reachable channel (or the dedupe key was used already).
- `enqueue_callback_answer` — Telegram's "answerCallbackQuery" for a button tap.

Sending: `api.domain.outbox_store.SqlOutboxStore`, the store the worker claims from and
records in.

Delivery callbacks (`record_delivery`) move a row forward only: sent → delivered → read, or
failed; a `delivered` arriving after `read` changes nothing.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any, cast
from weakref import WeakKeyDictionary

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from api.models import ChannelIdentity, Citizen, Lane, OutboxMessage, OutboxStatus, utcnow
from bot import logs
from bot.channels import split_text, text_limit
from bot.i18n import RenderedReply, Renderer
from bot.runtime import Outbound
from flows.messages import Attachment, Msg, Reply

# The channels a notification may go out on. The simulator's wait in the outbox until its web
# page fetches them (api.domain.simulator_mailbox): no worker sends them.
PUSH_CHANNELS: tuple[str, ...] = ("whatsapp", "telegram", "simulator")
DEFAULT_LANGUAGE = "fr"
ERROR_MAX = 300


def _table(model: type[SQLModel]) -> sa.Table:
    return cast(sa.Table, sa.inspect(model).local_table)


outbox = _table(OutboxMessage)
identity = _table(ChannelIdentity)
citizen = _table(Citizen)

PENDING = OutboxStatus.pending.value
SENDING = OutboxStatus.sending.value
SENT = OutboxStatus.sent.value
DELIVERED = OutboxStatus.delivered.value
READ = OutboxStatus.read.value
FAILED = OutboxStatus.failed.value
SKIPPED = OutboxStatus.skipped.value


@lru_cache(maxsize=1)
def default_renderer() -> Renderer:
    """The catalogs, read once per process, for callers that have no renderer at hand."""
    return Renderer()


# The renderer of each database's messaging in this process (api.messaging registers it), so
# that a notice written by any caller has the texts reviewed in the console and their voice
# prompts, like the conversations.
_renderers: WeakKeyDictionary[Engine, Renderer] = WeakKeyDictionary()


def use_renderer(engine: Engine, renderer: Renderer | None) -> None:
    """Notices on `engine` are rendered by `renderer` (None: the plain catalogs again)."""
    if renderer is None:
        _renderers.pop(engine, None)
    else:
        _renderers[engine] = renderer


def renderer_for(conn: Connection) -> Renderer:
    return _renderers.get(conn.engine) or default_renderer()


def _insert_ignoring_conflicts(conn: Connection) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(outbox).on_conflict_do_nothing()


def _inserted(conn: Connection, rows: list[dict[str, Any]]) -> bool:
    """Insert, skipping rows whose dedupe key exists; whether any row was written."""
    statement = _insert_ignoring_conflicts(conn).values(rows).returning(outbox.c.id)
    return bool(conn.execute(statement).all())


def _row(
    *,
    channel: str,
    address: str,
    lang: str,
    payload: dict[str, Any],
    now: datetime,
    lane: int,
    kind: str,
    citizen_id: int | None = None,
    dedupe_key: str | None = None,
) -> dict[str, Any]:
    rid = logs.request_id.get()
    if rid is not None:  # the sender logs under the id of the request that caused it
        payload = {**payload, "request_id": rid}
    return {
        "lane": lane,
        "kind": kind,
        "channel": channel,
        "address": address,
        "citizen_id": citizen_id,
        "lang": lang,
        "payload": payload,
        "dedupe_key": dedupe_key,
        "broadcast_id": None,
        "status": PENDING,
        "skip_reason": "",
        "attempts": 0,
        "next_attempt_at": now,
        "error": "",
        "created_at": now,
    }


def _payloads(channel: str, reply: RenderedReply) -> list[dict[str, Any]]:
    """One payload per message the channel will carry: the numbered text, cut within the
    channel's limit; the last part carries the choices (Telegram's buttons)."""
    text = reply.with_numbers()
    limit = text_limit(channel)
    parts = split_text(text, limit) if limit else [text]
    payloads: list[dict[str, Any]] = [{"text": part, "choices": []} for part in parts]
    payloads[-1]["choices"] = list(reply.choices)
    if reply.media:  # sent before the first part (a voice prompt, a proof's QR code and .ics)
        payloads[0]["media"] = [media.to_json() for media in reply.media]
    return payloads


# -- writing ------------------------------------------------------------------------------------


def enqueue_replies(conn: Connection, outbound: Outbound, *, now: datetime | None = None) -> None:
    """Queue a turn's replies (lane reply), in order. Matches `api.conversations.Enqueue`.

    Due at once, on the real clock: a turn's `now` may be a simulated one."""
    moment = now or utcnow()
    rows = [
        _row(
            channel=outbound.channel,
            address=outbound.address,
            lang=outbound.lang,
            payload=payload,
            now=moment,
            lane=Lane.reply.value,
            kind="reply",
        )
        for reply in outbound.replies
        for payload in _payloads(outbound.channel, reply)
    ]
    if rows:
        conn.execute(sa.insert(outbox), rows)


def enqueue_callback_answer(
    conn: Connection, channel: str, address: str, query_id: str, now: datetime
) -> bool:
    """Acknowledge a Telegram button tap (once per query, whatever the retries)."""
    row = _row(
        channel=channel,
        address=address,
        lang=DEFAULT_LANGUAGE,
        payload={"type": "callback_answer", "callback_query_id": query_id},
        now=now,
        lane=Lane.reply.value,
        kind="callback_answer",
        dedupe_key=f"tg-cbq:{query_id}"[:120],
    )
    return _inserted(conn, [row])


def reachable_channel(conn: Connection, citizen_id: int) -> Any:
    """The identity the citizen last wrote from, among those that still reach them."""
    return conn.execute(
        sa.select(
            identity.c.channel,
            identity.c.address,
            citizen.c.lang,
            identity.c.last_inbound_at,
            citizen.c.voice,
        )
        .join(citizen, citizen.c.id == identity.c.citizen_id)
        .where(
            identity.c.citizen_id == citizen_id,
            identity.c.unreachable_at.is_(None),
            identity.c.channel.in_(PUSH_CHANNELS),
            citizen.c.erased_at.is_(None),
        )
        .order_by(sa.nulls_last(identity.c.last_inbound_at.desc()), identity.c.id.desc())
        .limit(1)
    ).first()


def notify(
    conn: Connection,
    citizen_id: int,
    message: Msg,
    *,
    kind: str,
    dedupe_key: str,
    now: datetime,
    lane: Lane = Lane.notification,
    renderer: Renderer | None = None,
    attachments: tuple[Attachment, ...] = (),
) -> bool:
    """Queue `message` for the citizen, in their language, on their last-used channel, with
    the files of its `attachments` (a proof of appointment) when the renderer serves them.

    Due at `now`. The dedupe key makes it once per purpose (`request:12:ready`,
    `reminder:day:7`): a second call with the same key writes nothing. Returns whether a
    message was queued. Opted-out citizens get it too: STOP is about announcements. With
    voice prompts on, the message's voice prompt in their language goes with it, if it has one.
    """
    target = reachable_channel(conn, citizen_id)
    if target is None:
        return False
    lang = target.lang or DEFAULT_LANGUAGE
    texts = renderer or renderer_for(conn)
    reply = Reply((message,), attachments=attachments)
    rendered = texts.render_reply(reply, lang, voice=bool(target.voice))
    payloads = _payloads(target.channel, rendered)
    rows = [
        _row(
            channel=target.channel,
            address=target.address,
            lang=lang,
            payload=payload,
            now=now,
            lane=lane.value,
            kind=kind,
            citizen_id=citizen_id,
            dedupe_key=dedupe_key if index == 0 else f"{dedupe_key}#{index + 1}",
        )
        for index, payload in enumerate(payloads)
    ]
    return _inserted(conn, rows)


def mark_unreachable(
    conn: Connection, channel: str, address: str, now: datetime, *, carrier_opt_out: bool = False
) -> None:
    """This address refuses the bot (blocked, or opted out at the carrier: then the citizen
    is opted out of announcements too). Writing again makes it reachable (the turn clears it)."""
    conn.execute(
        sa.update(identity)
        .where(identity.c.channel == channel, identity.c.address == address)
        .values(unreachable_at=now)
    )
    if carrier_opt_out:
        owner = (
            sa.select(identity.c.citizen_id)
            .where(identity.c.channel == channel, identity.c.address == address)
            .scalar_subquery()
        )
        conn.execute(sa.update(citizen).where(citizen.c.id == owner).values(opted_out=True))


# -- delivery callbacks -------------------------------------------------------------------------

# What a provider's status moves a row to, and the statuses it may move it from.
_FORWARD: dict[str, tuple[str, tuple[str, ...]]] = {
    "queued": (SENT, (PENDING, SENDING)),
    "accepted": (SENT, (PENDING, SENDING)),
    "scheduled": (SENT, (PENDING, SENDING)),
    "sending": (SENT, (PENDING, SENDING)),
    "sent": (SENT, (PENDING, SENDING)),
    "delivered": (DELIVERED, (PENDING, SENDING, SENT)),
    "read": (READ, (PENDING, SENDING, SENT, DELIVERED)),
    "failed": (FAILED, (PENDING, SENDING, SENT)),
    "undelivered": (FAILED, (PENDING, SENDING, SENT)),
}
CARRIER_OPT_OUT = 21610


def record_delivery(
    conn: Connection,
    provider_message_id: str,
    status: str,
    now: datetime,
    *,
    error_code: int | None = None,
    error_message: str = "",
) -> bool:
    """Move the row the provider calls `provider_message_id` forward; never backwards.
    Returns whether anything changed. 21610 also makes the address unreachable."""
    move = _FORWARD.get(status)
    if move is None:
        return False
    target, allowed = move
    values: dict[str, Any] = {"status": target}
    if target == SENT:
        values["sent_at"] = sa.func.coalesce(outbox.c.sent_at, now)
    elif target == DELIVERED:
        values["delivered_at"] = now
    elif target == READ:
        values["read_at"] = now
        values["delivered_at"] = sa.func.coalesce(outbox.c.delivered_at, now)
    else:
        values["error"] = f"{error_code or ''} {error_message}".strip()[:ERROR_MAX]
    changed = conn.execute(
        sa.update(outbox)
        .where(outbox.c.provider_message_id == provider_message_id, outbox.c.status.in_(allowed))
        .values(values)
        .returning(outbox.c.channel, outbox.c.address)
    ).all()
    if changed and target == FAILED and error_code == CARRIER_OPT_OUT:
        for row in changed:
            mark_unreachable(conn, row.channel, row.address, now, carrier_opt_out=True)
    return bool(changed)
