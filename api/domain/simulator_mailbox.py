"""The simulator's mailbox: what the bot sent a simulator user after the fact — a request's
new status, a cancelled appointment, a reminder, a waitlist offer, an agent's reply from the
inbox — fetched by the web simulator's page (`GET /api/v1/simulator/messages`).

Those messages are written to the outbox like any channel's (api.domain.outbox.notify, with
the channel `simulator` and the user's id as the address) but no worker sends them: the page
is their provider. `collect` hands the user's due messages after a cursor (the last id the
page has), in order, and records the pending ones as sent then, so that the delivery counts
of the console see them as delivered once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from api.domain.tables import table
from api.models import OutboxMessage, OutboxStatus

CHANNEL = "simulator"
BATCH = 50
_outbox = table(OutboxMessage)
_SHOWN = (OutboxStatus.pending.value, OutboxStatus.sent.value)


def collect(conn: Connection, user: str, after: int, now: datetime) -> list[dict[str, Any]]:
    """The user's messages due by `now` with an id above `after`: `{"id", "text",
    "choices"}`, oldest first (at most BATCH); the pending ones become sent."""
    rows = conn.execute(
        sa.select(_outbox.c.id, _outbox.c.status, _outbox.c.payload)
        .where(
            _outbox.c.channel == CHANNEL,
            _outbox.c.address == user,
            _outbox.c.id > after,
            _outbox.c.status.in_(_SHOWN),
            _outbox.c.next_attempt_at <= now,
        )
        .order_by(_outbox.c.id)
        .limit(BATCH)
    ).all()
    pending = [r.id for r in rows if r.status == OutboxStatus.pending.value]
    if pending:
        conn.execute(
            sa.update(_outbox)
            .where(_outbox.c.id.in_(pending), _outbox.c.status == OutboxStatus.pending.value)
            .values(status=OutboxStatus.sent.value, sent_at=now, attempts=1)
        )
    return [
        {
            "id": r.id,
            "text": str(r.payload.get("text", "")),
            "choices": list(r.payload.get("choices", [])),
        }
        for r in rows
        if isinstance(r.payload, dict) and r.payload.get("text")
    ]
