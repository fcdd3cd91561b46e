"""The shared rate limits when Redis goes away: each process falls back to its share.

`RedisRateLimiter` keeps one schedule per channel for every worker; when Redis does not
answer, no worker can know what the others send. `FallbackRateLimiter` then hands out slots
from an in-process `LocalRateLimiter` at `rate / processes` (`WORKER_COUNT`): the processes
together stay within the provider's limit without talking to each other. It looks for Redis
again every `PROBE_INTERVAL` and goes back to the shared schedule when Redis answers.

The two switches are the moments when slots from the two kinds of schedule could meet in one
provider window, so each is guarded by a quiet time (`guard`: the longest window, plus the
time a call may take to reach the provider, plus one probe interval):
- going to the shares: no local slot before `guard` has passed since Redis failed, so that
  the last shared slots (of every worker) have left the window;
- going back: the worker pauses the channel in Redis for `guard` (a pause shared by all, and
  only ever extended), so that no shared slot starts while a worker that has not noticed yet
  may still take a local one, and until the local ones have left the window.
A Redis outage therefore costs each channel a few seconds of sending twice, and never a
message beyond the limit.

The one case this cannot cover: Redis away for some processes only (a network partition
between one host and Redis). Those send on their shares while the others keep the whole
shared rate, so together they may pass the limit by those shares until the partition ends;
the provider's 429 then pauses the channel (bot.outbox). A connection merely left broken by a
Redis restart is not such a case: the Redis client retries once on a new connection first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from bot.rate_limits import PATIENCE, LocalRateLimiter, Permit, RedisRateLimiter, _Limit

log = logging.getLogger(__name__)

# How often a process in fallback asks whether Redis is back (seconds).
PROBE_INTERVAL = 0.25


class FallbackRateLimiter:
    """Redis' shared schedule while Redis answers; `rate / processes` per process otherwise."""

    def __init__(
        self,
        shared: RedisRateLimiter,
        rates: Mapping[str, float],
        processes: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        guard: float | None = None,
    ) -> None:
        self.shared = shared
        self.processes = max(1, processes)
        self.shares = {ch: rate / self.processes for ch, rate in rates.items()}
        self.clock = clock
        windows = [_Limit(rate).window for rate in self.shares.values()] or [1.0]
        self.guard = guard if guard is not None else max(windows) + PATIENCE + PROBE_INTERVAL
        self.local: LocalRateLimiter | None = None  # set while Redis is away
        self.fallbacks = 0  # how many times Redis went away (for the metrics and tests)
        self._probed_at = -float("inf")

    @property
    def degraded(self) -> bool:
        return self.local is not None

    async def acquire(self, channel: str) -> Permit:
        while True:
            local = self.local
            if local is None:
                try:
                    return await self.shared.acquire(channel)
                except Exception as exc:
                    await self._fall_back(exc)
                    continue
            permit = await local.acquire(channel)
            if await self._redis_is_back():
                continue  # this local slot is not used: nothing was sent in it
            return permit

    async def pause(self, channel: str, seconds: float) -> None:
        if self.local is None:
            try:
                await self.shared.pause(channel, seconds)
                return
            except Exception as exc:
                await self._fall_back(exc)
        if self.local is not None:
            await self.local.pause(channel, seconds)

    async def close(self) -> None:
        await self.shared.close()

    # -- the switches -----------------------------------------------------------------------

    async def _fall_back(self, exc: BaseException) -> None:
        if self.local is not None:
            return
        log.warning(
            "rate limits: Redis does not answer (%s); each process keeps to 1/%d of each limit",
            type(exc).__name__,
            self.processes,
        )
        local = LocalRateLimiter(self.shares, clock=self.clock)
        for channel in self.shares:
            await local.pause(channel, self.guard)
        self.local = local
        self.fallbacks += 1
        self._probed_at = self.clock()

    async def _redis_is_back(self) -> bool:
        now = self.clock()
        if now - self._probed_at < PROBE_INTERVAL:
            return False
        self._probed_at = now
        try:
            await self.shared.redis.ping()
            for channel in self.shares:
                await self.shared.pause(channel, self.guard)
        except Exception:
            return False
        log.warning("rate limits: Redis answers again; back to the shared schedule")
        self.local = None
        return True
