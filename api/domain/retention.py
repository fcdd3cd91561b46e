"""Retention of personal data: what the bot said and heard is kept `RETENTION_DAYS` (default
90), then deleted by the scheduler's job `privacy.retention` (hourly, idempotent: a second
clock deletes nothing more).

Past the period:
- outbox messages that are settled (sent, delivered, read, failed, skipped, cancelled) lose
  their text and their address (the rows stay, so that statistics still count them);
- the conversation held on a channel identity (the step, and what was typed in it, such as
  a name) is forgotten if it was not touched since;
- records of inbound message ids go (they are kept 48 hours anyway, for deduplication).

What staff hold for their work (appointments, requests and their history, the audit log) is
not conversation text and follows the posts' own rules; a citizen's erasure (api.domain.
privacy) removes their part of it at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from api import db
from api.domain.tables import table
from api.models import ChannelIdentity, InboundMessage, OutboxMessage, OutboxStatus

JOB_ID = "privacy.retention"
SCRUBBED = "—"
SETTLED = tuple(
    s.value for s in OutboxStatus if s not in (OutboxStatus.pending, OutboxStatus.sending)
)

outbox = table(OutboxMessage)
identity = table(ChannelIdentity)
inbound = table(InboundMessage)


@dataclass(frozen=True)
class Purged:
    messages: int
    conversations: int
    inbound_ids: int


def purge_expired(engine: Engine, now: datetime, days: int) -> Purged:
    """Delete what is older than `days` (see the module docstring), in one transaction."""
    cutoff = now - timedelta(days=days)
    with db.write(engine) as conn:
        messages = conn.execute(
            sa.update(outbox)
            .where(
                outbox.c.created_at < cutoff,
                outbox.c.status.in_(SETTLED),
                outbox.c.address != SCRUBBED,
            )
            .values(payload={}, address=SCRUBBED)
        ).rowcount
        conversations = conn.execute(
            sa.update(identity)
            .where(identity.c.state.is_not(None), identity.c.state_updated_at < cutoff)
            .values(state=sa.null())
        ).rowcount
        inbound_ids = conn.execute(
            sa.delete(inbound).where(inbound.c.received_at < cutoff)
        ).rowcount
    return Purged(int(messages or 0), int(conversations or 0), int(inbound_ids or 0))
