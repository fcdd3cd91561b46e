"""The shared limits when Redis goes away (bot.fallback_limiter), against a stand-in for the
Redis limiter that can be made to fail; the real Redis stopped mid-broadcast is in
tests/test_faults.py."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import pytest

from bot.fallback_limiter import PROBE_INTERVAL, FallbackRateLimiter
from bot.rate_limits import Permit, RedisRateLimiter


class _Permit:
    async def done(self) -> None:
        return None


class FlakyShared:
    """What FallbackRateLimiter uses of RedisRateLimiter; `down` makes every call fail."""

    def __init__(self) -> None:
        self.down = False
        self.acquired = 0
        self.pauses: list[tuple[str, float]] = []
        self.redis = self

    async def ping(self) -> bool:
        if self.down:
            raise ConnectionError("redis is away")
        return True

    async def acquire(self, channel: str) -> Permit:
        await self.ping()
        self.acquired += 1
        return _Permit()

    async def pause(self, channel: str, seconds: float) -> None:
        await self.ping()
        self.pauses.append((channel, seconds))

    async def close(self) -> None:
        return None


def _limiter(shared: FlakyShared, guard: float = 0.2) -> FallbackRateLimiter:
    rates = {"whatsapp": 40.0, "telegram": 20.0}
    return FallbackRateLimiter(cast(RedisRateLimiter, shared), rates, 2, guard=guard)


def test_the_shared_schedule_while_redis_answers() -> None:
    shared = FlakyShared()
    limiter = _limiter(shared)

    async def scenario() -> None:
        for _ in range(5):
            await limiter.acquire("whatsapp")

    asyncio.run(scenario())
    assert (shared.acquired, limiter.degraded, limiter.fallbacks) == (5, False, 0)


def test_redis_away_each_process_keeps_to_its_share_after_a_quiet_time() -> None:
    shared = FlakyShared()
    limiter = _limiter(shared, guard=0.2)
    starts: list[float] = []

    async def scenario() -> float:
        shared.down = True
        failed_at = time.monotonic()
        for _ in range(11):
            await limiter.acquire("whatsapp")
            starts.append(time.monotonic())
        return failed_at

    failed_at = asyncio.run(scenario())
    assert limiter.degraded
    assert limiter.fallbacks == 1
    assert shared.acquired == 0
    assert starts[0] - failed_at >= 0.2  # the quiet time: the last shared slots age out
    # 40/s shared by 2 processes: 20/s here, 11 slots 10 intervals apart in all (a late
    # wake-up keeps the schedule, so the first start may be up to one interval late).
    assert starts[-1] - starts[0] >= 9 / 20 - 0.01
    assert limiter.shares == {"whatsapp": 20.0, "telegram": 10.0}


def test_back_to_the_shared_schedule_behind_a_shared_pause() -> None:
    shared = FlakyShared()
    limiter = _limiter(shared, guard=0.2)

    async def scenario() -> None:
        shared.down = True
        await limiter.acquire("telegram")
        shared.down = False
        await asyncio.sleep(PROBE_INTERVAL)
        await limiter.acquire("telegram")

    asyncio.run(scenario())
    assert not limiter.degraded
    assert shared.acquired == 1
    # Every channel paused in Redis for the quiet time, for every process, before slots resume.
    assert sorted(shared.pauses) == [("telegram", 0.2), ("whatsapp", 0.2)]


def test_a_pause_asked_while_redis_is_away_holds_locally() -> None:
    shared = FlakyShared()
    limiter = _limiter(shared, guard=0.0)

    async def scenario() -> float:
        shared.down = True
        await limiter.pause("whatsapp", 0.3)
        asked = time.monotonic()
        await limiter.acquire("whatsapp")
        return time.monotonic() - asked

    waited = asyncio.run(scenario())
    assert limiter.degraded
    assert waited >= 0.3 - 0.01


@pytest.mark.parametrize("processes", [1, 3])
def test_the_share_divides_each_limit(processes: int) -> None:
    limiter = FallbackRateLimiter(
        cast(RedisRateLimiter, cast(Any, FlakyShared())), {"whatsapp": 80.0}, processes
    )
    assert limiter.shares == {"whatsapp": 80.0 / processes}
