"""The conversation store: one turn's transaction, as the runtime (bot.runtime) asks for it.

This is the hot path of every message, written for it: three driver-level statements of
our own per turn — the dedupe insert, one read of the identity, its citizen and whether
anyone on that number ever had an appointment (row-locked on PostgreSQL), one state update
(which also carries the sender's flood count, bot.runtime) — plus what the flow itself asks,
all in one transaction; and once per conversation (a first message, or the first after 30
minutes of silence) a `conversation_start` row for the dashboard. A first contact adds the
citizen and the identity, conflict-free (`ON CONFLICT DO NOTHING`). "Never booked" lets
api.world answer a first-time booker's fair-access and upcoming-appointment questions
without a query.
Statements are plain SQL prepared once per dialect, not ORM or Core expressions built anew.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection, Engine

from api import db
from api.domain.citizens import country_of
from api.domain.identities import link_verified_phone
from api.world import NetworkCache, SqlWorld
from bot.runtime import FLOOD_WINDOW, Inbound, Outbound, StoreUnavailable
from flows.engine import IDLE_TIMEOUT, Who
from flows.state import Conversation

Enqueue = Callable[[Connection, Outbound], None]


class _Sql:
    """The hot path's statements for one dialect (named parameters: `:name`)."""

    DEDUPE = (
        "INSERT INTO inbound_message (channel, provider_id, received_at) "
        "VALUES (:channel, :provider_id, :now) ON CONFLICT DO NOTHING"
    )
    IDENTITY = (
        "SELECT ci.id, ci.citizen_id, ci.state, c.phone, c.phone_verified, c.country, c.lang, "
        "c.opted_out, ci.burst_started_at, ci.burst_count, c.voice, "
        # whether this citizen, or anyone on their number, ever had an appointment (api.world)
        "EXISTS (SELECT 1 FROM appointment a WHERE a.citizen_id = c.id) "
        "OR EXISTS (SELECT 1 FROM citizen p JOIN appointment a ON a.citizen_id = p.id "
        "WHERE p.phone = c.phone) "
        "FROM channel_identity ci JOIN citizen c ON c.id = ci.citizen_id "
        "WHERE ci.channel = :channel AND ci.address = :address"
    )
    SAVE = (
        "UPDATE channel_identity SET state = :state, state_updated_at = :now, "
        "last_inbound_at = :now, unreachable_at = NULL, "
        "burst_started_at = :burst_at, burst_count = :burst WHERE id = :id"
    )
    STARTED = (
        "INSERT INTO conversation_start (channel, lang, citizen_id, started_at) "
        "VALUES (:channel, :lang, :citizen_id, :now)"
    )
    OWNER = "SELECT id FROM citizen WHERE phone = :phone AND phone_verified"
    NEW_CITIZEN = (
        "INSERT INTO citizen (phone, phone_verified, country, lang, opted_out, created_at) "
        "VALUES (:phone, :verified, :country, :lang, FALSE, :now) "
        "ON CONFLICT DO NOTHING RETURNING id"
    )
    NEW_IDENTITY = (
        "INSERT INTO channel_identity (channel, address, citizen_id, burst_count) "
        "VALUES (:channel, :address, :citizen_id, 0) ON CONFLICT DO NOTHING"
    )
    DROP_CITIZEN = "DELETE FROM citizen WHERE id = :id"
    SKIP = (
        "UPDATE channel_identity SET burst_started_at = :burst_at, burst_count = :burst "
        "WHERE id = :id"
    )

    def __init__(self, dialect: str) -> None:
        self.postgres = dialect == "postgresql"
        identity_sql = self.IDENTITY + (" FOR UPDATE OF ci" if self.postgres else "")
        # PostgreSQL: the dedupe insert and the identity's read in one statement (one round
        # trip less a turn); its first column says whether the message is new, the identity's
        # follow (NULLs when there is none yet). SQLite has no INSERT in a WITH.
        self.first_and_identity = (
            self._native(
                "WITH fresh AS (" + self.DEDUPE + " RETURNING 1) "
                "SELECT EXISTS (SELECT 1 FROM fresh), known.* FROM (SELECT 1) AS one "
                "LEFT JOIN LATERAL (" + identity_sql + ") AS known ON TRUE"
            )
            if self.postgres
            else None
        )
        save_sql = (
            self.SAVE.replace(":state", "CAST(:state AS JSON)") if self.postgres else self.SAVE
        )
        self.dedupe = self._native(self.DEDUPE)
        self.identity = self._native(identity_sql)
        self.save = self._native(save_sql)
        self.skip = self._native(self.SKIP)
        self.started = self._native(self.STARTED)
        self.owner = self._native(self.OWNER)
        self.new_citizen = self._native(self.NEW_CITIZEN)
        self.new_identity = self._native(self.NEW_IDENTITY)
        self.drop_citizen = self._native(self.DROP_CITIZEN)

    def _native(self, sql: str) -> str:
        """`:name` is sqlite3's named style; psycopg wants `%(name)s`."""
        if not self.postgres:
            return sql
        import re

        return re.sub(r"(?<!:):([a-z_]+)", r"%(\1)s", sql)

    @staticmethod
    def execute(conn: Connection, sql: str, params: dict[str, Any]) -> Any:
        """Straight to the driver, inside the connection's current transaction: the hot path
        skips SQLAlchemy's per-statement work (about 30 µs a statement)."""
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(sql, params)
        return cursor

    def when(self, moment: datetime) -> Any:
        """A UTC instant as the UTCDateTime column stores it (naive UTC)."""
        naive = moment.astimezone(UTC).replace(tzinfo=None)
        return naive if self.postgres else naive.isoformat(sep=" ", timespec="microseconds")

    @staticmethod
    def instant(raw: Any) -> datetime | None:
        """A UTCDateTime column as the driver returns it (naive UTC, or its text on SQLite)."""
        if raw is None:
            return None
        moment = raw if isinstance(raw, datetime) else datetime.fromisoformat(str(raw))
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment

    @staticmethod
    def state(raw: Any) -> dict[str, Any] | None:
        if raw is None or isinstance(raw, dict):
            return raw
        loaded = json.loads(raw)
        return loaded if isinstance(loaded, dict) else None


class SqlTurnSession:
    def __init__(
        self,
        conn: Connection,
        sql: _Sql,
        identity_id: int,
        who: Who,
        state: Conversation | None,
        world: SqlWorld,
        enqueue: Enqueue | None,
        burst: tuple[datetime, int],
    ) -> None:
        self.conn = conn
        self._burst_at, self._burst = burst
        self.sql = sql
        self.identity_id = identity_id
        self._who = who
        self._state = state
        self._world = world
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

    @property
    def burst(self) -> int:
        return self._burst

    def _burst_params(self) -> dict[str, Any]:
        return {"burst_at": self.sql.when(self._burst_at), "burst": self._burst}

    def save(self, state: Conversation) -> None:
        now = self.sql.when(state.updated_at or datetime.now(UTC))
        params = {"state": json.dumps(state.to_json()), "now": now, "id": self.identity_id}
        self.sql.execute(self.conn, self.sql.save, {**params, **self._burst_params()})
        before = self._state.updated_at if self._state is not None else None
        if before is None or state.updated_at is None or state.updated_at - before >= IDLE_TIMEOUT:
            started = {
                "channel": self._who.channel,
                "lang": (state.lang or self._who.lang or "fr")[:8],
                "citizen_id": self._who.citizen_id,
                "now": now,
            }
            self.sql.execute(self.conn, self.sql.started, started)

    def skip(self) -> None:
        self.sql.execute(self.conn, self.sql.skip, {"id": self.identity_id, **self._burst_params()})

    def enqueue(self, outbound: Outbound) -> None:
        if self._enqueue is None:
            raise RuntimeError("this store was built without an outbox")
        self._enqueue(self.conn, outbound)


class SqlConversationStore:
    """Implements bot.runtime.ConversationStore over SQLite or PostgreSQL."""

    def __init__(
        self, engine: Engine, enqueue: Enqueue | None = None, cache: NetworkCache | None = None
    ) -> None:
        self.engine = engine
        self.enqueue = enqueue
        self.cache = cache or NetworkCache()
        self.sql = _Sql(engine.dialect.name)

    @contextmanager
    def open_turn(self, inbound: Inbound) -> Iterator[SqlTurnSession | None]:
        try:
            with self._turn(inbound) as session:
                yield session
        except Exception as exc:
            if db.unavailable(exc):
                raise StoreUnavailable from exc
            raise

    @contextmanager
    def _turn(self, inbound: Inbound) -> Iterator[SqlTurnSession | None]:
        with db.write(self.engine) as conn:
            known = None
            if inbound.provider_id and self.sql.first_and_identity is not None:
                first, known = self._first_and_identity(conn, inbound)
                if not first:
                    yield None
                    return
            elif inbound.provider_id and not self._first_delivery(conn, inbound):
                yield None
                return
            row = self._identity(conn, inbound, known)
            who = Who(
                citizen_id=row[1],
                channel=inbound.channel,
                phone=row[3],
                phone_verified=bool(row[4]),
                country=row[5],
                lang=row[6],
                opted_out=bool(row[7]),
                voice=None if row[10] is None else bool(row[10]),
            )
            state = Conversation.from_json(self.sql.state(row[2]))
            world = SqlWorld(conn, self.cache, unbooked=None if row[11] else row[1])
            burst = _count(self.sql.instant(row[8]), row[9] or 0, inbound.now)
            yield SqlTurnSession(conn, self.sql, row[0], who, state, world, self.enqueue, burst)

    def _dedupe_params(self, inbound: Inbound) -> dict[str, Any]:
        return {
            "channel": inbound.channel,
            "provider_id": (inbound.provider_id or "")[:64],
            "now": self.sql.when(inbound.now),
        }

    def _first_delivery(self, conn: Connection, inbound: Inbound) -> bool:
        params = self._dedupe_params(inbound)
        inserted: int = self.sql.execute(conn, self.sql.dedupe, params).rowcount
        return inserted == 1

    def _first_and_identity(self, conn: Connection, inbound: Inbound) -> tuple[bool, Any]:
        """Whether this is the message's first delivery (recorded if so), and the sender's
        identity row if it has one (PostgreSQL's one statement for both)."""
        params = {**self._dedupe_params(inbound), "address": inbound.address}
        row = self.sql.execute(conn, self.sql.first_and_identity or "", params).fetchone()
        return bool(row[0]), (row[1:] if row[1] is not None else None)

    def _identity(self, conn: Connection, inbound: Inbound, known: Any = None) -> Any:
        """The sender's identity row (`known` when already read), made on first contact."""
        params = {"channel": inbound.channel, "address": inbound.address}
        row = (
            known
            if known is not None
            else self.sql.execute(conn, self.sql.identity, params).fetchone()
        )
        if row is not None and inbound.phone_verified and inbound.phone and not row[4]:
            # An identity made at the desk for a walk-in's number (api.domain.walk_ins): its
            # first message from the provider vouches for the number.
            link_verified_phone(conn, inbound.channel, inbound.address, inbound.phone, inbound.now)
            row = self.sql.execute(conn, self.sql.identity, params).fetchone()
        if row is not None:
            return row
        self._first_contact(conn, inbound)
        row = self.sql.execute(conn, self.sql.identity, params).fetchone()
        if row is None:
            raise RuntimeError("channel identity vanished")
        return row

    def _first_contact(self, conn: Connection, inbound: Inbound) -> None:
        """The address's identity, for the citizen who owns its verified number or a new one.
        A concurrent first message (the same address, or the same verified number on another
        channel) may win either insert: then its rows are the ones read, and a citizen made
        here for nothing is taken back, all in this transaction."""
        verified = bool(inbound.phone and inbound.phone_verified)
        owner = self._owner(conn, inbound.phone) if verified else None
        created = None
        if owner is None:
            params = {
                "phone": inbound.phone,
                "verified": verified,
                "country": country_of(inbound.phone),
                "lang": inbound.lang,
                "now": self.sql.when(inbound.now),
            }
            found = self.sql.execute(conn, self.sql.new_citizen, params).fetchone()
            if found is not None:
                created = owner = int(found[0])
            else:  # a concurrent first message of this verified number made its citizen
                owner = self._owner(conn, inbound.phone)
        if owner is None:
            raise RuntimeError("the owner of a verified number vanished")
        params = {"channel": inbound.channel, "address": inbound.address, "citizen_id": owner}
        inserted = self.sql.execute(conn, self.sql.new_identity, params).rowcount
        if inserted != 1 and created is not None:
            self.sql.execute(conn, self.sql.drop_citizen, {"id": created})

    def _owner(self, conn: Connection, phone: str | None) -> int | None:
        found = self.sql.execute(conn, self.sql.owner, {"phone": phone}).fetchone()
        return int(found[0]) if found is not None else None


def _count(started: datetime | None, count: int, now: datetime) -> tuple[datetime, int]:
    """The sender's window after this message: a new one when the last has passed."""
    if started is None or not started <= now < started + FLOOD_WINDOW:
        return now, 1
    return started, count + 1
