"""What a flow may ask of the world, as small Protocols that api/ implements.

The values exchanged are plain frozen dataclasses defined here, so that flows/ depends on
nothing and api/ returns exactly what flows expect. Instants are aware UTC datetimes;
`local` fields are the same instant in the post's time zone.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time
from enum import StrEnum
from typing import Protocol


@dataclass(frozen=True)
class PostInfo:
    code: str
    name: str
    city: str
    country: str  # ISO 3166-1 alpha-2
    timezone: str  # IANA
    address: str = ""
    phone: str = ""
    email: str = ""


@dataclass(frozen=True)
class ServiceOffer:
    """A service as offered by one post (code from the contract: passport, cnib, …)."""

    code: str
    fee_note: str = ""


@dataclass(frozen=True)
class OpeningHours:
    weekday: int  # 0 = Monday
    opens: time
    closes: time


@dataclass(frozen=True)
class SlotOption:
    starts_at: datetime  # UTC
    local: datetime  # in the post's time zone
    seats_left: int


@dataclass(frozen=True)
class AppointmentInfo:
    id: int
    reference: str
    post: PostInfo
    service_code: str
    starts_at: datetime  # UTC
    local: datetime  # in the post's time zone
    full_name: str
    status: str


class LimitKind(StrEnum):
    phone = "phone"  # the phone's bookings at this post in the rolling window
    name = "name"  # the same full name's bookings at this post in the rolling window
    name_held = "name_held"  # this person already holds an upcoming appointment for it here
    no_shows = "no_shows"  # too many no-shows: no booking here before `lifts_at`
    no_shows_window = "no_shows_window"  # too many no-shows: only within `window_days`


@dataclass(frozen=True)
class LimitInfo:
    """A booking rule that stops this booking, told before the questions it would waste."""

    kind: LimitKind
    limit: int  # bookings allowed in the window (name_held: 1 upcoming)
    days: int  # the rolling window
    lifts_at: datetime | None  # UTC; None for name_held (lifts when that appointment ends)
    window_days: int | None = None  # no_shows_window: days from today one may book within


def person_key(full_name: str) -> str:
    """One person's name, whatever its accents, case, spacing and word order: "Awa
    OUÉDRAOGO" and "ouedraogo awa" are one person within a post."""
    decomposed = unicodedata.normalize("NFKD", full_name.casefold())
    kept = (ch for ch in decomposed if not unicodedata.combining(ch))
    letters = "".join(ch if ch.isalpha() else " " for ch in kept)
    return " ".join(sorted(letters.split()))[:120]


@dataclass(frozen=True)
class WaitlistOffer:
    """A seat held for the first citizen waiting, until `expires_at` (UTC)."""

    entry_id: int
    post: PostInfo
    service_code: str
    starts_at: datetime  # UTC
    local: datetime  # in the post's time zone
    expires_at: datetime


class BookingOutcome(StrEnum):
    booked = "booked"
    full = "full"  # the last seat went to someone else meanwhile
    unavailable = "unavailable"  # not a bookable time (closed, too soon, too far, off the grid)
    limit_reached = "limit_reached"  # the citizen holds too many upcoming appointments


@dataclass(frozen=True)
class BookingResult:
    outcome: BookingOutcome
    appointment: AppointmentInfo | None = None


class Booking(Protocol):
    """The consular network and its appointments, as the booking flows see them."""

    def posts(self) -> list[PostInfo]: ...

    def post(self, code: str) -> PostInfo | None: ...

    def services(self, post_code: str) -> list[ServiceOffer]: ...

    def opening_hours(self, post_code: str) -> list[OpeningHours]: ...

    def open_days(
        self, post_code: str, service_code: str, now: datetime, limit: int
    ) -> list[date]: ...

    def open_times(
        self, post_code: str, service_code: str, day: date, now: datetime
    ) -> list[SlotOption]: ...

    def book(
        self,
        citizen_id: int,
        post_code: str,
        service_code: str,
        starts_at: datetime,
        full_name: str,
        now: datetime,
    ) -> BookingResult: ...

    def booking_limit(
        self,
        citizen_id: int,
        post_code: str,
        service_code: str | None,
        full_name: str | None,
        now: datetime,
    ) -> LimitInfo | None:
        """The first rule that stops a booking at this post: with no name, the phone's
        allowance; with a name, that person's upcoming appointment for the service, then the
        name's allowance. None when nothing stops it. `book` checks them all again."""
        ...

    def upcoming(self, citizen_id: int, now: datetime) -> list[AppointmentInfo]: ...

    def join_waitlist(
        self, citizen_id: int, post_code: str, service_code: str, full_name: str, now: datetime
    ) -> int:
        """Wait for a seat of this service at this post (once: joining again keeps one's
        place); returns the place in the line, 1 for the first."""
        ...

    def waitlist_offer(self, citizen_id: int, entry_id: int, now: datetime) -> WaitlistOffer | None:
        """The seat held for this citizen's entry, while the offer holds."""
        ...

    def answer_offer(
        self, citizen_id: int, entry_id: int, accept: bool, now: datetime
    ) -> BookingResult:
        """Take the held seat (booked) or leave it to the next in line (unavailable). An
        offer that expired, or was answered already, is `unavailable`."""
        ...

    def cancel(self, citizen_id: int, appointment_id: int, now: datetime) -> bool: ...

    def reschedule(
        self, citizen_id: int, appointment_id: int, starts_at: datetime, now: datetime
    ) -> BookingResult: ...


class Citizens(Protocol):
    """Preferences of the citizen who is writing."""

    def set_language(self, citizen_id: int, lang: str) -> None: ...

    def set_opted_out(self, citizen_id: int, opted_out: bool) -> None: ...

    def set_voice(self, citizen_id: int, on: bool) -> None:
        """Voice prompts with the bot's messages, on or off (`Who.voice`)."""
        ...


class LookupOutcome(StrEnum):
    found = "found"
    needs_birth_date = "needs_birth_date"
    wrong = "wrong"  # unknown reference or wrong birth date: never say which
    locked = "locked"  # three wrong answers: locked for 15 minutes


@dataclass(frozen=True)
class RequestInfo:
    reference: str
    service_code: str
    post: PostInfo
    status: str  # received, in_progress, ready, delivered, rejected
    reason: str = ""
    updated_at: datetime | None = None


@dataclass(frozen=True)
class LookupResult:
    outcome: LookupOutcome
    request: RequestInfo | None = None
    locked_until: datetime | None = None


class Requests(Protocol):
    """Status lookup of consular requests (dossiers) issued by staff."""

    def lookup(
        self,
        reference: str,
        birth_date: date | None,
        verified_phone: str | None,
        now: datetime,
        *,
        sender: int,
    ) -> LookupResult:
        """`sender` is the asking citizen: failures count per reference and sender, and the
        verified owner (`verified_phone` is the request's) is never locked out."""
        ...


class DeskStatus(StrEnum):
    waiting = "waiting"  # the citizen wrote last: an agent has to answer
    open = "open"  # an agent answered (or took it); the citizen may write again
    closed = "closed"


@dataclass(frozen=True)
class DeskConversation:
    """A conversation with the consular desk (the console's inbox)."""

    id: int
    post: PostInfo
    status: DeskStatus


class Desk(Protocol):
    """The consular desk: a person answers in the console (menu 7)."""

    def desk_posts(self, citizen_id: int) -> list[PostInfo]:
        """The posts where this citizen booked or has a request (the flow falls back on the
        posts of their phone number's country, and asks when that leaves several or none)."""
        ...

    def desk_conversation(self, citizen_id: int) -> DeskConversation | None:
        """The citizen's conversation still open with a desk, if any."""
        ...

    def open_desk(
        self,
        citizen_id: int,
        channel: str,
        post_code: str,
        lang: str,
        now: datetime,
        tried: tuple[tuple[str, str], ...] = (),
    ) -> DeskConversation:
        """Start a conversation at `post_code` (or return the one still open); its messages
        come through `to_desk`. `tried`: what the citizen last typed to the bot, and where."""
        ...

    def to_desk(
        self, citizen_id: int, channel: str, text: str, kind: str, media: str, now: datetime
    ) -> DeskConversation | None:
        """Keep a message for the agent (text, or a photo or voice note the bot cannot read:
        `kind` and the provider's `media` reference); None when no conversation is open."""
        ...


class World(Booking, Citizens, Requests, Desk, Protocol):
    """Everything a flow may ask, bound by the runtime to the turn's transaction."""
