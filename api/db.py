"""Engines and transactions, the same on SQLite and PostgreSQL.

SQLite runs in WAL mode; a write transaction starts with `BEGIN IMMEDIATE`, so that two
writers queue on the database lock instead of failing halfway (busy_timeout waits).

A transaction can be *joined* (`joining`): within it, `write` and `read` on the same engine
use its connection, a write in a savepoint of its own, instead of a transaction of their
own. api.group_commit does this for the turns of one event-loop pass on SQLite, which then
share one commit; api.turn_batches for a batch of turns on PostgreSQL, without savepoints (a
part that fails spoils the whole transaction: `Spoiled`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine

PG_CONNECT_TIMEOUT = 10  # seconds


def create_engine(url: URL, **kw: Any) -> Engine:
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, **kw)
    kw.setdefault("pool_size", 10)
    kw.setdefault("max_overflow", 20)
    kw.setdefault("pool_pre_ping", True)
    kw.setdefault("pool_timeout", 30)  # seconds waiting for a pooled connection
    # A server that does not answer fails the connection instead of hanging the process.
    kw.setdefault("connect_args", {"connect_timeout": PG_CONNECT_TIMEOUT})
    return sa.create_engine(url, **kw)


def _sqlite_engine(url: URL, **kw: Any) -> Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    kw.setdefault("pool_size", 8)
    kw.setdefault("max_overflow", 16)
    engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kw)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        # straight to the driver: every turn begins here, SQLAlchemy's statement path is slower
        conn.connection.dbapi_connection.execute(f"BEGIN {mode}")  # type: ignore[union-attr]

    return engine


def unavailable(exc: BaseException) -> bool:
    """The database could not be reached or went away mid-way (a restart, a failover, a pool
    with no free connection): worth trying again shortly, and nothing was committed."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sa.exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, sa.exc.OperationalError | sa.exc.InterfaceError):
            return True
        if isinstance(current, sa.exc.TimeoutError):  # no connection free in the pool
            return True
        current = current.__cause__ or current.__context__
    return False


def is_sqlite(conn_or_engine: Connection | Engine) -> bool:
    return conn_or_engine.dialect.name == "sqlite"


# The joined transaction of this task or thread, if any, and how many savepoints deep it is.
_joined: ContextVar[tuple[Connection, int] | None] = ContextVar("joined", default=None)


class Spoiled(Exception):
    """A block of a transaction joined without savepoints failed: the whole transaction is to
    be rolled back (api.turn_batches then runs each of its parts again on its own)."""


class _Unsaved:
    """A joined transaction whose blocks have no savepoints of their own (`joining(conn,
    savepoints=False)`): one that fails spoils it all."""

    def __init__(self) -> None:
        self.spoiled = False


# The savepoint-free joined transaction of this task or thread, if any.
_unsaved: ContextVar[_Unsaved | None] = ContextVar("unsaved", default=None)


@contextmanager
def joining(conn: Connection, *, savepoints: bool = True) -> Iterator[None]:
    """Within it, `write(engine)` and `read(engine)` of `conn`'s engine join `conn`'s open
    transaction (in this task or thread only). Each `write` is a savepoint of it, or, with
    `savepoints=False`, a part of it that, failing, spoils it: `Spoiled` is raised when the
    block ends (each savepoint is two more round trips: PostgreSQL's turns of a batch take the
    whole batch back instead, rarely)."""
    token = _joined.set((conn, 0))
    unsaved = _Unsaved() if not savepoints else None
    unsaved_token = _unsaved.set(unsaved)
    try:
        yield
    finally:
        _unsaved.reset(unsaved_token)
        _joined.reset(token)
    if unsaved is not None and unsaved.spoiled:
        raise Spoiled


def aborted(conn: Connection) -> bool:
    """PostgreSQL refused a statement of this transaction (an error someone caught): it takes
    no more statements, and its COMMIT would roll it back without a word."""
    info = getattr(conn.connection.driver_connection, "info", None)
    if info is None or not hasattr(info, "transaction_status"):
        return False  # SQLite
    from psycopg.pq import TransactionStatus

    return bool(info.transaction_status == TransactionStatus.INERROR)


def _joined_for(engine: Engine) -> tuple[Connection, int] | None:
    joined = _joined.get()
    return joined if joined is not None and joined[0].engine is engine else None


@contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """A write transaction: BEGIN IMMEDIATE on SQLite, an ordinary one on PostgreSQL; in a
    joined transaction, a savepoint of it (undone alone when the block fails), or a part of
    it that spoils it when it fails (`joining(…, savepoints=False)`)."""
    joined = _joined_for(engine)
    unsaved = _unsaved.get()
    if joined is not None and unsaved is not None:
        try:
            yield joined[0]
        except BaseException:
            unsaved.spoiled = True
            raise
        return
    if joined is not None:
        with _savepoint(*joined) as conn:
            yield conn
        return
    with engine.connect() as conn:
        conn = conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            yield conn


@contextmanager
def _savepoint(conn: Connection, depth: int) -> Iterator[Connection]:
    # Straight to the driver, as the transaction's BEGIN is: this runs for every turn.
    driver = conn.connection.dbapi_connection
    assert driver is not None
    name = f"joined_{depth}"
    token = _joined.set((conn, depth + 1))
    try:
        driver.execute(f"SAVEPOINT {name}")
        try:
            yield conn
        except BaseException:
            driver.execute(f"ROLLBACK TO {name}")
            driver.execute(f"RELEASE {name}")
            raise
        driver.execute(f"RELEASE {name}")
    finally:
        _joined.reset(token)


@contextmanager
def read(engine: Engine) -> Iterator[Connection]:
    """A read transaction; in a joined transaction, that one (it sees what was written)."""
    joined = _joined_for(engine)
    if joined is not None:
        yield joined[0]
        return
    with engine.connect() as conn, conn.begin():
        yield conn
