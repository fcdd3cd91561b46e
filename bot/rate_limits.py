"""Rate limits per channel for the outbox sender (bot.outbox): in one process
(`LocalRateLimiter`) or shared by every worker through Redis (`RedisRateLimiter`).

Both follow one rule (`_Limit`): never more calls reach the provider within a window than it
allows, as the provider counts them (on arrival), whatever the network's jitter; a provider's
"slow down" pauses the whole channel (`pause`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

# How long the limiter waits for a provider's answer before it assumes the call has reached
# the provider anyway (a call that hangs must not stall the channel for ever).
PATIENCE = 2.0
# While a slot waits for an answer, look again this often (seconds).
ANSWER_POLL = 0.01
# Seconds, for connecting to Redis and for each of its answers: never wait on Redis for ever
# (a Redis that is stopped refuses at once; only one that hangs takes this long before the
# senders fall back to their shares, bot.fallback_limiter). Not shorter: a busy machine must
# not take a slow answer for an outage.
REDIS_TIMEOUT = 5.0


# -- rate limits --------------------------------------------------------------------------------


class Permit(Protocol):
    async def done(self) -> None:
        """The provider has answered this message's call."""
        ...


class RateLimiter(Protocol):
    async def acquire(self, channel: str) -> Permit:
        """Wait for this channel's next sending slot; call `done()` on the permit when the
        provider has answered."""
        ...

    async def pause(self, channel: str, seconds: float) -> None:
        """No slot for this channel during `seconds` (the provider said so)."""
        ...

    async def close(self) -> None: ...


class _NoPermit:
    async def done(self) -> None:
        return None


@dataclass
class _Send:
    """One message's slot: when its call started and when the provider answered."""

    start: float
    clock: Callable[[], float]
    end: float | None = None

    async def done(self) -> None:
        if self.end is None:
            self.end = self.clock()

    def reached_by(self) -> float:
        """When the call had surely reached the provider: by its answer, and at the latest
        (for a call that hangs) PATIENCE after it started."""
        latest = self.start + PATIENCE
        return latest if self.end is None else min(self.end, latest)


class _Limit:
    """At most `count` calls in any `window` seconds (`count / window` = the rate), as the
    provider counts them: on arrival.

    Calls are spaced `1/rate` apart, and a call starts only `window` seconds after the answer
    to every call `count` or more places before it. A call reaches the provider before its
    answer comes back, so no `count + 1` calls can ever arrive within one window, whatever
    the network's jitter or the order in which concurrent calls arrive: no 429 is provoked.
    The price is the answers' latency, once per window: with local answers in 5 ms the rate
    is 99.5% of the limit, with 150 ms answers 87%.
    """

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.count = max(1, math.floor(rate))
        self.window = self.count / rate
        self.sends: deque[_Send] = deque()
        # The previous call's slot: spacing counts from it, not from when that call actually
        # started, so that late wake-ups do not add up (the window rule keeps it safe).
        self.slot = -math.inf

    def next_start(self, now: float) -> tuple[float, bool]:
        """The earliest start for the next call, and whether it waits for an answer."""
        sends = self.sends
        # forget what can no longer matter (keeping the last count - 1 calls)
        while len(sends) >= self.count and sends[0].reached_by() + self.window <= now:
            sends.popleft()
        at = self.slot + self.interval
        waiting = False
        for index in range(len(sends) - self.count + 1):
            call = sends[index]
            bound = call.reached_by() + self.window
            if bound > at:
                at, waiting = bound, call.end is None and now < call.start + PATIENCE
        return at, waiting

    def take(self, at: float, now: float, clock: Callable[[], float]) -> _Send:
        """Record a call starting `now` in the slot due at `at`: a wake-up late by less than
        a slot keeps the schedule; after an idle time the schedule starts again from now."""
        self.slot = at if now - at < self.interval else now
        send = _Send(now, clock)
        self.sends.append(send)
        return send


class LocalRateLimiter:
    """Per-channel limits for one worker process (see `_Limit`)."""

    def __init__(
        self, rates: Mapping[str, float], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = {ch: _Limit(rate) for ch, rate in rates.items()}
        self._clock = clock
        self._paused_until: dict[str, float] = {}

    async def acquire(self, channel: str) -> Permit:
        limit = self.limits.get(channel)  # no limit: only pauses apply
        while True:
            now = self._clock()
            at, waiting = limit.next_start(now) if limit is not None else (now, False)
            paused = self._paused_until.get(channel, 0.0)
            if paused > at:
                at, waiting = paused, False
            if at <= now:
                return limit.take(at, now, self._clock) if limit is not None else _NoPermit()
            # then look again: an answer may come sooner, a pause may have begun
            await asyncio.sleep(min(at - now, ANSWER_POLL) if waiting else at - now)

    async def pause(self, channel: str, seconds: float) -> None:
        until = self._clock() + seconds
        self._paused_until[channel] = max(self._paused_until.get(channel, 0.0), until)

    async def close(self) -> None:
        return None


# The same rule as `_Limit`, kept in Redis and computed on Redis' clock, so that every worker
# on every machine shares one schedule per channel. KEYS: the channel's calls (a sorted set:
# call id → start), their answers (a hash: call id → end), its pause end, the previous call's
# slot. ARGV: interval,
# window, patience and answer poll in microseconds, the calls allowed per window, the new
# call's id. Returns 0 when the call may start now (it is recorded), else microseconds to wait.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local patience, poll, count = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local at = 0
local waiting = false
if count > 0 then
  local horizon = string.format('%.0f', now - patience - window)
  local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', horizon)
  local keep_last = redis.call('ZCARD', KEYS[1]) - #old
  for i = 1, #old do
    if keep_last > 0 or i < #old then
      redis.call('ZREM', KEYS[1], old[i])
      redis.call('HDEL', KEYS[2], old[i])
    end
  end
  at = tonumber(redis.call('GET', KEYS[4]) or '0') + interval
  local calls = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  local n = #calls / 2
  if n > 0 then
    for i = 1, n - count + 1 do
      local ended = redis.call('HGET', KEYS[2], calls[2 * i - 1])
      local latest = tonumber(calls[2 * i]) + patience
      local reached = latest
      if ended then reached = math.min(tonumber(ended), latest) end
      if reached + window > at then
        at = reached + window
        waiting = (not ended) and now < latest
      end
    end
  end
end
local paused = tonumber(redis.call('GET', KEYS[3]) or '0')
if paused > at then
  at = paused
  waiting = false
end
if at > now then
  if waiting then return math.min(at - now, poll) end
  return at - now
end
if count > 0 then
  local ttl = string.format('%d', math.ceil((patience + window) / 1000) + 60000)
  redis.call('ZADD', KEYS[1], string.format('%.0f', now), ARGV[6])
  local slot = now
  if now - at < interval then slot = at end
  redis.call('SET', KEYS[4], string.format('%.0f', slot), 'PX', ttl)
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return 0
"""
# KEYS: the calls, their answers. ARGV: the call id. Records when its answer came.
_DONE = """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  redis.call('HSET', KEYS[2], ARGV[1], string.format('%.0f', now))
end
return 0
"""
# KEYS: the pause end. ARGV: seconds. Extends the pause, never shortens it.
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local till = now + math.floor(tonumber(ARGV[1]) * 1000000)
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if till > current then
  local ttl = string.format('%d', math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
  redis.call('SET', KEYS[1], string.format('%.0f', till), 'PX', ttl)
end
return 0
"""


@dataclass
class _RedisSend:
    limiter: RedisRateLimiter
    channel: str
    call: str

    async def done(self) -> None:
        await self.limiter.done(self.channel, self.call)


class RedisRateLimiter:
    """The limits of `LocalRateLimiter`, shared by every worker through Redis (`REDIS_URL`)."""

    def __init__(self, redis: Any, rates: Mapping[str, float], *, prefix: str = "diaspora") -> None:
        self.redis = redis  # a redis.asyncio.Redis
        self.limits = {ch: _Limit(rate) for ch, rate in rates.items()}
        self.prefix = prefix
        self._acquire = redis.register_script(_ACQUIRE)
        self._done = redis.register_script(_DONE)
        self._pause = redis.register_script(_PAUSE)
        self._ids = itertools.count(1)
        self._me = uuid.uuid4().hex[:12]

    @classmethod
    def from_url(
        cls, url: str, rates: Mapping[str, float], *, prefix: str = "diaspora"
    ) -> RedisRateLimiter:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # A Redis that hangs or is gone must fail fast, so that the senders fall back to their
        # shares at once (bot.fallback_limiter); one immediate retry, on a new connection,
        # so that a connection left broken by a Redis restart is not taken for an outage
        # (a process that falls back while the others still share Redis would add its share
        # to their full rate).
        redis = Redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT,
            socket_connect_timeout=REDIS_TIMEOUT,
            retry=Retry(NoBackoff(), 1),
        )
        return cls(redis, rates, prefix=prefix)

    def _keys(self, channel: str) -> list[str]:
        base = f"{self.prefix}:rate:{channel}"
        return [f"{base}:calls", f"{base}:answers", f"{base}:pause", f"{base}:slot"]

    async def acquire(self, channel: str) -> Permit:
        limit = self.limits.get(channel)
        args: list[int | str] = [0, 0, 0, 0, 0]
        if limit is not None:
            args = [
                int(limit.interval * 1e6),
                int(limit.window * 1e6),
                int(PATIENCE * 1e6),
                int(ANSWER_POLL * 1e6),
                limit.count,
            ]
        call = f"{self._me}:{next(self._ids)}"
        while True:
            wait_us = int(await self._acquire(keys=self._keys(channel), args=[*args, call]))
            if wait_us <= 0:
                return _RedisSend(self, channel, call) if limit is not None else _NoPermit()
            await asyncio.sleep(wait_us / 1_000_000)

    async def done(self, channel: str, call: str) -> None:
        with contextlib.suppress(Exception):  # a lost answer time only costs a little rate
            await self._done(keys=self._keys(channel)[:2], args=[call])

    async def pause(self, channel: str, seconds: float) -> None:
        await self._pause(keys=[self._keys(channel)[2]], args=[seconds])

    async def close(self) -> None:
        await self.redis.aclose()
