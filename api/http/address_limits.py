"""Limits per client address, in this process: the simulator's messages and new users, the
console's failed logins.

Each limit is a sliding log of the last `count` events per address within `window` seconds,
so an address gets at most `count` in any window. Memory is bounded: at most
`max_addresses` addresses are remembered, the least recently seen forgotten first. The limits
are per process (a deployment of N `serve` processes allows N times as much): they are there
to hold off a script from one address, not to count exactly. Behind a reverse proxy, the
client address is the proxy's unless uvicorn trusts its `X-Forwarded-For`
(`FORWARDED_ALLOW_IPS`, see the README).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import Request


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class AddressLimit:
    """At most `count` events per `window` seconds per address (`count` 0: no limit)."""

    def __init__(
        self,
        count: int,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = 10_000,
    ) -> None:
        self.count = count
        self.window = window
        self._clock = clock
        self._max = max_addresses
        self._events: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def wait(self, address: str) -> int:
        """Seconds before this address may go on (0: now), without counting an event."""
        if self.count <= 0:
            return 0
        with self._lock:
            events = self._recent(address, self._clock())
            if len(events) < self.count:
                return 0
            return max(1, math.ceil(events[0] + self.window - self._clock()))

    def hit(self, address: str) -> int:
        """Count one event; 0 when it was allowed, else the seconds to wait (not counted)."""
        if self.count <= 0:
            return 0
        with self._lock:
            now = self._clock()
            events = self._recent(address, now)
            if len(events) >= self.count:
                return max(1, math.ceil(events[0] + self.window - now))
            events.append(now)
            return 0

    def _recent(self, address: str, now: float) -> deque[float]:
        events = self._events.get(address)
        if events is None:
            events = self._events[address] = deque()
            while len(self._events) > self._max:
                self._events.popitem(last=False)
        else:
            self._events.move_to_end(address)
        while events and events[0] <= now - self.window:
            events.popleft()
        return events


@dataclass
class DistinctLimit:
    """At most `count` distinct keys (simulator users) per address within `window` seconds:
    a key already seen in the window is always let through."""

    count: int
    window: float
    clock: Callable[[], float] = time.monotonic
    _seen: dict[str, OrderedDict[str, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    max_addresses: int = 10_000

    def hit(self, address: str, key: str) -> int:
        """0 when `key` may go on from `address`, else the seconds to wait."""
        if self.count <= 0:
            return 0
        with self._lock:
            now = self.clock()
            keys = self._seen.pop(address, None) or OrderedDict()
            self._seen[address] = keys  # most recent address last
            while len(self._seen) > self.max_addresses:
                self._seen.pop(next(iter(self._seen)))
            for old, at in list(keys.items()):
                if at > now - self.window:
                    break
                del keys[old]
            if key in keys:
                keys.move_to_end(key)
                keys[key] = now
                return 0
            if len(keys) >= self.count:
                oldest = next(iter(keys.values()))
                return max(1, math.ceil(oldest + self.window - now))
            keys[key] = now
            return 0
