"""`MemoryWorld`: flows.world.World in memory, for pure flow tests.

A fake at the boundary, not a second booking engine: four posts of the demo network, the
seven services in contract order, Monday–Friday hours, one closure, 30-minute slots with a
number of seats each, and consular requests that tests add. What the flows changed is left in
plain attributes for the tests to read (`appointments`, `languages`, `opted_out`, `voices`).

    world = MemoryWorld(seats=2)
    world.take_seat("ABJ", "passport", starts_at)   # someone else was quicker
    world.fill_day("ABJ", "passport", date(2026, 12, 2))
    world.add_request("ABJ-2026-000123", birth_date=date(1990, 3, 12), phone="+2250701000001")
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flows.world import (
    AppointmentInfo,
    BookingOutcome,
    BookingResult,
    DeskConversation,
    DeskStatus,
    LimitInfo,
    LimitKind,
    LookupOutcome,
    LookupResult,
    OpeningHours,
    PostInfo,
    RequestInfo,
    ServiceOffer,
    SlotOption,
    WaitlistOffer,
    person_key,
)

POSTS = (
    PostInfo(
        "ABJ", "Consulat général, Abidjan", "Abidjan", "CI", "Africa/Abidjan",
        "Avenue Terrasson de Fougères, Plateau, Abidjan", "+225 27 20 21 15 01",
        "cgbf.abidjan@diplomatie.gov.bf",
    ),
    PostInfo(
        "BKE", "Consulat général, Bouaké", "Bouaké", "CI", "Africa/Abidjan",
        "Quartier Commerce, Bouaké", "+225 27 31 63 44 10", "cgbf.bouake@diplomatie.gov.bf",
    ),
    PostInfo(
        "PAR", "Consulat général, Paris", "Paris", "FR", "Europe/Paris",
        "159 boulevard Haussmann, 75008 Paris", "+33 1 43 59 90 63",
        "cgbf.paris@diplomatie.gov.bf",
    ),
    PostInfo(
        "NYC", "Consulat général, New York", "New York", "US", "America/New_York",
        "866 United Nations Plaza, Suite 326, New York, NY 10017", "+1 212 308 4720",
        "cgbf.newyork@diplomatie.gov.bf",
    ),
)  # fmt: skip
SERVICES = (
    "passport",
    "cnib",
    "consular_card",
    "civil_status",
    "legalization",
    "laissez_passer",
    "other",
)
FEES = {
    ("PAR", "passport"): "80 € avec carte consulaire, 160 € sans",
    ("PAR", "legalization"): "10 € par document avec carte consulaire, 20 € sans",
    ("ABJ", "cnib"): "2 500 FCFA",
    ("ABJ", "consular_card"): "7 000 FCFA",
    ("BKE", "consular_card"): "7 000 FCFA",
    ("NYC", "consular_card"): "Gratuite",
}
AFRICAN_HOURS = ((time(8), time(12)), (time(13), time(15)))
EUROPEAN_HOURS = ((time(9), time(12, 30)), (time(14), time(16)))
CLOSURES = frozenset({date(2026, 12, 11)})  # Proclamation de la République
SLOT = timedelta(minutes=30)
WINDOW_DAYS = 30
PER_PHONE = PER_NAME = 4  # bookings per post in LIMIT_DAYS, cancelled ones included
LIMIT_DAYS = 30
MAX_FAILURES = 3
LOCK = timedelta(minutes=15)
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

Key = tuple[str, str, datetime]  # post, service, start (UTC)


@dataclass(frozen=True)
class StoredRequest:
    info: RequestInfo
    birth_date: date
    phone: str | None = None


class MemoryWorld:
    """Implements flows.world.World (Booking, Citizens, Requests) with dicts and counters."""

    def __init__(
        self,
        seats: int = 2,
        closures: frozenset[date] = CLOSURES,
        per_phone: int = PER_PHONE,
        per_name: int = PER_NAME,
    ) -> None:
        self.seats = seats
        self.per_phone = per_phone
        self.per_name = per_name
        self.created: dict[int, datetime] = {}  # appointment id → when it was booked
        self.no_shows: LimitInfo | None = None  # a no-show rule that applies, set by tests
        self.waitlist: list[dict[str, Any]] = []  # entries in order: citizen, post, service…
        self.closures = closures
        self.by_code = {post.code: post for post in POSTS}
        self.taken: Counter[Key] = Counter()  # seats taken, by the flows or behind their back
        self.appointments: dict[int, AppointmentInfo] = {}
        self.owners: dict[int, int] = {}  # appointment id → citizen id
        self.requests: dict[str, StoredRequest] = {}
        self.failures: Counter[tuple[str, int]] = Counter()  # per (reference, sender)
        self.locked_until: dict[tuple[str, int], datetime] = {}
        self.languages: dict[int, str] = {}
        self.opted_out: dict[int, bool] = {}
        self.voices: dict[int, bool] = {}  # voice prompts on or off, once set
        # the desk: citizen id → their conversation, and what they sent it (kind, text, media)
        self.desk: dict[int, DeskConversation] = {}
        self.desk_messages: dict[int, list[tuple[str, str, str]]] = {}
        self.desk_tried: dict[int, tuple[tuple[str, str], ...]] = {}
        self._random = random.Random(7)

    # -- helpers for tests -------------------------------------------------------------------

    def take_seat(self, post: str, service: str, starts_at: datetime, seats: int = 1) -> None:
        """Someone else books `seats` at that time (a race lost by the citizen)."""
        self.taken[(post, service, starts_at.astimezone(UTC))] += seats

    def fill_day(self, post: str, service: str, day: date) -> None:
        for start in self._grid(post, day):
            self.taken[(post, service, start)] = self.seats

    def add_request(
        self,
        reference: str,
        *,
        birth_date: date,
        phone: str | None = None,
        status: str = "in_progress",
        service: str = "passport",
        reason: str = "",
    ) -> None:
        post = self.by_code[reference[:3]]
        info = RequestInfo(reference, service, post, status, reason)
        self.requests[reference] = StoredRequest(info, birth_date, phone)

    def slot(self, post: str, day: date, at: time) -> datetime:
        """The UTC instant of a local wall time at a post."""
        tz = ZoneInfo(self.by_code[post].timezone)
        return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)

    def booked(self, citizen_id: int) -> list[AppointmentInfo]:
        return [a for i, a in self.appointments.items() if self.owners[i] == citizen_id]

    # -- Booking -----------------------------------------------------------------------------

    def posts(self) -> list[PostInfo]:
        return sorted(POSTS, key=lambda p: (p.country, p.name))

    def post(self, code: str) -> PostInfo | None:
        return self.by_code.get(code)

    def services(self, post_code: str) -> list[ServiceOffer]:
        if post_code not in self.by_code:
            return []
        return [ServiceOffer(code, FEES.get((post_code, code), "")) for code in SERVICES]

    def opening_hours(self, post_code: str) -> list[OpeningHours]:
        return [
            OpeningHours(weekday, opens, closes)
            for weekday in range(5)
            for opens, closes in self._hours(post_code)
        ]

    def open_days(self, post_code: str, service_code: str, now: datetime, limit: int) -> list[date]:
        post = self.by_code.get(post_code)
        if post is None:
            return []
        today = now.astimezone(ZoneInfo(post.timezone)).date()
        days = (today + timedelta(days=n) for n in range(WINDOW_DAYS + 1))
        return [d for d in days if self.open_times(post_code, service_code, d, now)][:limit]

    def open_times(
        self, post_code: str, service_code: str, day: date, now: datetime
    ) -> list[SlotOption]:
        if service_code not in SERVICES or not self._bookable_day(post_code, day, now):
            return []
        tz = ZoneInfo(self.by_code[post_code].timezone)
        return [
            SlotOption(start, start.astimezone(tz), left)
            for start in self._grid(post_code, day)
            if start > now and (left := self._seats_left(post_code, service_code, start)) > 0
        ]

    def book(
        self,
        citizen_id: int,
        post_code: str,
        service_code: str,
        starts_at: datetime,
        full_name: str,
        now: datetime,
    ) -> BookingResult:
        if not self._on_grid(post_code, service_code, starts_at, now):
            return BookingResult(BookingOutcome.unavailable)
        stopped = self.booking_limit(citizen_id, post_code, service_code, full_name, now)
        if stopped is not None:
            tz = ZoneInfo(self.by_code[post_code].timezone)
            last = now.astimezone(tz).date() + timedelta(days=stopped.window_days or 0)
            nearer = stopped.kind is LimitKind.no_shows_window
            if not nearer or starts_at.astimezone(tz).date() > last:
                return BookingResult(BookingOutcome.limit_reached)
        if self._seats_left(post_code, service_code, starts_at) <= 0:
            return BookingResult(BookingOutcome.full)
        self.taken[(post_code, service_code, starts_at)] += 1
        post = self.by_code[post_code]
        appointment = AppointmentInfo(
            id=len(self.appointments) + 1,
            reference="RDV-" + "".join(self._random.choices(CROCKFORD, k=6)),
            post=post,
            service_code=service_code,
            starts_at=starts_at,
            local=starts_at.astimezone(ZoneInfo(post.timezone)),
            full_name=full_name,
            status="booked",
        )
        self.appointments[appointment.id] = appointment
        self.owners[appointment.id] = citizen_id
        self.created[appointment.id] = now
        return BookingResult(BookingOutcome.booked, appointment)

    def booking_limit(
        self,
        citizen_id: int,
        post_code: str,
        service_code: str | None,
        full_name: str | None,
        now: datetime,
    ) -> LimitInfo | None:
        """The store's rules, with the citizen standing for their phone."""
        here = [a for a in self.appointments.values() if a.post.code == post_code]
        mine = [a for a in here if self.owners[a.id] == citizen_id]
        stopped = self._allowance(LimitKind.phone, mine, self.per_phone, now)
        later = self.no_shows  # the no-shows' window restricts, it does not stop
        if later is not None and later.kind is LimitKind.no_shows:
            stopped = stopped or later
        if stopped is not None or full_name is None:
            return stopped or later
        key = person_key(full_name)
        named = [a for a in here if person_key(a.full_name) == key]
        if any(
            a.service_code == service_code and a.status == "booked" and a.starts_at > now
            for a in named
        ):
            return LimitInfo(LimitKind.name_held, 1, LIMIT_DAYS, None)
        return self._allowance(LimitKind.name, named, self.per_name, now) or later

    def _allowance(
        self, kind: LimitKind, made: list[AppointmentInfo], limit: int, now: datetime
    ) -> LimitInfo | None:
        since = now - timedelta(days=LIMIT_DAYS)
        times = sorted(t for a in made if (t := self.created[a.id]) > since)
        if len(times) < limit:
            return None
        return LimitInfo(kind, limit, LIMIT_DAYS, times[len(times) - limit] + timedelta(LIMIT_DAYS))

    def upcoming(self, citizen_id: int, now: datetime) -> list[AppointmentInfo]:
        return sorted(
            (a for a in self.booked(citizen_id) if a.status == "booked" and a.starts_at > now),
            key=lambda a: a.starts_at,
        )

    def cancel(self, citizen_id: int, appointment_id: int, now: datetime) -> bool:
        current = self._own(citizen_id, appointment_id, now)
        if current is None:
            return False
        self.taken[(current.post.code, current.service_code, current.starts_at)] -= 1
        self.appointments[appointment_id] = replace(current, status="cancelled")
        return True

    def reschedule(
        self, citizen_id: int, appointment_id: int, starts_at: datetime, now: datetime
    ) -> BookingResult:
        current = self._own(citizen_id, appointment_id, now)
        if current is None:
            return BookingResult(BookingOutcome.unavailable)
        post, service = current.post.code, current.service_code
        if not self._on_grid(post, service, starts_at, now):
            return BookingResult(BookingOutcome.unavailable)
        if self._seats_left(post, service, starts_at) <= 0:
            return BookingResult(BookingOutcome.full)
        self.taken[(post, service, starts_at)] += 1
        self.taken[(post, service, current.starts_at)] -= 1
        tz = ZoneInfo(current.post.timezone)
        moved = replace(current, starts_at=starts_at, local=starts_at.astimezone(tz))
        self.appointments[appointment_id] = moved
        return BookingResult(BookingOutcome.booked, moved)

    # -- the waitlist -------------------------------------------------------------------------

    def join_waitlist(
        self, citizen_id: int, post_code: str, service_code: str, full_name: str, now: datetime
    ) -> int:
        line = [e for e in self.waitlist if (e["post"], e["service"]) == (post_code, service_code)]
        waiting = [e for e in line if e["status"] in ("waiting", "offered")]
        if not any(e["citizen"] == citizen_id for e in waiting):
            entry = {"id": len(self.waitlist) + 1, "citizen": citizen_id, "post": post_code,
                     "service": service_code, "name": full_name, "status": "waiting"}  # fmt: skip
            self.waitlist.append(entry)
            waiting.append(entry)
        return 1 + next(i for i, e in enumerate(waiting) if e["citizen"] == citizen_id)

    def offer_seat(self, entry_id: int, starts_at: datetime, expires_at: datetime) -> None:
        """A seat freed: held for this entry (the back office's job, done by hand)."""
        entry = self.waitlist[entry_id - 1]
        entry.update(status="offered", starts_at=starts_at, expires_at=expires_at)
        self.taken[(entry["post"], entry["service"], starts_at)] += 1

    def waitlist_offer(self, citizen_id: int, entry_id: int, now: datetime) -> WaitlistOffer | None:
        if not 0 < entry_id <= len(self.waitlist):
            return None
        entry = self.waitlist[entry_id - 1]
        if entry["citizen"] != citizen_id or entry["status"] != "offered":
            return None
        if entry["expires_at"] <= now:
            return None
        post = self.by_code[entry["post"]]
        starts_at = entry["starts_at"]
        local = starts_at.astimezone(ZoneInfo(post.timezone))
        return WaitlistOffer(
            entry_id, post, entry["service"], starts_at, local, entry["expires_at"]
        )

    def answer_offer(
        self, citizen_id: int, entry_id: int, accept: bool, now: datetime
    ) -> BookingResult:
        offer = self.waitlist_offer(citizen_id, entry_id, now)
        if offer is None:
            return BookingResult(BookingOutcome.unavailable)
        entry = self.waitlist[entry_id - 1]
        self.taken[(entry["post"], entry["service"], offer.starts_at)] -= 1
        if not accept:
            entry["status"] = "declined"
            return BookingResult(BookingOutcome.unavailable)
        entry["status"] = "booked"
        return self.book(
            citizen_id, entry["post"], entry["service"], offer.starts_at, entry["name"], now
        )

    # -- Citizens ----------------------------------------------------------------------------

    def desk_posts(self, citizen_id: int) -> list[PostInfo]:
        codes = {a.post.code for i, a in self.appointments.items() if self.owners[i] == citizen_id}
        return [post for post in POSTS if post.code in codes]

    def desk_conversation(self, citizen_id: int) -> DeskConversation | None:
        found = self.desk.get(citizen_id)
        return found if found and found.status is not DeskStatus.closed else None

    def open_desk(
        self,
        citizen_id: int,
        channel: str,
        post_code: str,
        lang: str,
        now: datetime,
        tried: tuple[tuple[str, str], ...] = (),
    ) -> DeskConversation:
        self.desk_tried[citizen_id] = tried
        current = self.desk_conversation(citizen_id)
        if current is None:
            current = DeskConversation(
                len(self.desk) + 1, self.by_code[post_code], DeskStatus.waiting
            )
            self.desk[citizen_id] = current
            self.desk_messages[citizen_id] = []
        return current

    def to_desk(
        self, citizen_id: int, channel: str, text: str, kind: str, media: str, now: datetime
    ) -> DeskConversation | None:
        current = self.desk_conversation(citizen_id)
        if current is not None:
            self.desk_messages[citizen_id].append((kind, text, media))
        return current

    def close_desk(self, citizen_id: int) -> None:
        """An agent closed the conversation (what the console does)."""
        self.desk[citizen_id] = replace(self.desk[citizen_id], status=DeskStatus.closed)

    def set_language(self, citizen_id: int, lang: str) -> None:
        self.languages[citizen_id] = lang

    def set_opted_out(self, citizen_id: int, opted_out: bool) -> None:
        self.opted_out[citizen_id] = opted_out

    def set_voice(self, citizen_id: int, on: bool) -> None:
        self.voices[citizen_id] = on

    # -- Requests ----------------------------------------------------------------------------

    def lookup(
        self,
        reference: str,
        birth_date: date | None,
        verified_phone: str | None,
        now: datetime,
        *,
        sender: int,
    ) -> LookupResult:
        """The store's rules per sender (its ceiling across senders is tested on the store)."""
        stored = self.requests.get(reference)
        if stored and verified_phone and stored.phone == verified_phone:
            return LookupResult(LookupOutcome.found, stored.info)  # the owner is never locked
        key = (reference, sender)
        locked_until = self.locked_until.get(key)
        if locked_until is not None and locked_until > now:
            return LookupResult(LookupOutcome.locked, locked_until=locked_until)
        if birth_date is None:  # never tell whether the reference exists
            return LookupResult(LookupOutcome.needs_birth_date)
        if stored and stored.birth_date == birth_date:
            self.failures[key] = 0
            return LookupResult(LookupOutcome.found, stored.info)
        self.failures[key] += 1
        if self.failures[key] >= MAX_FAILURES:
            self.failures[key] = 0
            self.locked_until[key] = now + LOCK
            return LookupResult(LookupOutcome.locked, locked_until=now + LOCK)
        return LookupResult(LookupOutcome.wrong)

    # -- internals ---------------------------------------------------------------------------

    def _hours(self, post_code: str) -> tuple[tuple[time, time], ...]:
        return AFRICAN_HOURS if self.by_code[post_code].country == "CI" else EUROPEAN_HOURS

    def _grid(self, post_code: str, day: date) -> list[datetime]:
        if day.weekday() >= 5 or day in self.closures:
            return []
        starts = []
        for opens, closes in self._hours(post_code):
            start = self.slot(post_code, day, opens)
            while start + SLOT <= self.slot(post_code, day, closes):
                starts.append(start)
                start += SLOT
        return starts

    def _bookable_day(self, post_code: str, day: date, now: datetime) -> bool:
        post = self.by_code.get(post_code)
        if post is None:
            return False
        today = now.astimezone(ZoneInfo(post.timezone)).date()
        return today <= day <= today + timedelta(days=WINDOW_DAYS)

    def _on_grid(self, post: str, service: str, starts_at: datetime, now: datetime) -> bool:
        """A time the post offers for that service at `now`, seats aside."""
        if post not in self.by_code or service not in SERVICES or starts_at <= now:
            return False
        day = starts_at.astimezone(ZoneInfo(self.by_code[post].timezone)).date()
        return self._bookable_day(post, day, now) and starts_at in self._grid(post, day)

    def _seats_left(self, post: str, service: str, starts_at: datetime) -> int:
        return self.seats - self.taken[(post, service, starts_at)]

    def _own(self, citizen_id: int, appointment_id: int, now: datetime) -> AppointmentInfo | None:
        current = self.appointments.get(appointment_id)
        if current is None or self.owners[appointment_id] != citizen_id:
            return None
        return current if current.status == "booked" and current.starts_at > now else None
