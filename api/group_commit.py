"""Group commit: the turns of one event-loop pass share one SQLite transaction and one commit.

On SQLite a turn runs on the event loop (sub-millisecond work, and SQLite serialises writers
anyway), and its commit — the WAL append, and now and then a checkpoint — costs as much as
the rest of its statements together. Under load, several webhook requests are ready in the
same pass of the loop. The first opens a write transaction (`BEGIN IMMEDIATE`) and asks the
loop to commit it once the tasks already ready have run (`call_soon`: no timer, no added
wait); each of them runs its turn in a savepoint of that transaction (api.db.joining), and
every request is answered only once the commit has succeeded. A turn that fails rolls back
its own savepoint and nothing else; a commit that fails fails every turn of the batch (each
gets the channel's apology or a 503, and nothing of them stays written); the provider's retry
is then processed afresh, as after any failed turn.

One per engine and process (`for_engine`), so that every write the loop makes on SQLite goes
through the same batch: a second transaction opened on the loop while a batch is open would
wait for a lock that only the loop itself can release.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from sqlalchemy.engine import Connection, Engine, RootTransaction

from api import db

T = TypeVar("T")


@dataclass
class _Batch:
    loop: asyncio.AbstractEventLoop
    conn: Connection
    transaction: RootTransaction
    committed: asyncio.Future[None]


class GroupCommit:
    """Runs blocking database work on the event loop, in the pass's shared transaction."""

    _instances: ClassVar[weakref.WeakKeyDictionary[Engine, GroupCommit]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._open: _Batch | None = None

    @classmethod
    def for_engine(cls, engine: Engine) -> GroupCommit:
        found = cls._instances.get(engine)
        if found is None:
            found = cls._instances[engine] = cls(engine)
        return found

    async def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`function(*args, **kwargs)` with its `db.write`/`db.read` joined to the pass's
        transaction; returns once that transaction is committed (raises if it is not)."""
        loop = asyncio.get_running_loop()
        if self._open is not None and self._open.loop is not loop:
            # Another loop, in another thread (tests run apps side by side): its batch commits
            # without this thread's help, so waiting on its lock is safe.
            return function(*args, **kwargs)
        batch = self._open or self._begin(loop)
        with db.joining(batch.conn):
            result = function(*args, **kwargs)
        # Shielded: one request given up (its client gone) must not cancel the others' wait.
        await asyncio.shield(batch.committed)
        return result

    def _begin(self, loop: asyncio.AbstractEventLoop) -> _Batch:
        conn = self.engine.connect().execution_options(sqlite_begin="IMMEDIATE")
        try:
            transaction = conn.begin()
        except BaseException:
            conn.close()
            raise
        batch = _Batch(loop, conn, transaction, loop.create_future())
        self._open = batch
        loop.call_soon(self._commit, batch)
        return batch

    def _commit(self, batch: _Batch) -> None:
        self._open = None
        try:
            batch.transaction.commit()
        except Exception as exc:
            # the connection may be gone: nothing was committed either way
            with contextlib.suppress(Exception):
                batch.transaction.rollback()
            batch.committed.set_exception(exc)
            batch.committed.exception()  # retrieved here: every waiter re-raises it
        else:
            batch.committed.set_result(None)
        finally:
            batch.conn.close()
