"""Delivering a broadcast: its audience copied into the outbox exactly once, and how far it is
(`stats`). api.domain.broadcasts composes it; the outbox sender sends it.

`schedule` (api.domain.broadcasts) moves a draft to `scheduled`; the job `due_broadcasts_job`
claims due broadcasts with one conditional UPDATE (scheduled → sending), so a second clock does
no harm, and runs `fan_out`, in keyset-paginated batches by citizen id (see `fan_out_batch`):
a crash loses at most the batch in flight, which nobody saw; a rerun, or two fan-outs at once,
continue from the cursor.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from api import db
from api.domain.broadcasts import (
    DEFAULT_LANGUAGE,
    BroadcastNotFound,
    Segment,
    _audience,
    _broadcast,
    _citizen,
    _identity,
    _outbox,
    get,
)
from api.models import (
    BroadcastStatus,
    Lane,
    OutboxStatus,
    UTCDateTime,
    utcnow,
)
from flows.engine import LANGUAGES

log = logging.getLogger(__name__)

BATCH = 1000  # recipients copied into the outbox per transaction
KIND = "broadcast"  # the outbox rows' kind
# Skip reasons written at fan-out (the sender adds its own, e.g. outside_window).
OPTED_OUT = "opted_out"
UNREACHABLE = "unreachable"
# --- statistics ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stats:
    """Where a broadcast's messages stand, from the outbox.

    `audience` counts the broadcast's outbox rows, one per citizen; `queued` the messages
    fan-out meant to send (the rows it did not skip); `pending` those not yet handed to the
    provider; `sent` those the provider accepted (including those since delivered or read),
    `delivered` those delivered (including read), `read`; `failed` permanently; `cancelled`;
    `skipped` by reason (opted out, unreachable — at fan-out or when sending — outside the
    WhatsApp window…). Fed by Twilio's status callbacks through the outbox.
    """

    broadcast_id: int
    status: str
    audience: int
    queued: int
    pending: int
    sent: int
    delivered: int
    read: int
    failed: int
    cancelled: int
    skipped: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def stats(conn: Connection, broadcast_id: int) -> Stats:
    """One GROUP BY over the broadcast's outbox rows."""
    record = get(conn, broadcast_id)
    rows = conn.execute(
        sa.select(_outbox.c.status, _outbox.c.skip_reason, sa.func.count().label("n"))
        .where(_outbox.c.broadcast_id == broadcast_id)
        .group_by(_outbox.c.status, _outbox.c.skip_reason)
    )
    by_status: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    for row in rows:
        by_status[row.status] += row.n
        if row.status == OutboxStatus.skipped.value:
            skipped[row.skip_reason or "other"] += row.n
    read = by_status[OutboxStatus.read.value]
    delivered = by_status[OutboxStatus.delivered.value] + read
    sent = by_status[OutboxStatus.sent.value] + delivered
    pending = by_status[OutboxStatus.pending.value] + by_status[OutboxStatus.sending.value]
    return Stats(
        broadcast_id=broadcast_id,
        status=record.status,
        audience=sum(by_status.values()),
        queued=record.queued,
        pending=pending,
        sent=sent,
        delivered=delivered,
        read=read,
        failed=by_status[OutboxStatus.failed.value],
        cancelled=by_status[OutboxStatus.cancelled.value],
        skipped=dict(sorted(skipped.items())),
    )


# --- fan-out -------------------------------------------------------------------------------------


@dataclass
class FanOutResult:
    broadcast_id: int
    batches: int = 0
    queued: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    finished: bool = False  # the whole audience is in the outbox
    stopped: str | None = None  # why it stopped early: the broadcast's status


def _insert_ignoring_conflicts(conn: Connection) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(_outbox).on_conflict_do_nothing()


def _outbox_rows(
    conn: Connection, broadcast_id: int, texts: dict[str, str], now: datetime
) -> list[Any]:
    """The outbox columns of one citizen of the audience, as SQL over the audience's row
    (`_citizen` joined to its chosen `_identity`): the batch is copied by the database with
    `INSERT … SELECT`, no row travels through Python."""
    language = sa.func.coalesce(_citizen.c.lang, DEFAULT_LANGUAGE)
    others = [lang for lang in LANGUAGES if lang in texts and lang != DEFAULT_LANGUAGE]
    lang: Any = sa.literal(DEFAULT_LANGUAGE, sa.String)
    payload: Any = sa.literal(_payload_json(texts[DEFAULT_LANGUAGE]), sa.String)
    if others:
        lang = sa.case(
            *((language == other, sa.literal(other, sa.String)) for other in others),
            else_=lang,
        )
        payload = sa.case(
            *(
                (language == other, sa.literal(_payload_json(texts[other]), sa.String))
                for other in others
            ),
            else_=payload,
        )
    if conn.dialect.name == "postgresql":
        payload = sa.cast(payload, postgresql.JSON)  # SQLite keeps JSON as text
    opted_out = _citizen.c.opted_out.is_(True)
    unreachable = _identity.c.unreachable_at.is_not(None)
    skipped = OutboxStatus.skipped.value
    return [
        sa.literal(Lane.bulk.value, sa.Integer).label("lane"),
        sa.literal(KIND, sa.String).label("kind"),
        _identity.c.channel.label("channel"),
        _identity.c.address.label("address"),
        _citizen.c.id.label("citizen_id"),
        lang.label("lang"),
        payload.label("payload"),
        (
            sa.literal(f"broadcast:{broadcast_id}:citizen:", sa.String)
            + sa.cast(_citizen.c.id, sa.String)
        ).label("dedupe_key"),
        sa.literal(broadcast_id, sa.Integer).label("broadcast_id"),
        sa.case(
            (opted_out, skipped), (unreachable, skipped), else_=OutboxStatus.pending.value
        ).label("status"),
        sa.case((opted_out, OPTED_OUT), (unreachable, UNREACHABLE), else_="").label("skip_reason"),
        sa.literal(0, sa.Integer).label("attempts"),
        sa.literal(now, UTCDateTime()).label("next_attempt_at"),
        sa.literal("", sa.String).label("error"),
        sa.literal(now, UTCDateTime()).label("created_at"),
    ]


_OUTBOX_COLUMNS = (
    "lane",
    "kind",
    "channel",
    "address",
    "citizen_id",
    "lang",
    "payload",
    "dedupe_key",
    "broadcast_id",
    "status",
    "skip_reason",
    "attempts",
    "next_attempt_at",
    "error",
    "created_at",
)


def _payload_json(text: str) -> str:
    return json.dumps({"text": text}, ensure_ascii=False)


def fan_out_batch(
    conn: Connection, broadcast_id: int, now: datetime, batch: int = BATCH
) -> FanOutResult:
    """One batch, in the caller's write transaction: lock the broadcast, read its cursor,
    find the next `batch` citizens, copy them into the outbox, move the cursor.

    Two statements do the work whatever the batch size: the ids of the batch (the keyset
    page, which fixes the new cursor), then one `INSERT … SELECT … ON CONFLICT DO NOTHING
    RETURNING` over that id range."""
    result = FanOutResult(broadcast_id)
    head = conn.execute(
        sa.select(
            _broadcast.c.status,
            _broadcast.c.texts,
            _broadcast.c.segment,
            _broadcast.c.cursor,
            _broadcast.c.queued,
            _broadcast.c.skipped,
        )
        .where(_broadcast.c.id == broadcast_id)
        .with_for_update()
    ).first()
    if head is None:
        raise BroadcastNotFound(f"no broadcast {broadcast_id}")
    if head.status != BroadcastStatus.sending.value:
        result.stopped = head.status
        result.finished = head.status == BroadcastStatus.sent.value
        return result
    segment = Segment.model_validate(head.segment)
    page = (
        _audience(segment, _citizen.c.id)
        .where(_citizen.c.id > head.cursor)
        .order_by(_citizen.c.id)
        .limit(batch)
    )
    ids = list(conn.execute(page).scalars())
    if ids:
        rows = (
            _audience(segment, *_outbox_rows(conn, broadcast_id, dict(head.texts), now))
            .where(_citizen.c.id > head.cursor, _citizen.c.id <= ids[-1])
            .order_by(_citizen.c.id)
        )
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        inserted = conn.execute(
            dialect.insert(_outbox)
            .from_select(list(_OUTBOX_COLUMNS), rows)
            .on_conflict_do_nothing()
            .returning(_outbox.c.status, _outbox.c.skip_reason)
        ).all()
        for status, reason in inserted:
            if status == OutboxStatus.skipped.value:
                result.skipped[reason] += 1
            else:
                result.queued += 1
    skipped = Counter(head.skipped or {})
    skipped.update(result.skipped)
    values: dict[str, Any] = {
        "queued": head.queued + result.queued,
        "skipped": dict(sorted(skipped.items())),
    }
    if ids:
        values["cursor"] = ids[-1]
    if len(ids) < batch:
        values.update(status=BroadcastStatus.sent.value, finished_at=now)
        result.finished = True
    conn.execute(sa.update(_broadcast).where(_broadcast.c.id == broadcast_id).values(**values))
    result.batches = 1
    return result


def fan_out(
    engine: Engine,
    broadcast_id: int,
    now: datetime | None = None,
    batch: int = BATCH,
    *,
    max_batches: int | None = None,
) -> FanOutResult:
    """Write a `sending` broadcast's audience to the outbox, batch after batch, each in its
    own transaction; resumes from the persisted cursor. `max_batches` stops early (tests)."""
    total = FanOutResult(broadcast_id)
    while max_batches is None or total.batches < max_batches:
        with db.write(engine) as conn:
            step = fan_out_batch(conn, broadcast_id, now or utcnow(), batch)
        total.batches += step.batches
        total.queued += step.queued
        total.skipped.update(step.skipped)
        total.finished = step.finished
        total.stopped = step.stopped
        if step.finished or step.stopped:
            break
    return total


def start(conn: Connection, broadcast_id: int, now: datetime) -> bool:
    """Claim one scheduled broadcast for fan-out (scheduled → sending); False if another
    clock or a cancel got there first."""
    done = conn.execute(
        sa.update(_broadcast)
        .where(_broadcast.c.id == broadcast_id)
        .where(_broadcast.c.status == BroadcastStatus.scheduled.value)
        .values(status=BroadcastStatus.sending.value, started_at=now)
    )
    return done.rowcount == 1


def claim_due(conn: Connection, now: datetime) -> list[int]:
    """Claim every scheduled broadcast whose time has come: one conditional UPDATE."""
    claimed = conn.execute(
        sa.update(_broadcast)
        .where(_broadcast.c.status == BroadcastStatus.scheduled.value)
        .where(_broadcast.c.send_at <= now)
        .values(status=BroadcastStatus.sending.value, started_at=now)
        .returning(_broadcast.c.id)
    )
    return sorted(int(id_) for id_ in claimed.scalars())


def due_broadcasts_job(engine: Engine, now: datetime | None = None) -> list[int]:
    """The scheduler's job (id `broadcasts.due`): claim the broadcasts that are due, then fan
    out every broadcast that is `sending` — the newly claimed ones and any whose fan-out a
    crash interrupted. Idempotent: two clocks claim each broadcast once, and two fan-outs of
    one broadcast take turns on its row lock and cursor. Returns the ids it worked on."""
    moment = now or utcnow()
    with db.write(engine) as conn:
        claimed = claim_due(conn, moment)
        sending = conn.execute(
            sa.select(_broadcast.c.id)
            .where(_broadcast.c.status == BroadcastStatus.sending.value)
            .order_by(_broadcast.c.id)
        ).scalars()
        ids = sorted(set(claimed) | {int(i) for i in sending})
    for broadcast_id in ids:
        try:
            result = fan_out(engine, broadcast_id, now)  # None: each batch's own time
        except Exception:  # one broadcast's trouble must not hold the others back
            log.exception("broadcast %d: fan-out failed; the next run resumes it", broadcast_id)
            continue
        log.info(
            "broadcast %d: %d queued, %d skipped in %d batches%s",
            broadcast_id,
            result.queued,
            sum(result.skipped.values()),
            result.batches,
            "" if result.finished else f" (stopped: {result.stopped})",
        )
    return ids


JOB_ID = "broadcasts.due"
JOB_INTERVAL_SECONDS = 5
