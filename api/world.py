"""The world as flows see it (flows.world.World), over one turn's database connection."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy.engine import Connection

from api.domain import citizens, fairness
from api.domain import desk_conversations as desk
from api.domain.booking import BookingService
from api.domain.requests import RequestService
from flows.world import (
    AppointmentInfo,
    BookingResult,
    DeskConversation,
    DeskStatus,
    LimitInfo,
    LookupResult,
    PostInfo,
    ServiceOffer,
    SlotOption,
)

T = TypeVar("T")


class NetworkCache:
    """What every booking turn asks and few turns change, kept briefly per process.

    Posts and the services they offer change a few times a year: kept `ttl` seconds. The open
    days and times of a post's service are what thousands of citizens look at during a rush:
    kept `availability_ttl` seconds, and forgotten at once when this process books or
    cancels there. A seat taken meanwhile by another process is not lost: booking is decided
    by the database, and the flow then says the time was just taken and offers the nearest.
    """

    def __init__(self, ttl: float = 10.0, availability_ttl: float = 2.0) -> None:
        self.ttl = ttl
        self.availability_ttl = availability_ttl
        self._values: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any, load: Callable[[], T], ttl: float | None = None) -> T:
        now = time.monotonic()
        hit = self._values.get(key)
        if hit is not None and now - hit[0] < (self.ttl if ttl is None else ttl):
            return hit[1]  # type: ignore[no-any-return]
        value = load()
        with self._lock:
            self._values[key] = (now, value)
        return value

    def forget_availability(self, post_code: str, service_code: str) -> None:
        with self._lock:
            for key in [k for k in self._values if k[:3] == ("open", post_code, service_code)]:
                del self._values[key]

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


class SqlWorld(BookingService):
    """Booking from BookingService; citizens' preferences, request lookups and the desk
    (api.domain.desk_conversations) beside it.

    `unbooked`: the turn's citizen, when the turn's single read (api.conversations) found
    that neither they nor anyone on their phone number ever had an appointment. Then their
    upcoming appointments are none and their phone's allowance is whole, without a query:
    the fair-access rules count appointments, and there are none (until this turn books one).
    """

    def __init__(
        self, conn: Connection, cache: NetworkCache | None = None, unbooked: int | None = None
    ) -> None:
        super().__init__(conn)
        self._cache = cache
        self._unbooked = unbooked

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

    def open_days(self, post_code: str, service_code: str, now: datetime, limit: int) -> list[date]:
        if self._cache is None:
            return super().open_days(post_code, service_code, now, limit)
        key = ("open", post_code, service_code, "days", limit)
        load = lambda: BookingService.open_days(self, post_code, service_code, now, limit)  # noqa: E731
        return list(self._cache.get(key, load, self._cache.availability_ttl))

    def open_times(
        self, post_code: str, service_code: str, day: date, now: datetime
    ) -> list[SlotOption]:
        if self._cache is None:
            return super().open_times(post_code, service_code, day, now)
        key = ("open", post_code, service_code, "times", day)
        load = lambda: BookingService.open_times(self, post_code, service_code, day, now)  # noqa: E731
        return [
            slot
            for slot in self._cache.get(key, load, self._cache.availability_ttl)
            if slot.starts_at >= now  # the clock moved on since they were read
        ]

    def _never_booked(self, citizen_id: int) -> bool:
        return self._unbooked is not None and citizen_id == self._unbooked

    def upcoming(self, citizen_id: int, now: datetime) -> list[AppointmentInfo]:
        if self._never_booked(citizen_id):
            return []
        return super().upcoming(citizen_id, now)

    def booking_limit(
        self,
        citizen_id: int,
        post_code: str,
        service_code: str | None,
        full_name: str | None,
        now: datetime,
    ) -> LimitInfo | None:
        if full_name is None and self._cache is not None and self._never_booked(citizen_id):
            load = lambda: fairness.rules_of(self.conn, post_code)  # noqa: E731
            rules = self._cache.get(("rules", post_code), load)
            if rules is None:
                return None
            if rules.per_phone > 0:
                return None  # no appointment counts against the phone, no no-show either
        return super().booking_limit(citizen_id, post_code, service_code, full_name, now)

    def book(
        self,
        citizen_id: int,
        post_code: str,
        service_code: str,
        starts_at: datetime,
        full_name: str,
        now: datetime,
    ) -> BookingResult:
        self._unbooked = None  # from here on, this turn's citizen may hold one
        result = super().book(citizen_id, post_code, service_code, starts_at, full_name, now)
        if self._cache is not None:
            self._cache.forget_availability(post_code, service_code)
        return result

    def answer_offer(
        self, citizen_id: int, entry_id: int, accept: bool, now: datetime
    ) -> BookingResult:
        self._unbooked = None
        return super().answer_offer(citizen_id, entry_id, accept, now)

    def cancel(self, citizen_id: int, appointment_id: int, now: datetime) -> bool:
        done = super().cancel(citizen_id, appointment_id, now)
        if done and self._cache is not None:
            self._cache.clear()  # which post and service: not worth a query; rare
        return done

    def reschedule(
        self, citizen_id: int, appointment_id: int, starts_at: datetime, now: datetime
    ) -> BookingResult:
        result = super().reschedule(citizen_id, appointment_id, starts_at, now)
        if self._cache is not None:
            self._cache.clear()
        return result

    def set_language(self, citizen_id: int, lang: str) -> None:
        citizens.set_language(self.conn, citizen_id, lang)

    def set_opted_out(self, citizen_id: int, opted_out: bool) -> None:
        citizens.set_opted_out(self.conn, citizen_id, opted_out)

    def set_voice(self, citizen_id: int, on: bool) -> None:
        citizens.set_voice(self.conn, citizen_id, on)

    def lookup(
        self,
        reference: str,
        birth_date: date | None,
        verified_phone: str | None,
        now: datetime,
        *,
        sender: int,
    ) -> LookupResult:
        return RequestService(self.conn).lookup(
            reference, birth_date, verified_phone, now, sender=sender
        )

    # -- the desk (menu 7) ---------------------------------------------------------------------

    def desk_posts(self, citizen_id: int) -> list[PostInfo]:
        codes = set(desk.desk_post_codes(self.conn, citizen_id))
        return [post for post in self.posts() if post.code in codes]

    def _desk(self, row: Any) -> DeskConversation | None:
        if row is None:
            return None
        post = self.post(row.post_code)
        assert post is not None
        return DeskConversation(row.id, post, DeskStatus(row.status))

    def desk_conversation(self, citizen_id: int) -> DeskConversation | None:
        return self._desk(desk.live(self.conn, citizen_id))

    def open_desk(
        self,
        citizen_id: int,
        channel: str,
        post_code: str,
        lang: str,
        now: datetime,
        tried: tuple[tuple[str, str], ...] = (),
    ) -> DeskConversation:
        opened = self._desk(
            desk.open_conversation(self.conn, citizen_id, channel, post_code, lang, now, tried)
        )
        assert opened is not None
        return opened

    def to_desk(
        self, citizen_id: int, channel: str, text: str, kind: str, media: str, now: datetime
    ) -> DeskConversation | None:
        row = desk.citizen_wrote(self.conn, citizen_id, channel, text, kind, media, now)
        return self._desk(row)
