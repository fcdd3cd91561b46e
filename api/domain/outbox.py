"""The outbox: every message the bot sends after the fact, written in the transaction of the
change that causes it, and sent by the worker (bot.outbox.OutboxSender) through this store.

Writing (the caller's connection and transaction; nothing here commits):
- `enqueue_replies(conn, outbound)` — a turn's replies on a channel that answers later
  (Telegram), lane `reply`; long replies become several rows within the channel's limit.
- `notify(conn, citizen_id, message, kind=…, dedupe_key=…, now=…)` — a message the citizen did
  not ask for (a request's new status, a cancelled appointment, a reminder), rendered in their
  language, on the channel they last wrote from, lane `notification`. Returns False and writes
  nothing when they have no reachable channel (or the dedupe key was used already).
- `enqueue_callback_answer` — Telegram's "answerCallbackQuery" for a button tap.

Sending (`SqlOutboxStore`, implementing bot.outbox.OutboxStore, one short transaction each):
- `claim` — the due rows of one channel, replies first (lane order), then by due time. On
  PostgreSQL `SELECT … FOR UPDATE OF outbox SKIP LOCKED` then `UPDATE … SET status='sending'`:
  M workers never claim one row twice and never wait for each other. On SQLite (one worker)
  the same two statements run under `BEGIN IMMEDIATE`, which serialises claims anyway.
- `complete` — the outcomes: `sent` with the provider's message id (recorded even when the
  claim had expired meanwhile, so that a slow send is not sent again), retry with back-off
  (5 s, 30 s, 2 min, 10 min, then failed), skipped with a reason, failed, or unreachable.
- `reclaim_stale` — rows left in `sending` by a worker that died go back to `pending`;
  `reclaim_own` — the same at once, for a worker restarted under its stable `WORKER_ID`;
  `release_claim` — a claim whose answer was lost (the database went away), if it was
  committed after all.

In doubt (`in_doubt_since`): a row whose send may have reached the provider without its answer
being recorded — its lease expired (`reclaim_stale`), or the call broke after the request went
out (a retry with `SendResult.in_doubt`) — keeps the start of that claim (the earliest, when it
happens again). The claim hands it over as `OutboxItem.in_doubt_since`, and the sender asks
the provider whether it already has the message before sending it again (bot.outbox). A
definite answer clears it: recorded as sent, or a retry the provider surely refused.

Delivery callbacks (`record_delivery`) move a row forward only: sent → delivered → read, or
failed; a `delivered` arriving after `read` changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from api import db
from api.models import ChannelIdentity, Citizen, Lane, OutboxMessage, OutboxStatus, utcnow
from bot import logs
from bot.channels import split_text, text_limit
from bot.i18n import RenderedReply, Renderer
from bot.outbox import (
    MAX_ATTEMPTS,
    Completion,
    OutboxItem,
    Outcome,
    next_attempt,
)
from bot.runtime import Outbound
from flows.messages import Msg

# The channels a notification may go out on (the simulator has no way to push).
PUSH_CHANNELS: tuple[str, ...] = ("whatsapp", "telegram")
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
    if reply.voice:
        payloads[0]["voice"] = reply.voice  # sent as a voice note before the first part
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
            identity.c.channel, identity.c.address, citizen.c.lang, identity.c.last_inbound_at
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
) -> bool:
    """Queue `message` for the citizen, in their language, on their last-used channel.

    Due at `now`. The dedupe key makes it once per purpose (`request:12:ready`,
    `reminder:day:7`): a second call with the same key writes nothing. Returns whether a
    message was queued. Opted-out citizens get it too: STOP is about announcements."""
    target = reachable_channel(conn, citizen_id)
    if target is None:
        return False
    lang = target.lang or DEFAULT_LANGUAGE
    text = (renderer or default_renderer()).render(message, lang)
    payloads = _payloads(target.channel, RenderedReply(text))
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


# -- the store the sender works with ------------------------------------------------------------


_b = sa.bindparam


# What a claim reads of its rows.
_CLAIMED = (
    outbox.c.id,
    outbox.c.channel,
    outbox.c.address,
    outbox.c.lang,
    outbox.c.lane,
    outbox.c.kind,
    outbox.c.payload,
    outbox.c.attempts,
    outbox.c.in_doubt_since,
)


def _due(channel: str, now: str) -> sa.ColumnElement[bool]:
    """Pending rows of the channel named by parameter `channel`, due by parameter `now`."""
    return sa.and_(
        outbox.c.status == PENDING,
        outbox.c.channel == _b(channel),
        outbox.c.next_attempt_at <= _b(now),
    )


def _with_recipient(rows: Any) -> Any:
    """Outbox rows (the table or a claim's CTE) joined to their identity and citizen."""
    return rows.outerjoin(
        identity,
        sa.and_(identity.c.channel == rows.c.channel, identity.c.address == rows.c.address),
    ).outerjoin(citizen, citizen.c.id == identity.c.citizen_id)


def _item(r: Any) -> OutboxItem:
    return OutboxItem(
        id=r.id,
        channel=r.channel,
        address=r.address,
        lang=r.lang,
        lane=r.lane,
        kind=r.kind,
        payload=r.payload or {},
        attempts=r.attempts,
        last_inbound_at=r.last_inbound_at,
        unreachable=r.unreachable_at is not None,
        opted_out=bool(r.opted_out),
        in_doubt_since=r.in_doubt_since,
    )


class SqlOutboxStore:
    """Implements bot.outbox.OutboxStore over SQLite or PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        order = (outbox.c.lane, outbox.c.next_attempt_at, outbox.c.id)
        recipient = (identity.c.last_inbound_at, identity.c.unreachable_at, citizen.c.opted_out)
        # SQLite: the due rows with their recipient, then an UPDATE of their ids.
        self._due = (
            sa.select(*_CLAIMED, *recipient)
            .select_from(_with_recipient(outbox))
            .where(_due("channel", "now"))
            .order_by(*order)
            .limit(_b("limit"))
        )
        self._any_due = sa.select(outbox.c.id).where(_due("channel", "now")).limit(1)
        # PostgreSQL: one statement, one round trip. The due ids locked and skipping what
        # another worker holds, marked as sending, their rows joined to their recipient.
        # (Parameters named apart from the columns: an UPDATE would take them as its values.)
        picked = (
            sa.select(outbox.c.id)
            .where(_due("b_channel", "b_now"))
            .order_by(*order)
            .limit(_b("b_limit"))
            .with_for_update(skip_locked=True)
            .cte("picked")
        )
        claimed = (
            sa.update(outbox)
            .where(outbox.c.id == picked.c.id)
            .values(
                status=SENDING,
                claimed_by=_b("b_worker"),
                claimed_at=_b("b_now", type_=outbox.c.claimed_at.type),
            )
            .returning(*_CLAIMED)
            .cte("claimed")
        )
        self._claim_pg = sa.select(
            *(claimed.c[column.name] for column in _CLAIMED), *recipient
        ).select_from(_with_recipient(claimed))

    def claim(self, worker: str, channel: str, limit: int, now: datetime) -> list[OutboxItem]:
        if self.engine.dialect.name == "postgresql":
            params = {"b_channel": channel, "b_now": now, "b_limit": limit, "b_worker": worker}
            with db.write(self.engine) as conn:
                rows = conn.execute(self._claim_pg, params).all()
            return [_item(r) for r in rows]
        # Idle most of the time: look before taking the write lock (SQLite has only one).
        with db.read(self.engine) as conn:
            if conn.execute(self._any_due, {"channel": channel, "now": now}).first() is None:
                return []
        with db.write(self.engine) as conn:
            rows = conn.execute(self._due, {"channel": channel, "now": now, "limit": limit}).all()
            if not rows:
                return []
            conn.execute(
                sa.update(outbox)
                .where(outbox.c.id.in_([r.id for r in rows]), outbox.c.status == PENDING)
                .values(status=SENDING, claimed_by=worker, claimed_at=now)
            )
        return [_item(r) for r in rows]

    def complete(self, worker: str, completions: Sequence[Completion], now: datetime) -> None:
        sent: list[dict[str, Any]] = []
        later: list[dict[str, Any]] = []  # back to pending, due at b_due
        final: list[dict[str, Any]] = []  # failed or skipped
        unreachable: list[tuple[OutboxItem, bool]] = []
        for done in completions:
            item, result = done.item, done.result
            error = result.error[:ERROR_MAX]
            if result.outcome is Outcome.sent:
                sent.append({"b_id": item.id, "b_pid": (result.provider_id or "")[:64]})
            elif result.outcome is Outcome.throttled:
                resume = now + timedelta(seconds=result.retry_after or 1.0)
                later.append(_later(item.id, item.attempts, resume, error, result.in_doubt))
            elif result.outcome is Outcome.retry:
                attempts = item.attempts + 1
                due = next_attempt(attempts, now)
                if due is None:
                    final.append(_final(item.id, FAILED, "", f"gave up: {error}"))
                else:
                    later.append(_later(item.id, attempts, due, error, result.in_doubt))
            elif result.outcome is Outcome.skipped:
                final.append(_final(item.id, SKIPPED, error[:40], ""))
            elif result.outcome is Outcome.unreachable:
                final.append(_final(item.id, FAILED, "unreachable", error))
                unreachable.append((item, result.carrier_opt_out))
            else:
                final.append(_final(item.id, FAILED, "", error))
        with db.write(self.engine) as conn:
            if sent:
                _mark_sent(conn, sent, now)
            mine = sa.and_(
                outbox.c.id == _b("b_id"), outbox.c.status == SENDING, outbox.c.claimed_by == worker
            )
            if later:
                conn.execute(
                    sa.update(outbox)
                    .where(mine)
                    .values(
                        status=PENDING,
                        attempts=_b("b_attempts"),
                        next_attempt_at=_b("b_due", type_=outbox.c.next_attempt_at.type),
                        error=_b("b_error"),
                        claimed_by=None,
                        claimed_at=None,
                        # still in doubt since the earliest unanswered send, or settled
                        in_doubt_since=sa.case(
                            (
                                _b("b_doubt", type_=sa.Boolean()),
                                sa.func.coalesce(outbox.c.in_doubt_since, outbox.c.claimed_at),
                            ),
                            else_=sa.null(),
                        ),
                    ),
                    later,
                )
            if final:
                conn.execute(
                    sa.update(outbox)
                    .where(mine)
                    .values(
                        status=_b("b_status"),
                        skip_reason=_b("b_reason"),
                        error=_b("b_error"),
                        claimed_by=None,
                    ),
                    final,
                )
            for item, opt_out in unreachable:
                mark_unreachable(conn, item.channel, item.address, now, carrier_opt_out=opt_out)

    def release(self, worker: str, ids: Sequence[int]) -> None:
        if not ids:
            return
        with db.write(self.engine) as conn:
            conn.execute(
                sa.update(outbox)
                .where(
                    outbox.c.id.in_(list(ids)),
                    outbox.c.status == SENDING,
                    outbox.c.claimed_by == worker,
                )
                .values(status=PENDING, claimed_by=None, claimed_at=None)
            )

    def release_claim(self, worker: str, channel: str, claimed_at: datetime) -> int:
        with db.write(self.engine) as conn:
            result = conn.execute(
                sa.update(outbox)
                .where(
                    outbox.c.status == SENDING,
                    outbox.c.claimed_by == worker,
                    outbox.c.channel == channel,
                    outbox.c.claimed_at == claimed_at,
                )
                .values(status=PENDING, claimed_by=None, claimed_at=None)
            )
        return int(result.rowcount or 0)

    def reclaim_stale(self, now: datetime, lease: timedelta) -> int:
        """Claims older than `lease` belong to a dead worker: back to pending, counted as an
        attempt (a message that kills every worker that tries it must stop at some point), and
        in doubt since that claim began: the dead worker may have sent it without recording."""
        return self._reclaim(
            sa.and_(outbox.c.status == SENDING, outbox.c.claimed_at < now - lease), now
        )

    def reclaim_own(self, worker: str, now: datetime) -> int:
        """A worker starting under a stable id: what that id still holds was held by its
        previous life, which is dead (one process per id). Taken back at once, in doubt, as
        `reclaim_stale` would once the lease ran out."""
        return self._reclaim(
            sa.and_(outbox.c.status == SENDING, outbox.c.claimed_by == worker), now
        )

    def _reclaim(self, stale: sa.ColumnElement[bool], now: datetime) -> int:
        with db.write(self.engine) as conn:
            given_up = conn.execute(
                sa.update(outbox)
                .where(stale, outbox.c.attempts + 1 >= MAX_ATTEMPTS)
                .values(status=FAILED, error="lease expired too often", claimed_by=None)
            ).rowcount
            back = conn.execute(
                sa.update(outbox)
                .where(stale)
                .values(
                    status=PENDING,
                    attempts=outbox.c.attempts + 1,
                    next_attempt_at=now,
                    error="lease expired",
                    claimed_by=None,
                    claimed_at=None,
                    in_doubt_since=sa.func.coalesce(outbox.c.in_doubt_since, outbox.c.claimed_at),
                )
            ).rowcount
        return int(given_up or 0) + int(back or 0)


_SENT_VALUES: dict[str, Any] = {
    "status": SENT,
    "error": "",
    "claimed_by": None,
    "in_doubt_since": None,
}
_NOT_YET_SENT = sa.or_(outbox.c.status == PENDING, outbox.c.status == SENDING)
# PostgreSQL: the whole batch in one statement, its ids and provider ids as two arrays.
_sent_rows = (
    sa.func.unnest(
        sa.bindparam("b_ids", type_=postgresql.ARRAY(sa.BigInteger())),
        sa.bindparam("b_pids", type_=postgresql.ARRAY(sa.String())),
    )
    .table_valued("id", "pid", name="sent_rows")
    .render_derived()
)
_MARK_SENT_PG = (
    sa.update(outbox)
    .where(outbox.c.id == _sent_rows.c.id, _NOT_YET_SENT)
    .values(provider_message_id=_sent_rows.c.pid, sent_at=_b("b_now"), **_SENT_VALUES)
)
_MARK_SENT = (
    sa.update(outbox)
    .where(outbox.c.id == _b("b_id"), _NOT_YET_SENT)
    .values(provider_message_id=_b("b_pid"), sent_at=_b("b_now"), **_SENT_VALUES)
)


def _mark_sent(conn: Connection, sent: list[dict[str, Any]], now: datetime) -> None:
    """Record a batch of `{"b_id", "b_pid"}` as sent (even when the claim had expired). On
    PostgreSQL one statement for the batch (not one per message: the writer's CPU is taken
    from the sending loop); on SQLite, embedded and in-process, one per message."""
    if conn.dialect.name == "postgresql":
        ids = [row["b_id"] for row in sent]
        pids = [row["b_pid"] for row in sent]
        conn.execute(_MARK_SENT_PG, {"b_ids": ids, "b_pids": pids, "b_now": now})
    else:
        conn.execute(_MARK_SENT, [{**row, "b_now": now} for row in sent])


def _later(
    item_id: int, attempts: int, due: datetime, error: str, in_doubt: bool
) -> dict[str, Any]:
    return {
        "b_id": item_id,
        "b_attempts": attempts,
        "b_due": due,
        "b_error": error,
        "b_doubt": in_doubt,
    }


def _final(item_id: int, status: str, reason: str, error: str) -> dict[str, Any]:
    return {"b_id": item_id, "b_status": status, "b_reason": reason, "b_error": error[:ERROR_MAX]}
