"""The world as flows see it (flows.world.World), over one turn's database connection."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy.engine import Connection

from api.domain import citizens
from api.domain.booking import BookingService
from api.domain.requests import RequestService
from flows.world import LookupResult, PostInfo, ServiceOffer

T = TypeVar("T")


class NetworkCache:
    """Posts and the services they offer change a few times a year, yet every turn of a
    booking asks for them: each process keeps them for `ttl` seconds. Opening hours,
    closures and seats are always read live."""

    def __init__(self, ttl: float = 10.0) -> None:
        self.ttl = ttl
        self._values: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any, load: Callable[[], T]) -> T:
        now = time.monotonic()
        hit = self._values.get(key)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]  # type: ignore[no-any-return]
        value = load()
        with self._lock:
            self._values[key] = (now, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


class SqlWorld(BookingService):
    """Booking from BookingService; citizens' preferences and request lookups beside it."""

    def __init__(self, conn: Connection, cache: NetworkCache | None = None) -> None:
        super().__init__(conn)
        self._cache = cache

    def posts(self) -> list[PostInfo]:
        if self._cache is None:
            return super().posts()
        return list(self._cache.get("posts", super().posts))

    def post(self, code: str) -> PostInfo | None:
        if self._cache is None:
            return super().post(code)
        return next((p for p in self.posts() if p.code == code), None)

    def services(self, post_code: str) -> list[ServiceOffer]:
        if self._cache is None:
            return super().services(post_code)
        return list(
            self._cache.get(
                ("services", post_code), lambda: super(SqlWorld, self).services(post_code)
            )
        )

    def set_language(self, citizen_id: int, lang: str) -> None:
        citizens.set_language(self.conn, citizen_id, lang)

    def set_opted_out(self, citizen_id: int, opted_out: bool) -> None:
        citizens.set_opted_out(self.conn, citizen_id, opted_out)

    def lookup(
        self, reference: str, birth_date: date | None, verified_phone: str | None, now: datetime
    ) -> LookupResult:
        return RequestService(self.conn).lookup(reference, birth_date, verified_phone, now)
