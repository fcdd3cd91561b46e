"""A post's bookable times: the slot grid of its opening hours, its closures, and the days
that pending draws keep — read in one round trip (`load_offer`), computed in the post's
local time.

The slot grid. For each opening-hours interval of the weekday, in the post's local time, a
slot starts at `opens` and then every `slot_minutes` while start + slot_minutes <= closes.
Local wall times become UTC instants with zoneinfo: a wall time that does not exist (the
spring-forward gap) is skipped; an ambiguous one (the fall-back hour) is taken with fold=0,
the first occurrence. A time is bookable when the post and its offer are active, its local
day is not a closure, it starts at least `min_notice_hours` after now, and its local date is
at most `booking_window_days` after the post's local today, and no pending draw
(api.domain.draws) allots the seats of that day: those go to the draw's winners only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from api.domain import draws
from api.domain.tables import table
from api.models import Closure, Draw, Post, PostService, Service, Slot
from api.models import OpeningHours as OpeningHoursRow
from flows.world import PostInfo

_post = table(Post)
_service = table(Service)
_offer_t = table(PostService)
_hours = table(OpeningHoursRow)
_closure = table(Closure)
_slot = table(Slot)
_draw = table(Draw)

POST_COLUMNS: tuple[sa.ColumnElement[Any], ...] = (
    _post.c.code.label("post_code"),
    _post.c.name.label("post_name"),
    _post.c.city.label("post_city"),
    _post.c.country.label("post_country"),
    _post.c.timezone.label("post_timezone"),
    _post.c.address.label("post_address"),
    _post.c.phone.label("post_phone"),
    _post.c.email.label("post_email"),
)


def post_info(row: Row[Any]) -> PostInfo:
    """A post as the flows see it, from a row that selected POST_COLUMNS."""
    return PostInfo(
        code=row.post_code,
        name=row.post_name,
        city=row.post_city,
        country=row.post_country,
        timezone=row.post_timezone,
        address=row.post_address,
        phone=row.post_phone,
        email=row.post_email,
    )


def local_grid(
    day: date, intervals: Iterable[tuple[time, time]], slot_minutes: int, tz: ZoneInfo
) -> list[datetime]:
    """The slot starts of one local day, as sorted UTC instants (see the module docstring)."""
    return list(_grid(day, tuple(intervals), slot_minutes, tz))


@lru_cache(maxsize=4096)  # every open_days walks a month of grids: compute each day once
def _grid(
    day: date, intervals: tuple[tuple[time, time], ...], slot_minutes: int, tz: ZoneInfo
) -> tuple[datetime, ...]:
    step = timedelta(minutes=slot_minutes)
    starts: set[datetime] = set()
    for opens, closes in intervals:
        wall = datetime.combine(day, opens)
        end = datetime.combine(day, closes)
        while wall + step <= end:
            instant = wall.replace(tzinfo=tz).astimezone(UTC)  # fold=0 when ambiguous
            # A wall time in the spring-forward gap does not survive the round trip.
            if instant.astimezone(tz).replace(tzinfo=None) == wall:
                starts.add(instant)
            wall += step
    return tuple(sorted(starts))


@dataclass(frozen=True)
class Offer:
    """One post's offer of one service, with its week, the closures that matter and the
    days pending draws keep (`load_offer`)."""

    post_id: int
    post: PostInfo
    tz: ZoneInfo
    active: bool  # the post and its offer
    post_service_id: int
    service_id: int
    service_code: str
    slot_minutes: int
    seats_per_slot: int
    booking_window_days: int
    min_notice_hours: int
    hours: dict[int, list[tuple[time, time]]]
    closures: frozenset[date]
    reserved: tuple[tuple[date, date], ...] = ()  # the periods of pending draws

    def today(self, now: datetime) -> date:
        return now.astimezone(self.tz).date()

    def earliest(self, now: datetime) -> datetime:
        return now + timedelta(hours=self.min_notice_hours)

    def last_day(self, now: datetime) -> date:
        return self.today(now) + timedelta(days=self.booking_window_days)

    def bookable(self, day: date, now: datetime, *, drawn: bool = False) -> list[datetime]:
        """The grid times of a local day that may be booked at `now`, seats aside. `drawn`:
        for a draw's winner, whom the draw's period (and no booking window) concerns."""
        if not self.active or day in self.closures:
            return []
        if day < self.today(now) or (day > self.last_day(now) and not drawn):
            return []
        if not drawn and any(first <= day <= last for first, last in self.reserved):
            return []
        earliest = self.earliest(now)
        grid = local_grid(day, self.hours.get(day.weekday(), ()), self.slot_minutes, self.tz)
        return [t for t in grid if t >= earliest]


def _build_offer_query() -> sa.CompoundSelect[Any]:
    base = _post.join(_offer_t, _offer_t.c.post_id == _post.c.id).join(
        _service, _service.c.id == _offer_t.c.service_id
    )
    offer_columns = (
        _post.c.id.label("post_id"),
        *POST_COLUMNS,
        sa.and_(_post.c.active, _offer_t.c.active).label("active"),
        _offer_t.c.id.label("post_service_id"),
        _service.c.id.label("service_id"),
        _service.c.code.label("service_code"),
        _offer_t.c.slot_minutes,
        _offer_t.c.seats_per_slot,
        _offer_t.c.booking_window_days,
        _offer_t.c.min_notice_hours,
    )
    which = sa.and_(
        _post.c.code == sa.bindparam("post_code"),
        _service.c.code == sa.bindparam("service_code"),
    )
    closed_between = _closure.c.day.between(
        sa.bindparam("closed_from", type_=sa.Date), sa.bindparam("closed_to", type_=sa.Date)
    )
    hours = (
        sa.select(
            *offer_columns,
            _hours.c.weekday,
            _hours.c.opens,
            _hours.c.closes,
            sa.cast(sa.null(), sa.Date).label("closed_on"),
            sa.cast(sa.null(), sa.Date).label("reserved_from"),
            sa.cast(sa.null(), sa.Date).label("reserved_to"),
        )
        .select_from(base.outerjoin(_hours, _hours.c.post_id == _post.c.id))
        .where(which)
    )
    closures = (
        sa.select(
            *offer_columns,
            sa.cast(sa.null(), sa.Integer),
            sa.cast(sa.null(), sa.Time),
            sa.cast(sa.null(), sa.Time),
            _closure.c.day,
            sa.cast(sa.null(), sa.Date),
            sa.cast(sa.null(), sa.Date),
        )
        .select_from(base.join(_closure, sa.and_(_closure.c.post_id == _post.c.id, closed_between)))
        .where(which)
    )
    pending_draw = sa.and_(
        _draw.c.post_id == _post.c.id,
        _draw.c.service_id == _service.c.id,
        _draw.c.status.in_(draws.PENDING),
    )
    drawn = (
        sa.select(
            *offer_columns,
            sa.cast(sa.null(), sa.Integer),
            sa.cast(sa.null(), sa.Time),
            sa.cast(sa.null(), sa.Time),
            sa.cast(sa.null(), sa.Date),
            _draw.c.first_day,
            _draw.c.last_day,
        )
        .select_from(base.join(_draw, pending_draw))
        .where(which)
    )
    return sa.union_all(hours, closures, drawn)


# Built once: each call only binds values, and SQLAlchemy reuses the compiled form.
_OFFER_QUERY = _build_offer_query()
_SEATS_QUERY = sa.select(_slot.c.starts_at, _slot.c.capacity, _slot.c.booked).where(
    _slot.c.post_service_id == sa.bindparam("post_service_id"),
    _slot.c.starts_at >= sa.bindparam("start", type_=_slot.c.starts_at.type),
    _slot.c.starts_at < sa.bindparam("end", type_=_slot.c.starts_at.type),
)


def closures_around(instant: datetime) -> tuple[date, date]:
    """The local dates an instant may fall on: within a day of its UTC date."""
    return instant.date() - timedelta(1), instant.date() + timedelta(1)


def load_offer(
    conn: Connection,
    post_code: str,
    service_code: str,
    closed_from: date,
    closed_to: date,
    *,
    at_desk: bool = False,
) -> Offer | None:
    """The offer, its opening hours and its closures between two dates, in one round trip (a
    UNION ALL of an hours branch and a closures branch, built once). `at_desk`: without the
    service's notice (a citizen at the counter, api.domain.walk_ins)."""
    params = {
        "post_code": post_code,
        "service_code": service_code,
        "closed_from": closed_from,
        "closed_to": closed_to,
    }
    rows = conn.execute(_OFFER_QUERY, params).all()
    if not rows:
        return None
    week: dict[int, list[tuple[time, time]]] = {}
    closed: set[date] = set()
    reserved: list[tuple[date, date]] = []
    for row in rows:
        if row.reserved_from is not None:
            reserved.append((row.reserved_from, row.reserved_to))
        elif row.closed_on is not None:
            closed.add(row.closed_on)
        elif row.weekday is not None:
            week.setdefault(row.weekday, []).append((row.opens, row.closes))
    first = rows[0]
    return Offer(
        post_id=first.post_id,
        post=post_info(first),
        tz=ZoneInfo(first.post_timezone),
        active=bool(first.active),
        post_service_id=first.post_service_id,
        service_id=first.service_id,
        service_code=first.service_code,
        slot_minutes=first.slot_minutes,
        seats_per_slot=first.seats_per_slot,
        booking_window_days=first.booking_window_days,
        min_notice_hours=0 if at_desk else first.min_notice_hours,
        hours=week,
        closures=frozenset(closed),
        reserved=tuple(reserved),
    )


def day_end(offer: Offer, day: date) -> datetime:
    """An instant after every slot of a local day (a day of margin covers odd midnights)."""
    midnight = datetime.combine(day + timedelta(days=1), time(0), tzinfo=offer.tz)
    return midnight.astimezone(UTC) + timedelta(days=1)


def seats_left(
    conn: Connection, offer: Offer, start: datetime, end: datetime
) -> dict[datetime, int]:
    """Seats left in the slot rows that exist in [start, end); absent rows are empty."""
    params = {"post_service_id": offer.post_service_id, "start": start, "end": end}
    return {r.starts_at: r.capacity - r.booked for r in conn.execute(_SEATS_QUERY, params)}
