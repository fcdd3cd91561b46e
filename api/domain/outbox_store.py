"""The outbox's side of sending: `SqlOutboxStore` implements bot.outbox.OutboxStore over
SQLite or PostgreSQL (the rows are written by api.domain.outbox), one short transaction each.

- `claim` — the due rows of one channel, replies first (lane order), then by due time. On
  PostgreSQL one statement, one round trip: a CTE picks the ids `FOR UPDATE SKIP LOCKED`,
  another marks them `sending` (`UPDATE … RETURNING`), joined to their recipient's identity
  and citizen: M workers never claim one row twice and never wait for each other; run on the
  driver, its rows read as tuples and a broadcast's repeated payload decoded once. On SQLite
  (one worker) a SELECT then an UPDATE under `BEGIN IMMEDIATE`, which serialises claims anyway.
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

Grouped writes: a batch's outcomes are recorded in one transaction, and on PostgreSQL each
kind of outcome (sent, failed or skipped) in one statement for the whole batch, its values
as arrays (`UPDATE … FROM unnest(…)`); on SQLite, embedded, one `executemany`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine

from api import db
from api.domain.outbox import (
    ERROR_MAX,
    FAILED,
    PENDING,
    SENDING,
    SENT,
    SKIPPED,
    citizen,
    identity,
    mark_unreachable,
    outbox,
)
from bot.outbox import MAX_ATTEMPTS, Completion, OutboxItem, Outcome, next_attempt

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


def _item(
    r: Sequence[Any],
    payload: dict[str, Any],
    instant: Callable[[datetime | None], datetime | None],
) -> OutboxItem:
    """A claimed row — the columns of `_CLAIMED`, then the recipient's — as an item, with its
    payload decoded and its instants made aware by the caller (SQLAlchemy's rows come so,
    the driver's rows of PostgreSQL's claim do not)."""
    return OutboxItem(
        id=r[0],
        channel=r[1],
        address=r[2],
        lang=r[3],
        lane=r[4],
        kind=r[5],
        payload=payload,
        attempts=r[7],
        in_doubt_since=instant(r[8]),
        last_inbound_at=instant(r[9]),
        unreachable=r[10] is not None,
        opted_out=bool(r[11]),
    )


def _as_is(moment: datetime | None) -> datetime | None:
    return moment


def _aware(moment: datetime | None) -> datetime | None:
    """A UTCDateTime column's naive UTC value, as the type returns it."""
    return None if moment is None else moment.replace(tzinfo=UTC)


class _Payloads:
    """Payload texts decoded once while they repeat: a broadcast's claim is 500 rows with one
    payload; the dicts are not to be changed (each claim's items share them)."""

    def __init__(self) -> None:
        self._text: str | None = None
        self._value: dict[str, Any] = {}

    def decoded(self, text: str | None) -> dict[str, Any]:
        if text is None:
            return {}
        if text != self._text:
            loaded = json.loads(text)
            self._text, self._value = text, loaded if isinstance(loaded, dict) else {}
        return self._value


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
        columns = [claimed.c[column.name] for column in _CLAIMED]
        payload = _CLAIMED.index(outbox.c.payload)
        # the payload as its text, decoded here (`_Payloads`): a broadcast's rows share one
        columns[payload] = sa.cast(claimed.c.payload, sa.Text).label("payload")
        self._claim_pg = sa.select(*columns, *recipient).select_from(_with_recipient(claimed))
        # Run on the driver (`_claim_on_driver`): SQLAlchemy's rows and type processing were a
        # tenth of a broadcast's CPU per message; compiled once, psycopg's `%(name)s` style.
        compiled = self._claim_pg.compile(dialect=engine.dialect)
        self._claim_pg_sql = str(compiled)
        # the statement's own values (the statuses), beside the parameters named b_…
        self._claim_pg_values = {
            name: value for name, value in compiled.params.items() if not name.startswith("b_")
        }
        self._payloads = _Payloads()

    def claim(self, worker: str, channel: str, limit: int, now: datetime) -> list[OutboxItem]:
        if self.engine.dialect.name == "postgresql":
            return self._claim_on_driver(worker, channel, limit, now)
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
        return [_item(r, r[6] or {}, _as_is) for r in rows]

    def _claim_on_driver(
        self, worker: str, channel: str, limit: int, now: datetime
    ) -> list[OutboxItem]:
        """PostgreSQL's claim statement, its rows read as plain tuples (the columns of
        `_CLAIMED`, then the recipient's), instants made aware as UTCDateTime makes them."""
        naive_now = now.astimezone(UTC).replace(tzinfo=None)
        params = {
            **self._claim_pg_values,
            "b_channel": channel,
            "b_now": naive_now,
            "b_limit": limit,
            "b_worker": worker,
        }
        with db.write(self.engine) as conn:
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            cursor.execute(self._claim_pg_sql, params)
            rows = cursor.fetchall()
        payload = self._payloads.decoded
        return [_item(r, payload(r[6]), _aware) for r in rows]

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
                _mark_final(conn, worker, final)
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


# Failed or skipped, in one statement per batch on PostgreSQL (a broadcast skips many at once:
# outside WhatsApp's window), one per row on SQLite.
_final_rows = (
    sa.func.unnest(
        sa.bindparam("b_ids", type_=postgresql.ARRAY(sa.BigInteger())),
        sa.bindparam("b_statuses", type_=postgresql.ARRAY(sa.String())),
        sa.bindparam("b_reasons", type_=postgresql.ARRAY(sa.String())),
        sa.bindparam("b_errors", type_=postgresql.ARRAY(sa.String())),
    )
    .table_valued("id", "status", "reason", "error", name="final_rows")
    .render_derived()
)
_MINE = sa.and_(outbox.c.status == SENDING, outbox.c.claimed_by == _b("b_worker"))
_MARK_FINAL_PG = (
    sa.update(outbox)
    .where(outbox.c.id == _final_rows.c.id, _MINE)
    .values(
        status=_final_rows.c.status,
        skip_reason=_final_rows.c.reason,
        error=_final_rows.c.error,
        claimed_by=None,
    )
)
_MARK_FINAL = (
    sa.update(outbox)
    .where(outbox.c.id == _b("b_id"), _MINE)
    .values(status=_b("b_status"), skip_reason=_b("b_reason"), error=_b("b_error"), claimed_by=None)
)


def _mark_final(conn: Connection, worker: str, final: list[dict[str, Any]]) -> None:
    if conn.dialect.name == "postgresql":
        columns = {"b_ids": "b_id", "b_statuses": "b_status", "b_reasons": "b_reason"}
        arrays = {name: [row[key] for row in final] for name, key in columns.items()}
        arrays["b_errors"] = [row["b_error"] for row in final]
        conn.execute(_MARK_FINAL_PG, {**arrays, "b_worker": worker})
    else:
        conn.execute(_MARK_FINAL, [{**row, "b_worker": worker} for row in final])


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
