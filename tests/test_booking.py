"""The booking domain service on both stores: the slot grid, time zones and DST, seats,
book / cancel / reschedule, anti-scalping limits, staff actions, and the last seat under fire.

Every test builds its own small network (no dependency on the demo seed):
PAR (Europe/Paris), NYC (America/New_York), ABJ (Africa/Abidjan), all open Monday–Friday.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from api import db
from api.domain import appointment_records, fairness
from api.domain.booking import BookingService
from api.models import Appointment, Citizen, Closure, Post, PostService, Service, Slot
from api.models import OpeningHours as OpeningHoursRow
from flows.world import Booking, BookingOutcome, LimitInfo, LimitKind, OpeningHours
from tests.support.staff_api import letters

T = TypeVar("T")

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
ABIDJAN = ZoneInfo("Africa/Abidjan")
REFERENCE = re.compile(r"^RDV-[0-9A-HJKMNP-TV-Z]{6}$")

post_t = sa.inspect(Post).local_table
service_t = sa.inspect(Service).local_table
offer_t = sa.inspect(PostService).local_table
hours_t = sa.inspect(OpeningHoursRow).local_table
closure_t = sa.inspect(Closure).local_table
slot_t = sa.inspect(Slot).local_table
appt_t = sa.inspect(Appointment).local_table
citizen_t = sa.inspect(Citizen).local_table


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def at(tz: ZoneInfo, day: str, hhmm: str) -> datetime:
    """A local wall time as an aware datetime (fold=0)."""
    return datetime.combine(date.fromisoformat(day), time.fromisoformat(hhmm), tzinfo=tz)


# --- test data ----------------------------------------------------------------------------------


def _insert(conn: Connection, table: sa.Table, **values: Any) -> int:
    return int(conn.execute(sa.insert(table).values(**values).returning(table.c.id)).scalar_one())


@dataclass
class Network:
    engine: Engine
    offers: dict[tuple[str, str], int]  # (post, service) → post_service id
    posts: dict[str, int]
    services: dict[str, int]

    def citizen(self, phone: str) -> int:
        with db.write(self.engine) as conn:
            return _insert(
                conn,
                citizen_t,
                phone=phone,
                country=None,
                lang="fr",
                opted_out=False,
                created_at=utc(2026, 1, 1),
            )

    def citizens(self, n: int) -> list[int]:
        with db.write(self.engine) as conn:
            return [
                _insert(conn, citizen_t, phone=f"+2250700{i:06d}", created_at=utc(2026, 1, 1))
                for i in range(n)
            ]

    def slot(self, post: str, service: str, starts_at: datetime) -> Any:
        with db.read(self.engine) as conn:
            return conn.execute(
                sa.select(slot_t).where(
                    slot_t.c.post_service_id == self.offers[post, service],
                    slot_t.c.starts_at == starts_at,
                )
            ).first()

    def appointment(self, appointment_id: int) -> Any:
        with db.read(self.engine) as conn:
            return conn.execute(sa.select(appt_t).where(appt_t.c.id == appointment_id)).one()


def build_network(engine: Engine) -> Network:
    """PAR, NYC, ABJ (Mon–Fri), an inactive post, a Sunday-night post in New York (NYS, for
    the spring-forward gap), three services, small seat counts, one closure in Abidjan."""
    posts: dict[str, int] = {}
    services: dict[str, int] = {}
    offers: dict[tuple[str, str], int] = {}
    with db.write(engine) as conn:
        for code, position in (("passport", 1), ("cnib", 2), ("consular_card", 3)):
            services[code] = _insert(conn, service_t, code=code, position=position, name=code)
        for code, name, country, city, tz, active in (
            ("PAR", "Consulat général, Paris", "FR", "Paris", "Europe/Paris", True),
            ("NYC", "Consulat général, New York", "US", "New York", "America/New_York", True),
            ("NYS", "Permanence de nuit", "US", "New York", "America/New_York", True),
            ("ABJ", "Consulat général, Abidjan", "CI", "Abidjan", "Africa/Abidjan", True),
            ("OLD", "Ancien consulat", "CI", "Bouaké", "Africa/Abidjan", False),
        ):
            posts[code] = _insert(
                conn,
                post_t,
                code=code,
                name=name,
                country=country,
                city=city,
                timezone=tz,
                address=f"{city} address",
                phone="+000",
                email=f"{code.lower()}@example.org",
                active=active,
            )
        for post, service, minutes, seats, window, notice, active in (
            ("PAR", "passport", 30, 2, 30, 12, True),
            ("PAR", "cnib", 60, 1, 30, 12, True),
            ("PAR", "consular_card", 30, 2, 30, 12, False),
            ("NYC", "passport", 30, 2, 30, 12, True),
            ("NYS", "passport", 30, 2, 30, 0, True),
            ("ABJ", "passport", 30, 2, 14, 24, True),
            ("ABJ", "cnib", 60, 3, 14, 24, True),
            ("ABJ", "consular_card", 30, 2, 14, 24, True),
            ("OLD", "passport", 30, 2, 30, 12, True),
        ):
            offers[post, service] = _insert(
                conn,
                offer_t,
                post_id=posts[post],
                service_id=services[service],
                slot_minutes=minutes,
                seats_per_slot=seats,
                booking_window_days=window,
                min_notice_hours=notice,
                fee_note=f"{service} fee",
                active=active,
            )
        for post in ("PAR", "NYC", "ABJ", "OLD"):
            for weekday in range(5):
                _insert(
                    conn,
                    hours_t,
                    post_id=posts[post],
                    weekday=weekday,
                    opens=time(9),
                    closes=time(12),
                )
        _insert(conn, hours_t, post_id=posts["NYS"], weekday=6, opens=time(1), closes=time(4))
        _insert(conn, closure_t, post_id=posts["ABJ"], day=date(2026, 12, 8), reason="holiday")
    return Network(engine, offers, posts, services)


@pytest.fixture
def net(engine: Engine) -> Network:
    return build_network(engine)


def write(engine: Engine, action: Callable[[BookingService], T]) -> T:
    with db.write(engine) as conn:
        return action(BookingService(conn))


def read(engine: Engine, action: Callable[[BookingService], T]) -> T:
    with db.read(engine) as conn:
        return action(BookingService(conn))


def person(citizen: int) -> str:
    """A name of one's own per citizen (one person holds one appointment per service)."""
    return f"Awa Ouédraogo {letters(citizen)}"


def book(
    net: Network,
    citizen: int,
    post: str,
    service: str,
    starts_at: datetime,
    now: datetime,
    name: str | None = None,
) -> Any:
    full_name = name or person(citizen)
    return write(net.engine, lambda s: s.book(citizen, post, service, starts_at, full_name, now))


# --- the network --------------------------------------------------------------------------------


def test_implements_the_booking_protocol(engine: Engine) -> None:
    with db.read(engine) as conn:
        service: Booking = BookingService(conn)
        assert service.posts() == []


def test_posts_services_and_hours(net: Network) -> None:
    posts = read(net.engine, lambda s: s.posts())
    assert [p.code for p in posts] == ["ABJ", "PAR", "NYC", "NYS"]  # by country, then name
    par = read(net.engine, lambda s: s.post("PAR"))
    assert par is not None
    assert (par.name, par.city, par.country, par.timezone) == (
        "Consulat général, Paris",
        "Paris",
        "FR",
        "Europe/Paris",
    )
    assert par.email == "par@example.org"
    assert read(net.engine, lambda s: s.post("OLD")) is None  # inactive
    assert read(net.engine, lambda s: s.post("XXX")) is None

    offers = read(net.engine, lambda s: s.services("ABJ"))
    assert [o.code for o in offers] == ["passport", "cnib", "consular_card"]
    assert offers[0].fee_note == "passport fee"
    assert [o.code for o in read(net.engine, lambda s: s.services("PAR"))] == [
        "passport",
        "cnib",
    ]  # consular_card is not active there
    assert read(net.engine, lambda s: s.services("OLD")) == []

    hours = read(net.engine, lambda s: s.opening_hours("PAR"))
    assert hours == [OpeningHours(weekday=d, opens=time(9), closes=time(12)) for d in range(5)]


# --- open days and times ------------------------------------------------------------------------


def test_open_days_skip_weekends_closures_notice_and_window(net: Network) -> None:
    # Thursday 3 December 2026, noon in Abidjan (UTC+0); 24 hours' notice; a 14-day window.
    now = utc(2026, 12, 3, 12)
    days = read(net.engine, lambda s: s.open_days("ABJ", "passport", now, 100))
    assert days == [
        # not Thu 3 (today), not Fri 4 (its last slot, 11:30, is less than 24 h away),
        # not the weekend, not Tue 8 (closed)
        date(2026, 12, 7),
        date(2026, 12, 9),
        date(2026, 12, 10),
        date(2026, 12, 11),
        date(2026, 12, 14),
        date(2026, 12, 15),
        date(2026, 12, 16),
        date(2026, 12, 17),  # today + 14: the last day of the window
    ]
    assert read(net.engine, lambda s: s.open_days("ABJ", "passport", now, 3)) == days[:3]
    assert read(net.engine, lambda s: s.open_days("ABJ", "passport", now, 0)) == []
    # Two hours earlier, the end of Friday morning is far enough.
    earlier = read(net.engine, lambda s: s.open_days("ABJ", "passport", utc(2026, 12, 3, 10), 1))
    assert earlier == [date(2026, 12, 4)]


def test_open_days_of_unknown_or_inactive_offers_are_empty(net: Network) -> None:
    now = utc(2026, 12, 3, 12)
    monday = date(2026, 12, 7)
    for post, service in (
        ("XXX", "passport"),
        ("PAR", "nothing"),
        ("NYC", "cnib"),  # not offered there
        ("PAR", "consular_card"),  # offer inactive
        ("OLD", "passport"),  # post inactive
    ):
        assert read(net.engine, lambda s, p=post, v=service: s.open_days(p, v, now, 5)) == []
        times = read(net.engine, lambda s, p=post, v=service: s.open_times(p, v, monday, now))
        assert times == []


def test_open_times_are_local_and_respect_notice(net: Network) -> None:
    now = utc(2026, 12, 3, 10)  # earliest: Friday 4 December, 10:00 in Abidjan
    times = read(net.engine, lambda s: s.open_times("ABJ", "passport", date(2026, 12, 4), now))
    assert [t.local.strftime("%H:%M") for t in times] == ["10:00", "10:30", "11:00", "11:30"]
    assert all(t.seats_left == 2 for t in times)
    assert times[0].starts_at == utc(2026, 12, 4, 10)

    paris = read(net.engine, lambda s: s.open_times("PAR", "passport", date(2026, 12, 7), now))
    assert [t.local.strftime("%H:%M") for t in paris] == [
        "09:00",
        "09:30",
        "10:00",
        "10:30",
        "11:00",
        "11:30",
    ]
    assert paris[0].starts_at == utc(2026, 12, 7, 8)  # CET = UTC+1
    assert paris[0].local.tzinfo == PARIS
    assert paris[0].local == at(PARIS, "2026-12-07", "09:00")
    hourly = read(net.engine, lambda s: s.open_times("PAR", "cnib", date(2026, 12, 7), now))
    assert [t.local.hour for t in hourly] == [9, 10, 11]

    def on(day: str) -> list[Any]:
        return read(
            net.engine, lambda s: s.open_times("ABJ", "passport", date.fromisoformat(day), now)
        )

    assert on("2026-12-05") == []  # Saturday
    assert on("2026-12-08") == []  # closed
    assert on("2026-12-03") == []  # today, within the notice
    assert on("2026-12-17") != []  # last day of the window
    assert on("2026-12-18") == []  # beyond it


def test_full_slots_disappear(net: Network) -> None:
    now = utc(2026, 12, 3, 10)
    monday = date(2026, 12, 7)
    alice, bob, carol = (
        net.citizen("+33600000001"),
        net.citizen("+33600000002"),
        net.citizen("+33600000003"),
    )
    # PAR cnib: one seat an hour, 09:00, 10:00, 11:00.
    for who, hour in ((alice, 9), (bob, 10), (carol, 11)):
        result = book(net, who, "PAR", "cnib", at(PARIS, "2026-12-07", f"{hour:02}:00"), now)
        assert result.outcome is BookingOutcome.booked
        left = read(net.engine, lambda s: s.open_times("PAR", "cnib", monday, now))
        assert [t.local.hour for t in left] == list(range(hour + 1, 12))
    days = read(net.engine, lambda s: s.open_days("PAR", "cnib", now, 2))
    assert days == [date(2026, 12, 4), date(2026, 12, 8)]  # Monday 7 is full

    # PAR passport: two seats; one taken leaves one. (Alice, Bob and Carol are busy at
    # 09:00 and one cannot be in two places at once: three others.)
    alice, bob, carol = net.citizens(3)
    nine = at(PARIS, "2026-12-07", "09:00")
    assert book(net, alice, "PAR", "passport", nine, now).outcome is BookingOutcome.booked
    times = read(net.engine, lambda s: s.open_times("PAR", "passport", monday, now))
    assert (times[0].local.hour, times[0].seats_left) == (9, 1)
    assert book(net, bob, "PAR", "passport", nine, now).outcome is BookingOutcome.booked
    times = read(net.engine, lambda s: s.open_times("PAR", "passport", monday, now))
    assert times[0].local.strftime("%H:%M") == "09:30"
    assert book(net, carol, "PAR", "passport", nine, now).outcome is BookingOutcome.full


# --- daylight saving time -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("post", "tz", "before", "after", "utc_before", "utc_after"),
    [
        # Paris springs forward on Sunday 28 March 2027: 09:00 is 08:00Z, then 07:00Z.
        ("PAR", PARIS, "2027-03-26", "2027-03-29", 8, 7),
        # Paris falls back on Sunday 25 October 2026: 09:00 is 07:00Z, then 08:00Z.
        ("PAR", PARIS, "2026-10-23", "2026-10-26", 7, 8),
        # New York springs forward on Sunday 14 March 2027: 09:00 is 14:00Z, then 13:00Z.
        ("NYC", NEW_YORK, "2027-03-12", "2027-03-15", 14, 13),
        # New York falls back on Sunday 1 November 2026: 09:00 is 13:00Z, then 14:00Z.
        ("NYC", NEW_YORK, "2026-10-30", "2026-11-02", 13, 14),
    ],
)
def test_dst_nine_oclock_moves_in_utc(
    net: Network,
    post: str,
    tz: ZoneInfo,
    before: str,
    after: str,
    utc_before: int,
    utc_after: int,
) -> None:
    now = datetime.fromisoformat(before).replace(tzinfo=UTC) - timedelta(days=2)
    for day, hour in ((before, utc_before), (after, utc_after)):
        d = date.fromisoformat(day)
        times = read(net.engine, lambda s, d=d: s.open_times(post, "passport", d, now))
        first = times[0]
        assert first.local.strftime("%H:%M") == "09:00"
        assert first.local.date() == d
        assert first.starts_at == datetime.combine(d, time(hour), tzinfo=UTC)
        assert len(times) == 6  # 09:00 … 11:30, whatever the offset

    # Booked and read back, the instant and the wall time survive the store.
    citizen = net.citizen("+10000000001")
    starts_at = at(tz, after, "09:00")
    result = book(net, citizen, post, "passport", starts_at, now)
    assert result.outcome is BookingOutcome.booked
    assert result.appointment is not None
    assert result.appointment.starts_at == datetime.fromisoformat(after).replace(
        hour=utc_after, tzinfo=UTC
    )
    [upcoming] = read(net.engine, lambda s: s.upcoming(citizen, now))
    assert upcoming.starts_at == result.appointment.starts_at
    assert upcoming.starts_at.tzinfo is not None
    assert upcoming.starts_at.utcoffset() == timedelta(0)
    assert upcoming.local.strftime("%Y-%m-%d %H:%M") == f"{after} 09:00"


def test_spring_forward_gap_times_are_skipped(net: Network) -> None:
    # NYS is open on Sundays 01:00–04:00; on 14 March 2027 clocks jump from 02:00 to 03:00.
    now = utc(2027, 3, 10)
    sunday = date(2027, 3, 14)
    times = read(net.engine, lambda s: s.open_times("NYS", "passport", sunday, now))
    assert [t.local.strftime("%H:%M") for t in times] == ["01:00", "01:30", "03:00", "03:30"]
    assert [t.starts_at for t in times] == [
        utc(2027, 3, 14, 6),
        utc(2027, 3, 14, 6, 30),
        utc(2027, 3, 14, 7),
        utc(2027, 3, 14, 7, 30),
    ]
    assert len({t.starts_at for t in times}) == len(times)
    assert not any(t.local.hour == 2 for t in times)  # 02:00 and 02:30 do not exist
    citizen = net.citizen("+10000000002")
    three = at(NEW_YORK, "2027-03-14", "03:00")
    assert three == utc(2027, 3, 14, 7)
    assert book(net, citizen, "NYS", "passport", three, now).outcome is BookingOutcome.booked


def test_fall_back_ambiguous_times_take_the_first(net: Network) -> None:
    # On 1 November 2026 New York lives 01:00–02:00 twice; the grid takes the first (EDT).
    now = utc(2026, 10, 28)
    sunday = date(2026, 11, 1)
    times = read(net.engine, lambda s: s.open_times("NYS", "passport", sunday, now))
    assert [t.local.strftime("%H:%M") for t in times] == [
        "01:00",
        "01:30",
        "02:00",
        "02:30",
        "03:00",
        "03:30",
    ]
    assert [t.starts_at for t in times[:3]] == [
        utc(2026, 11, 1, 5),  # 01:00 EDT
        utc(2026, 11, 1, 5, 30),  # 01:30 EDT
        utc(2026, 11, 1, 7),  # 02:00 EST
    ]
    citizen = net.citizen("+10000000003")
    second_one = utc(2026, 11, 1, 6)  # 01:00 EST, the second time round: not on the grid
    outcome = book(net, citizen, "NYS", "passport", second_one, now).outcome
    assert outcome is BookingOutcome.unavailable


# --- book, cancel, reschedule -------------------------------------------------------------------


def test_book_and_read_back(net: Network) -> None:
    now = utc(2026, 12, 3, 10)
    citizen = net.citizen("+33600000010")
    starts_at = at(PARIS, "2026-12-07", "10:30")
    result = book(net, citizen, "PAR", "passport", starts_at, now, name="  Awa   Ouédraogo ")
    assert result.outcome is BookingOutcome.booked
    info = result.appointment
    assert info is not None
    assert REFERENCE.match(info.reference), info.reference
    assert info.post.code == "PAR"
    assert info.service_code == "passport"
    assert info.starts_at == utc(2026, 12, 7, 9, 30)
    assert info.local == starts_at
    assert info.full_name == "Awa Ouédraogo"
    assert info.status == "booked"

    assert read(net.engine, lambda s: s.upcoming(citizen, now)) == [info]
    assert read(net.engine, lambda s: s.get_appointment(info.id)) == info
    assert read(net.engine, lambda s: s.get_appointment(info.id + 1000)) is None
    assert read(net.engine, lambda s: s.upcoming(citizen, starts_at)) == []  # it has begun
    slot = net.slot("PAR", "passport", starts_at)
    assert (slot.capacity, slot.booked) == (2, 1)
    row = net.appointment(info.id)
    assert (row.slot_id, row.created_at, row.status) == (slot.id, now, "booked")


def test_upcoming_is_soonest_first(net: Network) -> None:
    now = utc(2026, 12, 3, 10)
    citizen = net.citizen("+33600000011")
    later = book(net, citizen, "NYC", "passport", at(NEW_YORK, "2026-12-09", "09:00"), now)
    sooner = book(net, citizen, "PAR", "cnib", at(PARIS, "2026-12-09", "09:00"), now)
    upcoming = read(net.engine, lambda s: s.upcoming(citizen, now))
    assert upcoming == [sooner.appointment, later.appointment]
    assert upcoming[1].local.tzinfo == NEW_YORK


@pytest.mark.parametrize(
    ("post", "service", "starts_at"),
    [
        ("PAR", "passport", at(PARIS, "2026-12-07", "09:10")),  # off the grid
        ("PAR", "passport", at(PARIS, "2026-12-07", "12:00")),  # closing time
        ("PAR", "passport", at(PARIS, "2026-12-05", "09:00")),  # Saturday
        ("PAR", "passport", at(PARIS, "2026-12-03", "20:00")),  # too soon (and closed)
        ("PAR", "passport", at(PARIS, "2026-12-03", "11:00")),  # in the past
        ("ABJ", "passport", at(ABIDJAN, "2026-12-04", "09:30")),  # within 24 h notice
        ("ABJ", "passport", at(ABIDJAN, "2026-12-08", "09:00")),  # closure
        ("ABJ", "passport", at(ABIDJAN, "2026-12-18", "09:00")),  # beyond the window
        ("PAR", "consular_card", at(PARIS, "2026-12-07", "09:00")),  # offer inactive
        ("OLD", "passport", at(ABIDJAN, "2026-12-07", "09:00")),  # post inactive
        ("NYC", "cnib", at(NEW_YORK, "2026-12-07", "09:00")),  # not offered
        ("XXX", "passport", at(PARIS, "2026-12-07", "09:00")),  # no such post
    ],
)
def test_book_refuses_what_is_not_bookable(
    net: Network, post: str, service: str, starts_at: datetime
) -> None:
    citizen = net.citizen("+33600000012")
    result = book(net, citizen, post, service, starts_at, utc(2026, 12, 3, 10))
    assert result.outcome is BookingOutcome.unavailable
    assert result.appointment is None
    with db.read(net.engine) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(slot_t)).scalar_one() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(appt_t)).scalar_one() == 0


def test_book_needs_aware_times(net: Network) -> None:
    citizen = net.citizen("+33600000013")
    with pytest.raises(ValueError, match="aware"):
        book(net, citizen, "PAR", "passport", datetime(2026, 12, 7, 9), utc(2026, 12, 3))


def test_cancel_gives_the_seat_back(net: Network) -> None:
    now = utc(2026, 12, 3, 10)
    owner, other = net.citizen("+33600000020"), net.citizen("+33600000021")
    nine = at(PARIS, "2026-12-07", "09:00")
    monday = date(2026, 12, 7)
    first = book(net, owner, "PAR", "cnib", nine, now)
    assert first.appointment is not None
    appointment_id = first.appointment.id
    assert book(net, other, "PAR", "cnib", nine, now).outcome is BookingOutcome.full

    # Someone else's appointment cannot be cancelled.
    assert write(net.engine, lambda s: s.cancel(other, appointment_id, now)) is False
    assert net.appointment(appointment_id).status == "booked"
    assert net.slot("PAR", "cnib", nine).booked == 1

    assert write(net.engine, lambda s: s.cancel(owner, appointment_id, now)) is True
    assert net.appointment(appointment_id).status == "cancelled"
    assert net.slot("PAR", "cnib", nine).booked == 0
    assert read(net.engine, lambda s: s.upcoming(owner, now)) == []
    times = read(net.engine, lambda s: s.open_times("PAR", "cnib", monday, now))
    assert times[0].local.hour == 9
    assert times[0].seats_left == 1
    # Twice is not twice the seats.
    assert write(net.engine, lambda s: s.cancel(owner, appointment_id, now)) is False
    assert net.slot("PAR", "cnib", nine).booked == 0
    # The seat is on sale again.
    assert book(net, other, "PAR", "cnib", nine, now).outcome is BookingOutcome.booked


def test_past_appointments_cannot_be_cancelled(net: Network) -> None:
    now = utc(2026, 12, 3, 10)
    citizen = net.citizen("+33600000022")
    nine = at(PARIS, "2026-12-07", "09:00")
    result = book(net, citizen, "PAR", "passport", nine, now)
    assert result.appointment is not None
    appointment_id = result.appointment.id
    assert write(net.engine, lambda s: s.cancel(citizen, appointment_id, nine)) is False
    assert net.appointment(appointment_id).status == "booked"


def test_reschedule_moves_the_appointment_and_the_seats(net: Network) -> None:
    now = utc(2026, 12, 3, 10)
    citizen = net.citizen("+33600000030")
    old, new = at(PARIS, "2026-12-07", "09:00"), at(PARIS, "2026-12-09", "11:30")
    booked = book(net, citizen, "PAR", "passport", old, now).appointment
    assert booked is not None
    with db.write(net.engine) as conn:  # as if the day-before reminder had gone out
        conn.execute(
            sa.update(appt_t).where(appt_t.c.id == booked.id).values(reminded_day_before_at=now)
        )
    later = now + timedelta(hours=1)
    result = write(net.engine, lambda s: s.reschedule(citizen, booked.id, new, later))
    assert result.outcome is BookingOutcome.booked
    moved = result.appointment
    assert moved is not None
    assert (moved.id, moved.reference, moved.full_name) == (
        booked.id,
        booked.reference,
        booked.full_name,
    )
    assert moved.starts_at == new
    assert moved.local == new
    assert read(net.engine, lambda s: s.upcoming(citizen, now)) == [moved]
    assert net.slot("PAR", "passport", old).booked == 0
    new_slot = net.slot("PAR", "passport", new)
    assert new_slot.booked == 1
    row = net.appointment(booked.id)
    assert (row.slot_id, row.updated_at, row.reminded_day_before_at) == (new_slot.id, later, None)

    # Rescheduling to the same time is a no-op.
    again = write(net.engine, lambda s: s.reschedule(citizen, booked.id, new, later))
    assert again.outcome is BookingOutcome.booked
    assert again.appointment == moved
    assert net.slot("PAR", "passport", new).booked == 1


def test_reschedule_to_a_full_slot_changes_nothing(net: Network) -> None:
    now = utc(2026, 12, 3, 10)
    citizen, other = net.citizen("+33600000031"), net.citizen("+33600000032")
    old, full = at(PARIS, "2026-12-07", "09:00"), at(PARIS, "2026-12-07", "10:00")
    mine = book(net, citizen, "PAR", "cnib", old, now).appointment
    assert mine is not None
    assert book(net, other, "PAR", "cnib", full, now).outcome is BookingOutcome.booked

    result = write(net.engine, lambda s: s.reschedule(citizen, mine.id, full, now))
    assert result.outcome is BookingOutcome.full
    assert result.appointment is None
    assert read(net.engine, lambda s: s.get_appointment(mine.id)) == mine
    assert net.slot("PAR", "cnib", old).booked == 1
    assert net.slot("PAR", "cnib", full).booked == 1


def test_reschedule_refusals(net: Network) -> None:
    now = utc(2026, 12, 3, 10)
    citizen, other = net.citizen("+33600000033"), net.citizen("+33600000034")
    old = at(PARIS, "2026-12-07", "09:00")
    mine = book(net, citizen, "PAR", "passport", old, now).appointment
    assert mine is not None
    elsewhere = book(net, citizen, "PAR", "cnib", at(PARIS, "2026-12-08", "10:00"), now)
    assert elsewhere.outcome is BookingOutcome.booked

    def reschedule(who: int, starts_at: datetime, when: datetime = now) -> BookingOutcome:
        return write(net.engine, lambda s: s.reschedule(who, mine.id, starts_at, when)).outcome

    monday_ten = at(PARIS, "2026-12-07", "10:00")
    assert reschedule(other, monday_ten) is BookingOutcome.unavailable  # not theirs
    assert reschedule(citizen, at(PARIS, "2026-12-05", "10:00")) is BookingOutcome.unavailable
    assert reschedule(citizen, at(PARIS, "2026-12-07", "10:10")) is BookingOutcome.unavailable
    # Another appointment of theirs at that very instant.
    assert reschedule(citizen, at(PARIS, "2026-12-08", "10:00")) is BookingOutcome.unavailable
    # Once it has begun, it cannot be moved.
    assert reschedule(citizen, monday_ten, old) is BookingOutcome.unavailable
    assert net.appointment(mine.id).starts_at == old
    assert net.slot("PAR", "passport", old).booked == 1
    # A cancelled appointment cannot be moved either.
    assert write(net.engine, lambda s: s.cancel(citizen, mine.id, now)) is True
    assert reschedule(citizen, monday_ten) is BookingOutcome.unavailable


# --- limits -------------------------------------------------------------------------------------


def test_one_person_one_procedure_per_service_and_post(net: Network) -> None:
    now = utc(2026, 12, 3, 10)
    parent, stranger = net.citizen("+22500000040"), net.citizen("+22500000041")

    def take(who: int, service: str, day: str, name: str = "Awa Ouédraogo") -> BookingOutcome:
        return book(net, who, "ABJ", service, at(ABIDJAN, day, "09:00"), now, name).outcome

    assert take(parent, "passport", "2026-12-07") is BookingOutcome.booked
    # The same person, however the name is written and whichever phone: not twice.
    assert take(parent, "passport", "2026-12-09", "OUEDRAOGO  awa") is BookingOutcome.limit_reached
    assert take(stranger, "passport", "2026-12-09") is BookingOutcome.limit_reached
    # Another service, or another person (a child) from the same phone: fine.
    assert take(parent, "cnib", "2026-12-09") is BookingOutcome.booked
    assert take(parent, "passport", "2026-12-10", "Issa Ouédraogo") is BookingOutcome.booked
    # Told before the questions, by the store the flows ask.
    limit = read(
        net.engine, lambda s: s.booking_limit(stranger, "ABJ", "passport", "Awa Ouédraogo", now)
    )
    assert limit == LimitInfo(LimitKind.name_held, 1, 30, None)
    assert (
        read(net.engine, lambda s: s.booking_limit(stranger, "ABJ", "passport", None, now)) is None
    )
    # Once that appointment is cancelled, the person may book it again.
    [first, *_] = read(net.engine, lambda s: s.upcoming(parent, now))
    assert write(net.engine, lambda s: s.cancel(parent, first.id, now)) is True
    assert take(stranger, "passport", "2026-12-09") is BookingOutcome.booked
    # No seat was taken by the refusals.
    assert net.slot("ABJ", "passport", at(ABIDJAN, "2026-12-09", "09:00")).booked == 1


def test_a_script_that_books_and_cancels_in_a_loop_hits_the_phone_limit(net: Network) -> None:
    start = utc(2026, 12, 3, 10)
    scalper = net.citizen("+22500000042")
    other_channel = net.citizen("+22500000042")  # the same number on another channel
    nine = at(ABIDJAN, "2026-12-07", "09:00")
    outcomes = []
    for n in range(6):
        now = start + timedelta(minutes=n)
        who = scalper if n % 2 else other_channel
        result = book(net, who, "ABJ", "passport", nine, now, f"Client Numero {'abcdef'[n]}")
        outcomes.append(result.outcome)
        if result.appointment is not None:
            with db.write(net.engine) as conn:
                assert BookingService(conn).cancel(who, result.appointment.id, now)
    assert outcomes == [BookingOutcome.booked] * 4 + [BookingOutcome.limit_reached] * 2
    limit = read(net.engine, lambda s: s.booking_limit(scalper, "ABJ", None, None, start))
    assert limit == LimitInfo(LimitKind.phone, 4, 30, start + timedelta(days=30))
    # Another post has its own allowance; the window rolls on.
    assert read(net.engine, lambda s: s.booking_limit(scalper, "PAR", None, None, start)) is None
    later = start + timedelta(days=30, minutes=1)
    assert read(net.engine, lambda s: s.booking_limit(scalper, "ABJ", None, None, later)) is None
    # Staff lift it for that phone: the bookings before the lift no longer count.
    with db.write(net.engine) as conn:
        fairness.lift(conn, net.posts["ABJ"], "phone", "+22500000042", None, start)
    assert read(net.engine, lambda s: s.booking_limit(scalper, "ABJ", None, None, start)) is None


def test_the_name_limit_counts_every_phone(net: Network) -> None:
    now = utc(2026, 12, 3, 10)
    with db.write(net.engine) as conn:
        conn.execute(
            sa.update(post_t).where(post_t.c.code == "ABJ").values(max_bookings_per_name=2)
        )
    a, b = net.citizen("+22500000043"), net.citizen("+22500000044")
    name = "Moussa Traoré"
    assert (
        book(net, a, "ABJ", "passport", at(ABIDJAN, "2026-12-07", "09:00"), now, name).outcome
        is BookingOutcome.booked
    )
    assert (
        book(net, b, "ABJ", "cnib", at(ABIDJAN, "2026-12-07", "10:00"), now, name).outcome
        is BookingOutcome.booked
    )
    third = book(net, b, "ABJ", "consular_card", at(ABIDJAN, "2026-12-09", "09:00"), now, name)
    assert third.outcome is BookingOutcome.limit_reached
    limit = read(net.engine, lambda s: s.booking_limit(b, "ABJ", "consular_card", name, now))
    assert limit == LimitInfo(LimitKind.name, 2, 30, now + timedelta(days=30))
    with db.write(net.engine) as conn:
        fairness.lift(conn, net.posts["ABJ"], "name", "traore moussa", None, now)
    assert read(net.engine, lambda s: s.booking_limit(b, "ABJ", "consular_card", name, now)) is None


def test_a_citizen_is_never_booked_twice_at_one_instant(net: Network) -> None:
    now = utc(2026, 12, 3, 10)
    citizen = net.citizen("+22500000045")
    nine = at(PARIS, "2026-12-07", "09:00")
    assert book(net, citizen, "PAR", "passport", nine, now).outcome is BookingOutcome.booked
    other = book(net, citizen, "PAR", "cnib", nine, now, "Issa Ouédraogo")
    assert other.outcome is BookingOutcome.unavailable


# --- references ---------------------------------------------------------------------------------


def test_a_taken_reference_is_retried_in_a_savepoint(
    net: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = utc(2026, 12, 3, 10)
    first_citizen, second_citizen = net.citizen("+33600000050"), net.citizen("+33600000051")
    nine = at(PARIS, "2026-12-07", "09:00")
    first = book(net, first_citizen, "PAR", "passport", nine, now).appointment
    assert first is not None

    references: Iterator[str] = iter([first.reference, first.reference, "RDV-ZZZZZZ"])
    monkeypatch.setattr(appointment_records, "new_reference", lambda: next(references))
    second = book(net, second_citizen, "PAR", "passport", nine, now)
    assert second.outcome is BookingOutcome.booked
    assert second.appointment is not None
    assert second.appointment.reference == "RDV-ZZZZZZ"
    assert net.slot("PAR", "passport", nine).booked == 2  # the seat was taken once


def test_references_look_right() -> None:
    references = {appointment_records.new_reference() for _ in range(500)}
    assert len(references) == 500
    assert all(REFERENCE.match(r) for r in references)


# --- staff --------------------------------------------------------------------------------------


def test_staff_cancel_keeps_the_reason(net: Network) -> None:
    now = utc(2026, 12, 3, 10)
    citizen = net.citizen("+33600000060")
    nine = at(PARIS, "2026-12-07", "09:00")
    mine = book(net, citizen, "PAR", "cnib", nine, now).appointment
    assert mine is not None
    cancelled = write(
        net.engine, lambda s: s.cancel_by_staff(mine.id, "Fermeture exceptionnelle", now)
    )
    assert cancelled is not None
    assert (cancelled.id, cancelled.status) == (mine.id, "cancelled")
    assert net.appointment(mine.id).cancel_reason == "Fermeture exceptionnelle"
    assert net.slot("PAR", "cnib", nine).booked == 0
    assert write(net.engine, lambda s: s.cancel_by_staff(mine.id, "again", now)) is None
    assert write(net.engine, lambda s: s.cancel_by_staff(999_999, "none", now)) is None
    assert net.appointment(mine.id).cancel_reason == "Fermeture exceptionnelle"


def test_attendance(net: Network) -> None:
    now = utc(2026, 12, 3, 10)
    citizen = net.citizen("+33600000061")
    nine = at(PARIS, "2026-12-07", "09:00")
    mine = book(net, citizen, "PAR", "passport", nine, now).appointment
    assert mine is not None

    def mark(status: Any, when: datetime) -> Any:
        return write(net.engine, lambda s: s.set_attendance(mine.id, status, when))

    assert mark("no_show", now) is None  # it has not begun
    came = mark("attended", nine + timedelta(minutes=5))
    assert came is not None
    assert came.status == "attended"
    fixed = mark("no_show", nine + timedelta(hours=2))  # a correction
    assert fixed is not None
    assert fixed.status == "no_show"
    assert net.slot("PAR", "passport", nine).booked == 1  # the seat was used
    with pytest.raises(ValueError, match="attendance"):
        mark("cancelled", nine)
    # A cancelled appointment takes no attendance.
    other = book(net, citizen, "PAR", "passport", at(PARIS, "2026-12-08", "09:00"), now)
    assert other.appointment is not None
    other_id = other.appointment.id
    assert write(net.engine, lambda s: s.cancel(citizen, other_id, now)) is True
    assert write(net.engine, lambda s: s.set_attendance(other_id, "attended", now)) is None


# --- concurrency and the backstop ---------------------------------------------------------------


def _threads(n: int, target: Callable[[int], None]) -> None:
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)


@pytest.fixture
def wide_engine(engine: Engine) -> Iterator[Engine]:
    """The same database through a pool wide enough for 50 threads, warmed up."""
    wide = db.create_engine(engine.url, pool_size=55, max_overflow=5)
    connections = [wide.connect() for _ in range(52)]
    for conn in connections:
        conn.close()
    yield wide
    wide.dispose()


THREADS = 50


def test_fifty_threads_for_the_last_seat(net: Network, wide_engine: Engine) -> None:
    now = utc(2026, 12, 3, 10)
    nine = at(ABIDJAN, "2026-12-07", "09:00")  # ABJ cnib: 3 seats
    early = net.citizens(2)
    for citizen in early:
        assert book(net, citizen, "ABJ", "cnib", nine, now).outcome is BookingOutcome.booked
    racers = [net.citizen(f"+2260000{i:04d}") for i in range(THREADS)]
    barrier = threading.Barrier(THREADS, timeout=60)
    outcomes: list[BookingOutcome] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def race(i: int) -> None:
        try:
            barrier.wait()
            with db.write(wide_engine) as conn:
                result = BookingService(conn).book(
                    racers[i], "ABJ", "cnib", nine, person(racers[i]), now
                )
            with lock:
                outcomes.append(result.outcome)
        except BaseException as exc:
            with lock:
                errors.append(exc)

    _threads(THREADS, race)
    assert errors == []
    assert outcomes.count(BookingOutcome.booked) == 1
    assert outcomes.count(BookingOutcome.full) == THREADS - 1
    slot = net.slot("ABJ", "cnib", nine)
    assert (slot.capacity, slot.booked) == (3, 3)
    with db.read(net.engine) as conn:
        holders = conn.execute(
            sa.select(sa.func.count())
            .select_from(appt_t)
            .where(appt_t.c.slot_id == slot.id, appt_t.c.status == "booked")
        ).scalar_one()
    assert holders == 3
    assert (
        read(net.engine, lambda s: s.open_times("ABJ", "cnib", date(2026, 12, 7), now))[
            0
        ].local.hour
        == 10
    )


def test_concurrent_swaps_do_not_deadlock(net: Network, wide_engine: Engine) -> None:
    """Two citizens each move to the other's time, at once, again and again."""
    now = utc(2026, 12, 3, 10)
    a_time, b_time = at(PARIS, "2026-12-07", "09:00"), at(PARIS, "2026-12-07", "09:30")
    alice, bob = net.citizen("+33600000070"), net.citizen("+33600000071")
    a = book(net, alice, "PAR", "passport", a_time, now).appointment
    b = book(net, bob, "PAR", "passport", b_time, now).appointment
    assert a is not None
    assert b is not None
    moves = [(alice, a.id), (bob, b.id)]
    times = [a_time, b_time]
    errors: list[BaseException] = []
    for round_ in range(10):
        barrier = threading.Barrier(2, timeout=30)

        def swap(i: int, round_: int = round_, barrier: threading.Barrier = barrier) -> None:
            who, appointment_id = moves[i]
            target = times[(i + round_ + 1) % 2]
            try:
                barrier.wait()
                with db.write(wide_engine) as conn:
                    BookingService(conn).reschedule(who, appointment_id, target, now)
            except BaseException as exc:
                errors.append(exc)

        _threads(2, swap)
    assert errors == []
    assert net.slot("PAR", "passport", a_time).booked == 1
    assert net.slot("PAR", "passport", b_time).booked == 1


@pytest.mark.parametrize("booked", [3, -1])
def test_the_check_constraint_is_the_backstop(net: Network, booked: int) -> None:
    now = utc(2026, 12, 3, 10)
    citizen = net.citizen("+33600000080")
    nine = at(PARIS, "2026-12-07", "09:00")
    assert book(net, citizen, "PAR", "passport", nine, now).outcome is BookingOutcome.booked
    slot_id = net.slot("PAR", "passport", nine).id
    with pytest.raises(IntegrityError), db.write(net.engine) as conn:
        conn.execute(sa.update(slot_t).where(slot_t.c.id == slot_id).values(booked=booked))
    assert net.slot("PAR", "passport", nine).booked == 1


def test_no_shows_shorten_the_window_or_delay_booking_as_the_post_decides(net: Network) -> None:
    booked_at, later = utc(2026, 12, 3, 10), utc(2026, 12, 10, 12)
    citizen = net.citizen("+22500000046")
    for day in ("2026-12-07", "2026-12-08"):
        made = book(net, citizen, "PAR", "cnib", at(PARIS, day, "10:00"), booked_at, None)
        assert made.appointment is not None
        with db.write(net.engine) as conn:
            marked = BookingService(conn).set_attendance(made.appointment.id, "no_show", later)
        assert marked is not None

    def limit(now: datetime) -> Any:
        return read(net.engine, lambda s: s.booking_limit(citizen, "PAR", None, None, now))

    assert limit(later) == LimitInfo(LimitKind.no_shows_window, 2, 90, None, window_days=7)
    far, near = at(PARIS, "2026-12-21", "10:00"), at(PARIS, "2026-12-14", "10:00")
    assert book(net, citizen, "PAR", "passport", far, later).outcome is BookingOutcome.limit_reached
    assert book(net, citizen, "PAR", "passport", near, later).outcome is BookingOutcome.booked
    assert limit(utc(2027, 3, 9)) is None  # 90 days after: forgotten
    # Another post's rule: a delay of 30 days after the last no-show, then the window.
    with db.write(net.engine) as conn:
        conn.execute(sa.update(post_t).where(post_t.c.code == "PAR").values(no_show_delay_days=30))
    assert limit(later) == LimitInfo(
        LimitKind.no_shows, 2, 90, at(PARIS, "2026-12-08", "10:00") + timedelta(days=30)
    )
    eleven = at(PARIS, "2026-12-14", "11:00")
    assert book(net, citizen, "PAR", "cnib", eleven, later).outcome is BookingOutcome.limit_reached
