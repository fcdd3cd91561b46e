"""The outbox sender's loop, one per worker process: claim, wait for the rate limit, send a
few at a time, record each outcome (the design, and what "exactly once" means here: bot.outbox).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot import logs
from bot.outbox import (
    DEFAULT_LEASE,
    LANE_BULK,
    Completion,
    OutboxItem,
    OutboxStore,
    Outcome,
    Sender,
    SendResult,
    SentLookup,
    by_rule,
    reason,
    utcnow,
)
from bot.rate_limits import Permit, RateLimiter

log = logging.getLogger(__name__)

# Messages in flight per channel at once: enough to keep a provider's rate with answers in
# a few hundred milliseconds (80/s × 0.4 s).
DEFAULT_CONCURRENCY = 32
# Outcomes that cannot be recorded (the database is away) are tried again, this often at
# first, then twice as long each time up to the maximum (seconds).
WRITE_RETRY_FIRST = 0.2
WRITE_RETRY_MAX = 5.0


@dataclass
class _Channel:
    sender: Sender
    concurrency: int
    batch: int
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: set[asyncio.Task[None]] = field(default_factory=set)
    # Woken when a message in flight is done: the dispatcher waits on it for a free place
    # (one waiter, not `asyncio.wait` over every task in flight for each message).
    landed: asyncio.Event = field(default_factory=asyncio.Event)

    def done(self, task: asyncio.Task[None]) -> None:
        self.in_flight.discard(task)
        self.landed.set()


class OutboxSender:
    """Sends what the store holds, through the channels' senders, within the rate limits.

    `await sender.run()` until `stop()`; tests may call `drain()` to send everything due once.
    """

    def __init__(
        self,
        store: OutboxStore,
        senders: Sequence[Sender],
        limiter: RateLimiter,
        *,
        worker_id: str | None = None,
        stable_id: bool = False,
        rates: Mapping[str, float] | None = None,
        poll_interval: float = 0.5,
        lease: timedelta = DEFAULT_LEASE,
        concurrency: int = DEFAULT_CONCURRENCY,
        clock: Callable[[], datetime] = utcnow,
        on_outcome: Callable[[OutboxItem, SendResult], None] | None = None,
    ) -> None:
        self.store = store
        self.on_outcome = on_outcome  # metrics: called for every outcome, on the loop
        self.limiter = limiter
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:12]}"
        # One process at a time under this id (WORKER_ID): its claims at start-up are a dead
        # predecessor's and are taken back at once (`OutboxStore.reclaim_own`).
        self.stable_id = stable_id and worker_id is not None
        self.poll_interval = poll_interval
        self.lease = lease
        self.clock = clock
        self.rates = dict(rates or {})
        self.concurrency = concurrency
        self.channels: dict[str, _Channel] = {}
        self.counts: dict[Outcome, int] = dict.fromkeys(Outcome, 0)
        self.found_sent = 0  # in-doubt messages the provider already had: recorded, not resent
        self._completions: asyncio.Queue[Completion] = asyncio.Queue()
        self._stopping = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._running = False
        self._loop: asyncio.AbstractEventLoop | None = None
        for sender in senders:
            self.add_sender(sender)

    def add_sender(self, sender: Sender) -> None:
        """Serve one more channel (e.g. Telegram once it answers at start-up)."""
        rate = self.rates.get(sender.channel)
        # One second's worth per claim: a reply that arrives behind a long broadcast waits
        # at most about a second before it is claimed ahead of the rest.
        batch = max(1, min(500, math.ceil(rate))) if rate else 500
        self.channels[sender.channel] = _Channel(sender, self.concurrency, batch)
        if self._running:
            self._loops.append(asyncio.create_task(self._channel_loop(sender.channel)))

    # -- control ------------------------------------------------------------------------------

    def nudge(self, channel: str | None = None) -> None:
        """Something was just written for `channel` (or any): look now, not at the next poll.
        Safe to call from any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed() and _other_loop(loop):
            loop.call_soon_threadsafe(self._wake, channel)
            return
        self._wake(channel)

    def _wake(self, channel: str | None) -> None:
        for name, state in self.channels.items():
            if channel is None or name == channel:
                state.wake.set()

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed() and _other_loop(loop):
            loop.call_soon_threadsafe(self.stop)
            return
        self._stopping.set()
        self._wake(None)

    async def run(self) -> None:
        """Claim, send and record until `stop()`; then finish the messages in flight."""
        self._running = True
        self._loop = asyncio.get_running_loop()
        if self.stable_id:
            try:
                count = await asyncio.to_thread(
                    self.store.reclaim_own, self.worker_id, self.clock()
                )
            except Exception:  # the database is away: the lease will do it
                log.exception("outbox: could not take back this worker's earlier claims")
            else:
                if count:
                    log.warning("outbox: %d claims of this worker's previous run taken back", count)
        self._loops = [asyncio.create_task(self._channel_loop(name)) for name in self.channels]
        self._loops.append(asyncio.create_task(self._reclaim_loop()))
        writer = asyncio.create_task(self._writer())
        try:
            await self._stopping.wait()
        finally:
            self._stopping.set()
            for state in self.channels.values():
                state.wake.set()
            await asyncio.gather(*self._loops, return_exceptions=True)
            self._running = False
            await self._completions.join()
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def drain(self) -> int:
        """Send every message due now, once, and record the outcomes. Returns how many were
        handed to providers or skipped. For tests and one-shot commands."""
        await asyncio.to_thread(self.store.reclaim_stale, self.clock(), self.lease)
        total = 0
        for name in self.channels:
            while True:
                items = await self._claim(name)
                if not items:
                    break
                total += len(items)
                await self._dispatch(name, items)
                state = self.channels[name]
                if state.in_flight:
                    await asyncio.wait(set(state.in_flight))
                await self._flush()
        return total

    # -- internals ----------------------------------------------------------------------------

    async def _claim(self, channel: str, now: datetime | None = None) -> list[OutboxItem]:
        state = self.channels[channel]
        items = await asyncio.to_thread(
            self.store.claim, self.worker_id, channel, state.batch, now or self.clock()
        )
        return sorted(items, key=lambda i: (i.lane, i.id))

    async def _channel_loop(self, channel: str) -> None:
        state = self.channels[channel]
        # Claims whose answer was lost (the database went away mid-way): they may have been
        # committed all the same. Nothing of them was sent; they are given back once the
        # database answers again, rather than held until their lease runs out.
        lost: list[datetime] = []
        # The next batch, claimed while the tail of this one goes out (see `_prefetch`).
        ahead: tuple[datetime, asyncio.Task[list[OutboxItem]]] | None = None
        while not self._stopping.is_set():
            now, claiming = ahead if ahead is not None else (self.clock(), None)
            ahead = None
            try:
                while lost:
                    await asyncio.to_thread(
                        self.store.release_claim, self.worker_id, channel, lost[0]
                    )
                    lost.pop(0)
                items = await (claiming if claiming is not None else self._claim(channel, now))
            except Exception as exc:  # the database is away: say so once, then keep trying
                if not lost:
                    log.warning("outbox claim failed on %s: %s", channel, type(exc).__name__)
                if not lost or lost[-1] != now:
                    lost.append(now)
                items = []
            else:
                if lost:
                    log.warning("outbox claims work again on %s", channel)
            if items:
                try:
                    split = self._prefetch(channel, items)
                    await self._dispatch(channel, items[:split])
                    if split < len(items):
                        at = self.clock()
                        ahead = (at, asyncio.create_task(self._claim(channel, at)))
                        await self._dispatch(channel, items[split:])
                except Exception:  # the limiter's Redis is down…: the batch was given back
                    log.exception("outbox dispatch failed on %s", channel)
                    await asyncio.sleep(self.poll_interval)
                continue
            state.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.wake.wait(), timeout=self.poll_interval)
        if ahead is not None:  # claimed while stopping: never handed to a provider
            with contextlib.suppress(Exception):
                rest = [i.id for i in await ahead[1]]
                await asyncio.to_thread(self.store.release, self.worker_id, rest)
        await self._settle(channel)

    def _prefetch(self, channel: str, items: list[OutboxItem]) -> int:
        """Where in a claimed batch to claim the next one. A full batch means more is due: the
        next claim (a round trip to the database, long on a busy machine) runs while the tail
        of this one goes out, so that sending never waits for it — without a rate limit, the
        second half of the batch (measured: a claim of 500 takes 40–60 ms on a busy machine,
        the time to send about 250; with only the last `2 × concurrency` as the tail, sending
        waited for claims a quarter of a broadcast's time); under a limit, the last quarter
        second's worth, so that a reply claimed next waits at most about that much longer
        (returns len(items) when there is nothing to claim ahead)."""
        state = self.channels[channel]
        if len(items) < state.batch:
            return len(items)
        rate = self.rates.get(channel)
        tail = math.ceil(rate / 4) if rate else max(2 * state.concurrency, len(items) // 2)
        return max(0, len(items) - tail)

    async def _dispatch(self, channel: str, items: list[OutboxItem]) -> None:
        """Hand the batch to the provider, in order, within the rate and in-flight limits."""
        state = self.channels[channel]
        for index, item in enumerate(items):
            if self._stopping.is_set():
                rest = [i.id for i in items[index:]]
                await asyncio.to_thread(self.store.release, self.worker_id, rest)
                return
            rule = by_rule(item)
            if rule is not None:
                self._record(item, rule)
                continue
            while len(state.in_flight) >= state.concurrency:
                state.landed.clear()
                await state.landed.wait()
            try:
                permit = await self.limiter.acquire(channel)
            except BaseException:
                rest = [i.id for i in items[index:]]
                await asyncio.shield(asyncio.to_thread(self.store.release, self.worker_id, rest))
                raise
            task = asyncio.create_task(self._send_one(state, item, permit))
            state.in_flight.add(task)
            task.add_done_callback(state.done)

    async def _settle(self, channel: str) -> None:
        state = self.channels[channel]
        if state.in_flight:
            await asyncio.wait(set(state.in_flight))
        await self._completions.join()

    async def _send_one(self, state: _Channel, item: OutboxItem, permit: Permit) -> None:
        logs.request_id.set(item.request_id)  # this task's own context
        try:
            result = await self._attempt(state.sender, item)
        except Exception as exc:  # a sender bug or a network error it did not map
            log.warning("send failed on %s: %s", item.channel, type(exc).__name__)
            result = SendResult(Outcome.retry, error=type(exc).__name__, in_doubt=True)
        finally:
            await permit.done()
        if result.outcome is Outcome.throttled:
            await self.limiter.pause(item.channel, result.retry_after or 1.0)
        self._record(item, result)

    async def _attempt(self, sender: Sender, item: OutboxItem) -> SendResult:
        """Send, unless an earlier send of this message may have arrived: then ask the
        provider first, where it can be asked (see the module's note on exactly once)."""
        if item.in_doubt_since is not None and isinstance(sender, SentLookup):
            try:
                provider_id = await sender.find_sent(item)
            except Exception as exc:
                log.warning("outbox: cannot tell whether %d was sent: %r", item.id, exc)
                error = f"unknown whether sent: {type(exc).__name__}"
                return SendResult(Outcome.retry, error=error, in_doubt=True)
            if provider_id is not None:
                self.found_sent += 1
                log.warning("outbox: %d was sent before its worker died (%s)", item.id, provider_id)
                return SendResult.sent(provider_id)
        return await sender.send(item, self.clock())

    def _record(self, item: OutboxItem, result: SendResult) -> None:
        # One line per message; announcements (a million at a time) only at DEBUG.
        level = logging.DEBUG if item.lane >= LANE_BULK else logging.INFO
        if log.isEnabledFor(level):
            log.log(
                level,
                "outbox %d on %s: %s",
                item.id,
                item.channel,
                result.outcome.value,
                extra={
                    "outbox_id": item.id,
                    "channel": item.channel,
                    "lane": item.lane,
                    "outcome": result.outcome.value,
                    "reason": reason(result) or None,
                },
            )
        self.counts[result.outcome] += 1
        if self.on_outcome is not None:
            self.on_outcome(item, result)
        self._completions.put_nowait(Completion(item, result))

    async def _writer(self) -> None:
        """Record outcomes as they come: whatever is waiting goes in one transaction."""
        while True:
            first = await self._completions.get()
            await self._write([first, *self._waiting()])

    async def _flush(self) -> None:
        batch = self._waiting()
        if batch:
            await self._write(batch)

    def _waiting(self) -> list[Completion]:
        batch = []
        while not self._completions.empty():
            batch.append(self._completions.get_nowait())
        return batch

    async def _write(self, batch: list[Completion]) -> None:
        """Record, and while the database does not answer (a restart, a failover) try again
        until it does: a message sent but not recorded would be sent again. Only past the
        lease, when the claims may be someone else's anyway, are the outcomes given up."""
        give_up = time.monotonic() + self.lease.total_seconds()
        delay = WRITE_RETRY_FIRST
        try:
            while True:
                try:
                    await asyncio.to_thread(
                        self.store.complete, self.worker_id, batch, self.clock()
                    )
                    return
                except Exception as exc:
                    if time.monotonic() + delay > give_up:
                        # Unrecorded: the claims expire, the messages are in doubt (see above).
                        log.exception("outbox: could not record %d outcomes", len(batch))
                        return
                    if delay == WRITE_RETRY_FIRST:
                        log.warning(
                            "outbox: cannot record %d outcomes yet (%s); retrying",
                            len(batch),
                            type(exc).__name__,
                        )
                await asyncio.sleep(delay)
                delay = min(delay * 2, WRITE_RETRY_MAX)
        finally:
            for _ in batch:
                self._completions.task_done()

    async def _reclaim_loop(self) -> None:
        every = max(1.0, self.lease.total_seconds() / 4)
        while not self._stopping.is_set():
            try:
                count = await asyncio.to_thread(self.store.reclaim_stale, self.clock(), self.lease)
                if count:
                    log.warning("outbox: %d messages reclaimed from dead workers", count)
            except Exception:
                log.exception("outbox: reclaim failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=every)

    async def close(self) -> None:
        for state in self.channels.values():
            await state.sender.close()
        await self.limiter.close()


def _other_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is not loop
    except RuntimeError:
        return True
