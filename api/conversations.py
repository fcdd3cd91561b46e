"""The conversation store: one turn's transaction, as the runtime (bot.runtime) asks for it.

The hot path of every message: at most five statements in one transaction — the dedupe
insert, the identity and citizen read (locked on PostgreSQL), the flow's own reads and
writes, one state update, and the outbox rows when the channel sends later.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from api import db
from api.domain.citizens import country_of
from api.models import ChannelIdentity, Citizen, InboundMessage
from api.world import SqlWorld
from bot.runtime import Inbound, Outbound
from flows.engine import Who
from flows.state import Conversation

identity = ChannelIdentity.__table__
citizen = Citizen.__table__
inbound_message = InboundMessage.__table__

Enqueue = Callable[[Connection, Outbound], None]

_SELECT_IDENTITY = (
    sa.select(
        identity.c.id,
        identity.c.citizen_id,
        identity.c.state,
        citizen.c.phone,
        citizen.c.phone_verified,
        citizen.c.country,
        citizen.c.lang,
        citizen.c.opted_out,
    )
    .join(citizen, citizen.c.id == identity.c.citizen_id)
    .where(identity.c.channel == sa.bindparam("channel"))
    .where(identity.c.address == sa.bindparam("address"))
)


def _insert_ignoring_conflicts(conn: Connection, table: sa.Table) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


class SqlTurnSession:
    def __init__(
        self,
        conn: Connection,
        identity_id: int,
        who: Who,
        state: Conversation | None,
        enqueue: Enqueue | None,
    ) -> None:
        self.conn = conn
        self.identity_id = identity_id
        self._who = who
        self._state = state
        self._world = SqlWorld(conn)
        self._enqueue = enqueue

    @property
    def who(self) -> Who:
        return self._who

    @property
    def state(self) -> Conversation | None:
        return self._state

    @property
    def world(self) -> SqlWorld:
        return self._world

    def save(self, state: Conversation) -> None:
        now = state.updated_at
        self.conn.execute(
            sa.update(identity)
            .where(identity.c.id == self.identity_id)
            .values(
                state=state.to_json(),
                state_updated_at=now,
                last_inbound_at=now,
                unreachable_at=None,
            )
        )

    def enqueue(self, outbound: Outbound) -> None:
        if self._enqueue is None:
            raise RuntimeError("this store was built without an outbox")
        self._enqueue(self.conn, outbound)


class SqlConversationStore:
    """Implements bot.runtime.ConversationStore over SQLite or PostgreSQL."""

    def __init__(self, engine: Engine, enqueue: Enqueue | None = None) -> None:
        self.engine = engine
        self.enqueue = enqueue
        self._select = _SELECT_IDENTITY
        if engine.dialect.name == "postgresql":
            self._select = _SELECT_IDENTITY.with_for_update(of=identity)

    @contextmanager
    def open_turn(self, inbound: Inbound) -> Iterator[SqlTurnSession | None]:
        with db.write(self.engine) as conn:
            if inbound.provider_id and not self._first_delivery(conn, inbound):
                yield None
                return
            row = self._identity(conn, inbound)
            who = Who(
                citizen_id=row.citizen_id,
                channel=inbound.channel,
                phone=row.phone,
                phone_verified=bool(row.phone_verified),
                country=row.country,
                lang=row.lang,
                opted_out=bool(row.opted_out),
            )
            state = Conversation.from_json(row.state)
            yield SqlTurnSession(conn, row.id, who, state, self.enqueue)

    @staticmethod
    def _first_delivery(conn: Connection, inbound: Inbound) -> bool:
        result = conn.execute(
            _insert_ignoring_conflicts(conn, inbound_message).values(
                channel=inbound.channel,
                provider_id=inbound.provider_id[:64],
                received_at=inbound.now,
            )
        )
        return result.rowcount == 1

    def _identity(self, conn: Connection, inbound: Inbound) -> sa.Row[Any]:
        params = {"channel": inbound.channel, "address": inbound.address}
        row = conn.execute(self._select, params).first()
        if row is not None:
            return row
        try:
            with conn.begin_nested():
                citizen_id = self._citizen_for(conn, inbound)
                conn.execute(
                    sa.insert(identity).values(
                        channel=inbound.channel, address=inbound.address, citizen_id=citizen_id
                    )
                )
        except IntegrityError:
            pass  # created by a concurrent first message: read it below
        row = conn.execute(self._select, params).first()
        if row is None:
            raise RuntimeError("channel identity vanished")
        return row

    @staticmethod
    def _citizen_for(conn: Connection, inbound: Inbound) -> int:
        """The citizen who owns this verified number, or a new one."""
        if inbound.phone and inbound.phone_verified:
            found = conn.execute(
                sa.select(citizen.c.id).where(
                    citizen.c.phone == inbound.phone, citizen.c.phone_verified.is_(True)
                )
            ).scalar()
            if found is not None:
                return int(found)
        result = conn.execute(
            sa.insert(citizen).values(
                phone=inbound.phone,
                phone_verified=bool(inbound.phone and inbound.phone_verified),
                country=country_of(inbound.phone),
                lang=inbound.lang,
                created_at=inbound.now,
            )
        )
        return int(result.inserted_primary_key[0])
