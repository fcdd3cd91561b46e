"""Turn batches: on PostgreSQL, the turns that arrive while earlier ones are running wait
for a thread together, then run on it in one transaction.

A PostgreSQL turn on a thread of its own paid, beside its few statements, for what surrounds
them: a connection checked out and pinged, BEGIN and COMMIT (two more round trips), and a
thread hop whose GIL handoffs cost more than the turn's own Python (measured here: 900 µs of
the server's CPU a turn on 8 threads, against 260 for the same turn on SQLite). Here a call
joins the open batch; the batch starts once the tasks already ready have joined it
(`call_soon`: no timer, no added wait) if one of `THREADS` threads is free, else when one
becomes free; a batch of `MAX_BATCH` calls waits as it is and the next calls open another.
A batch runs on its thread (and its own connection), in one transaction, its calls one after
the other, without savepoints (`db.joining(…, savepoints=False)`); each request is answered
once the commit has succeeded. The busier the threads, the larger the batches and the
cheaper each turn; on a quiet server a batch is one call, run as it would be without them.

Failures. A call that fails — an error of its own, a statement PostgreSQL refused (which
spoils the transaction: PostgreSQL takes no more statements in it), a deadlock with another
process's batch — spoils the batch (`db.Spoiled`): it is rolled back, whole, and each of its
calls runs again on its own, in its own transaction, as it would have without batches; so a
turn that fails still rolls back alone, and the others are answered as if nothing happened.
A commit that fails does the same. A store that is away fails each call on its own run too
(`StoreUnavailable` for the turns: the provider tries again later).

Two turns of one citizen in one batch run one after the other in the same transaction: the
second sees the first's state, as it would have a moment later (a row lock guards the same
across processes, api.conversations).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.engine import Engine

from api import db

log = logging.getLogger(__name__)

T = TypeVar("T")

# Batches running at once, each on a thread and a connection of its own: one runs its
# statements while the others wait for the server's answers (measured with bench.turns: 1
# thread 1,490 turns/s, 2 1,520, 3 1,700–1,770, 4 and 6 1,470–1,480).
THREADS = 3
# Calls in one batch at most: a batch's last turn waits for all the others (bench.turns, at
# half the throughput: p99 66 ms with batches of up to 64, 21 ms with 16, the same turns/s).
MAX_BATCH = 16


@dataclass
class _Call:
    function: Callable[[], Any]
    future: asyncio.Future[Any]


@dataclass
class _Batch:
    calls: list[_Call] = field(default_factory=list)


class TurnBatches:
    """Runs blocking database work of the event loop in batches, on a few threads."""

    def __init__(self, engine: Engine, threads: int = THREADS) -> None:
        self.engine = engine
        self.threads = threads
        self._open: _Batch | None = None
        self._running = 0  # batches on their threads
        self._full: list[_Batch] = []  # batches of MAX_BATCH calls, waiting for a thread
        self._starting = False  # a start is scheduled on the loop

    async def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`function(*args, **kwargs)` with its `db.write`/`db.read` joined to its batch's
        transaction; returns once that transaction is committed (raises what the call raised
        when it ran on its own)."""
        loop = asyncio.get_running_loop()
        call = _Call(functools.partial(function, *args, **kwargs), loop.create_future())
        if self._open is not None and len(self._open.calls) >= MAX_BATCH:
            self._full.append(self._open)  # it waits for a thread as it is; a new one opens
            self._open = None
        if self._open is None:
            self._open = _Batch()
        self._open.calls.append(call)
        self._start_soon(loop)
        # Shielded: one request given up (its client gone) must not cancel the others' batch.
        result: T = await asyncio.shield(call.future)
        return result

    def _start_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the waiting batches once the tasks already ready have joined them — when a
        thread is free; else the first batch to finish starts them."""
        if self._running < self.threads and not self._starting:
            self._starting = True
            loop.call_soon(self._start, loop)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._starting = False
        while self._running < self.threads:
            if self._full:
                batch = self._full.pop(0)
            elif self._open is not None:
                batch, self._open = self._open, None
            else:
                return
            self._running += 1
            loop.create_task(self._execute_on_thread(loop, batch)).add_done_callback(_retrieved)

    async def _execute_on_thread(self, loop: asyncio.AbstractEventLoop, batch: _Batch) -> None:
        try:
            outcomes = await asyncio.to_thread(self._execute, batch)
        except BaseException as exc:  # the loop shuts down…: nobody waits forever
            for call in batch.calls:
                if not call.future.done():
                    call.future.set_exception(RuntimeError(f"turn batch lost: {exc!r}"))
            raise
        finally:
            self._running -= 1
            if self._open is not None or self._full:
                self._start_soon(loop)
        for call, (ok, value) in zip(batch.calls, outcomes, strict=True):
            if call.future.done():
                continue
            if ok:
                call.future.set_result(value)
            else:
                call.future.set_exception(value)

    def _execute(self, batch: _Batch) -> list[tuple[bool, Any]]:
        """On a thread: the batch in one transaction; else each call on its own."""
        if len(batch.calls) > 1:
            try:
                return self._together(batch)
            except Exception as exc:
                if not isinstance(exc, db.Spoiled):
                    log.warning("turn batch failed (%s): its calls run alone", type(exc).__name__)
        return [_alone(call) for call in batch.calls]

    def _together(self, batch: _Batch) -> list[tuple[bool, Any]]:
        results: list[tuple[bool, Any]] = []
        with self.engine.connect() as conn, conn.begin():
            for call in batch.calls:
                with db.joining(conn, savepoints=False):
                    results.append((True, call.function()))
                if db.aborted(conn):  # a refused statement whose error a call caught
                    raise db.Spoiled
        return results


def _alone(call: _Call) -> tuple[bool, Any]:
    try:
        return True, call.function()
    except Exception as exc:
        return False, exc


def _retrieved(task: asyncio.Task[None]) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        if task.exception() is not None:
            log.error("turn batch lost", exc_info=task.exception())
