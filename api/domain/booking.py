"""Booking: open days and times, book, cancel, reschedule — over one SQLAlchemy Core connection.

`BookingService(conn)` implements `flows.world.Booking` for the flows and adds what staff need
(`get_appointment`, `cancel_by_staff`, `set_attendance`). The caller owns the transaction:
nothing here commits. Write with `api.db.write(engine)` (BEGIN IMMEDIATE on SQLite).

The slot grid and each offer's bookable times: api.domain.schedule.

Seats: api.domain.seats (one conditional statement takes one, never a read then a write).
The appointment's record — its reference, its row written and read: api.domain.appointment_records.

Fair access (api.domain.fairness). One person holds at most one upcoming appointment per
service and post, and each post allows so many bookings per phone and per full name in a
rolling window; a citizen is never booked twice at the same instant. The citizen's row is
locked (`FOR UPDATE` on PostgreSQL; SQLite's write lock covers it), and the phone and the
name at the post on PostgreSQL, while these are counted, so that two concurrent bookings
cannot both slip through.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from api.domain import appointment_records, fairness, seats, waitlist
from api.domain.schedule import (
    POST_COLUMNS,
    Offer,
    closures_around,
    day_end,
    load_offer,
    post_info,
    seats_left,
)
from api.domain.tables import table
from api.models import (
    Appointment,
    AppointmentStatus,
    Citizen,
    Post,
    PostService,
    Service,
    Slot,
)
from api.models import OpeningHours as OpeningHoursRow
from flows.world import (
    AppointmentInfo,
    BookingOutcome,
    BookingResult,
    LimitInfo,
    OpeningHours,
    PostInfo,
    ServiceOffer,
    SlotOption,
    WaitlistOffer,
)

BOOKED = AppointmentStatus.booked.value
CANCELLED = AppointmentStatus.cancelled.value
ATTENDED = AppointmentStatus.attended.value
NO_SHOW = AppointmentStatus.no_show.value


_post = table(Post)
_service = table(Service)
_offer_t = table(PostService)
_hours = table(OpeningHoursRow)
_slot = table(Slot)
_appt = table(Appointment)
_citizen = table(Citizen)


def _aware_utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime")
    return value.astimezone(UTC)


@dataclass(frozen=True)
class _Held:
    """A citizen's upcoming booked appointments at one instant."""

    same_instant: int


class BookingService:
    """The consular network and its appointments, on the caller's connection and transaction.

    `at_desk`: booking for a citizen standing at the counter (api.domain.walk_ins). The
    service's notice (hours the consulate wants before an appointment booked from afar) does
    not apply to them; every other rule does (window, hours, closures, seats, limits)."""

    def __init__(self, conn: Connection, *, at_desk: bool = False) -> None:
        self.conn = conn
        self.at_desk = at_desk

    # --- the network ------------------------------------------------------------------------

    def posts(self) -> list[PostInfo]:
        query = (
            sa.select(*POST_COLUMNS)
            .where(_post.c.active.is_(True))
            .order_by(_post.c.country, _post.c.name, _post.c.code)
        )
        return [post_info(row) for row in self.conn.execute(query)]

    def post(self, code: str) -> PostInfo | None:
        query = sa.select(*POST_COLUMNS).where(_post.c.code == code, _post.c.active.is_(True))
        row = self.conn.execute(query).first()
        return post_info(row) if row else None

    def services(self, post_code: str) -> list[ServiceOffer]:
        query = (
            sa.select(_service.c.code, _offer_t.c.fee_note)
            .select_from(
                _offer_t.join(_post, _post.c.id == _offer_t.c.post_id).join(
                    _service, _service.c.id == _offer_t.c.service_id
                )
            )
            .where(
                _post.c.code == post_code,
                _post.c.active.is_(True),
                _offer_t.c.active.is_(True),
            )
            .order_by(_service.c.position, _service.c.id)
        )
        return [ServiceOffer(code=r.code, fee_note=r.fee_note) for r in self.conn.execute(query)]

    def opening_hours(self, post_code: str) -> list[OpeningHours]:
        query = (
            sa.select(_hours.c.weekday, _hours.c.opens, _hours.c.closes)
            .select_from(_hours.join(_post, _post.c.id == _hours.c.post_id))
            .where(_post.c.code == post_code, _post.c.active.is_(True))
            .order_by(_hours.c.weekday, _hours.c.opens)
        )
        return [
            OpeningHours(weekday=r.weekday, opens=r.opens, closes=r.closes)
            for r in self.conn.execute(query)
        ]

    # --- days and times ---------------------------------------------------------------------

    def open_days(self, post_code: str, service_code: str, now: datetime, limit: int) -> list[date]:
        """The first `limit` local dates with at least one seat left."""
        now = _aware_utc(now, "now")
        if limit <= 0:
            return []
        # Any local date is within a day of the UTC date.
        offer = self._offer(post_code, service_code, now.date() - timedelta(1), date.max)
        if offer is None or not offer.active:
            return []
        today, last = offer.today(now), offer.last_day(now)
        free = self._seats_left(offer, offer.earliest(now), day_end(offer, last))
        days: list[date] = []
        day = max(today, offer.earliest(now).astimezone(offer.tz).date())
        while day <= last and len(days) < limit:
            if any(free.get(t, offer.seats_per_slot) > 0 for t in offer.bookable(day, now)):
                days.append(day)
            day += timedelta(days=1)
        return days

    def open_times(
        self, post_code: str, service_code: str, day: date, now: datetime
    ) -> list[SlotOption]:
        """The times with seats left on one local day, in order."""
        now = _aware_utc(now, "now")
        offer = self._offer(post_code, service_code, day, day)
        if offer is None:
            return []
        times = offer.bookable(day, now)
        if not times:
            return []
        free = self._seats_left(offer, times[0], times[-1] + timedelta(seconds=1))
        options = []
        for t in times:
            left = free.get(t, offer.seats_per_slot)
            if left > 0:
                options.append(
                    SlotOption(starts_at=t, local=t.astimezone(offer.tz), seats_left=left)
                )
        return options

    # --- booking ----------------------------------------------------------------------------

    def book(
        self,
        citizen_id: int,
        post_code: str,
        service_code: str,
        starts_at: datetime,
        full_name: str,
        now: datetime,
    ) -> BookingResult:
        now = _aware_utc(now, "now")
        starts_at = _aware_utc(starts_at, "starts_at")
        full_name = " ".join(full_name.split())[:120]
        if not full_name:
            raise ValueError("full_name is empty")
        offer = self._offer(post_code, service_code, *closures_around(starts_at))
        if offer is None:
            return BookingResult(BookingOutcome.unavailable)
        if starts_at not in offer.bookable(starts_at.astimezone(offer.tz).date(), now):
            return BookingResult(BookingOutcome.unavailable)
        held = self._lock_citizen_and_count(citizen_id, offer.service_id, starts_at, now)
        if held.same_instant:
            return BookingResult(BookingOutcome.unavailable)
        fairness.lock(self.conn, citizen_id, offer.post_id, full_name)
        stopped = fairness.limit(
            self.conn, citizen_id, offer.post_id, offer.service_id, full_name, now
        )
        if stopped is not None and not fairness.within(stopped, offer.tz, starts_at, now):
            return BookingResult(BookingOutcome.limit_reached)

        seats.ensure_slot(self.conn, offer, starts_at)
        slot_id = seats.take_seat(self.conn, offer.post_service_id, starts_at)
        if slot_id is None:
            return BookingResult(BookingOutcome.full)
        appointment_id, reference = appointment_records.insert_appointment(
            self.conn, citizen_id, offer, slot_id, starts_at, full_name, now
        )
        waitlist.left_by_booking(self.conn, citizen_id, offer.post_id, offer.service_id, now)
        info = AppointmentInfo(
            id=appointment_id,
            reference=reference,
            post=offer.post,
            service_code=offer.service_code,
            starts_at=starts_at,
            local=starts_at.astimezone(offer.tz),
            full_name=full_name,
            status=BOOKED,
        )
        return BookingResult(BookingOutcome.booked, info)

    def booking_limit(
        self,
        citizen_id: int,
        post_code: str,
        service_code: str | None,
        full_name: str | None,
        now: datetime,
    ) -> LimitInfo | None:
        now = _aware_utc(now, "now")
        row = self.conn.execute(
            sa.select(_post.c.id, _service.c.id)
            .select_from(_post.outerjoin(_service, _service.c.code == (service_code or "")))
            .where(_post.c.code == post_code)
        ).first()
        if row is None:
            return None
        return fairness.limit(self.conn, citizen_id, row[0], row[1], full_name, now)

    # --- the waitlist -----------------------------------------------------------------------

    def join_waitlist(
        self, citizen_id: int, post_code: str, service_code: str, full_name: str, now: datetime
    ) -> int:
        return waitlist.join(self.conn, citizen_id, post_code, service_code, full_name, now)

    def waitlist_offer(self, citizen_id: int, entry_id: int, now: datetime) -> WaitlistOffer | None:
        now = _aware_utc(now, "now")
        row = waitlist.offer(self.conn, citizen_id, entry_id, now)
        if row is None:
            return None
        post = self.post(row.post_code)
        if post is None:
            return None
        tz = ZoneInfo(post.timezone)
        return WaitlistOffer(
            entry_id=row.id,
            post=post,
            service_code=row.service_code,
            starts_at=row.offered_starts_at,
            local=row.offered_starts_at.astimezone(tz),
            expires_at=row.offer_expires_at,
        )

    def answer_offer(
        self, citizen_id: int, entry_id: int, accept: bool, now: datetime
    ) -> BookingResult:
        now = _aware_utc(now, "now")
        if not accept:
            waitlist.decline(self.conn, citizen_id, entry_id, now)
            return BookingResult(BookingOutcome.unavailable)
        if self._offer_beyond_limits(citizen_id, entry_id, now):
            # booked elsewhere since joining the line or the draw: the seat goes to the next
            waitlist.decline(self.conn, citizen_id, entry_id, now)
            return BookingResult(BookingOutcome.limit_reached)
        taken = waitlist.accept(self.conn, citizen_id, entry_id, now)
        if taken is None:
            return BookingResult(BookingOutcome.unavailable)
        post_code, service_code = waitlist.codes(self.conn, taken.post_id, taken.service_id)
        starts_at = taken.offered_starts_at
        offer = self._offer(post_code, service_code, *closures_around(starts_at))
        if offer is None:
            raise RuntimeError(f"waitlist entry {entry_id}: the offer is gone")
        appointment_id, reference = appointment_records.insert_appointment(
            self.conn, citizen_id, offer, taken.offer_slot_id, starts_at, taken.full_name, now
        )
        waitlist.booked_from_offer(self.conn, entry_id, appointment_id)
        info = AppointmentInfo(
            id=appointment_id,
            reference=reference,
            post=offer.post,
            service_code=offer.service_code,
            starts_at=starts_at,
            local=starts_at.astimezone(offer.tz),
            full_name=taken.full_name,
            status=BOOKED,
        )
        return BookingResult(BookingOutcome.booked, info)

    def _offer_beyond_limits(self, citizen_id: int, entry_id: int, now: datetime) -> bool:
        """Whether taking this offer would pass the post's limits, weighed as a booking is."""
        terms = waitlist.offered_terms(self.conn, citizen_id, entry_id, now)
        if terms is None:
            return False  # gone: `accept` says so
        fairness.lock(self.conn, citizen_id, terms.post_id, terms.full_name)
        stopped = fairness.limit(
            self.conn, citizen_id, terms.post_id, terms.service_id, terms.full_name, now
        )
        if stopped is None:
            return False
        return not fairness.within(stopped, ZoneInfo(terms.timezone), terms.offered_starts_at, now)

    def hold_seat(
        self, post_code: str, service_code: str, now: datetime
    ) -> tuple[int, datetime, PostInfo] | None:
        """Take the first free seat of the window for the waitlist (the same conditional
        UPDATE as a booking): its slot id, start and post; None when there is none."""
        now = _aware_utc(now, "now")
        for day in BookingService.open_days(self, post_code, service_code, now, 5):
            for slot in BookingService.open_times(self, post_code, service_code, day, now):
                offer = self._offer(post_code, service_code, day, day)
                if offer is None:
                    return None
                seats.ensure_slot(self.conn, offer, slot.starts_at)
                slot_id = seats.take_seat(self.conn, offer.post_service_id, slot.starts_at)
                if slot_id is not None:
                    return slot_id, slot.starts_at, offer.post
        return None

    def hold_period_seat(
        self, post_code: str, service_code: str, first: date, last: date, now: datetime
    ) -> tuple[int, datetime, PostInfo] | None:
        """Take the first free seat of the local days `first`..`last` for a draw's winner
        (api.domain.draws), the draw's own period included; None when there is none."""
        now = _aware_utc(now, "now")
        offer = self._offer(post_code, service_code, first - timedelta(1), last + timedelta(1))
        if offer is None:
            return None
        day = max(first, offer.today(now))
        while day <= last:
            times = offer.bookable(day, now, drawn=True)
            free = self._seats_left(offer, times[0], times[-1] + timedelta(1)) if times else {}
            for starts_at in (t for t in times if free.get(t, offer.seats_per_slot) > 0):
                seats.ensure_slot(self.conn, offer, starts_at)
                slot_id = seats.take_seat(self.conn, offer.post_service_id, starts_at)
                if slot_id is not None:
                    return slot_id, starts_at, offer.post
            day += timedelta(days=1)
        return None

    def upcoming(self, citizen_id: int, now: datetime) -> list[AppointmentInfo]:
        """Booked appointments starting after now, soonest first."""
        now = _aware_utc(now, "now")
        query = (
            appointment_records.appointment_query()
            .where(
                _appt.c.citizen_id == citizen_id,
                _appt.c.status == BOOKED,
                _appt.c.starts_at > now,
            )
            .order_by(_appt.c.starts_at, _appt.c.id)
        )
        return [appointment_records.appointment_info(row) for row in self.conn.execute(query)]

    def get_appointment(self, appointment_id: int) -> AppointmentInfo | None:
        query = appointment_records.appointment_query().where(_appt.c.id == appointment_id)
        row = self.conn.execute(query).first()
        return appointment_records.appointment_info(row) if row else None

    def cancel(self, citizen_id: int, appointment_id: int, now: datetime) -> bool:
        """Cancel one's own booked, future appointment; its seat goes back on sale."""
        now = _aware_utc(now, "now")
        return self._cancel(
            appointment_id,
            now,
            "",
            _appt.c.citizen_id == citizen_id,
            _appt.c.starts_at > now,
        )

    def cancel_by_staff(
        self, appointment_id: int, reason: str, now: datetime
    ) -> AppointmentInfo | None:
        """Cancel a booked appointment whoever holds it, keeping the reason. None when there
        is no such booked appointment (unknown, already cancelled, attended or no-show)."""
        now = _aware_utc(now, "now")
        if not self._cancel(appointment_id, now, reason.strip()[:300]):
            return None
        return self.get_appointment(appointment_id)

    def set_attendance(
        self, appointment_id: int, status: Literal["attended", "no_show"], now: datetime
    ) -> AppointmentInfo | None:
        """Record that the citizen came (or did not). Works on a booked appointment and
        corrects an earlier record; never on a cancelled one. A no-show is only recorded
        once the appointment has started. None when nothing was changed. The seat stays taken."""
        now = _aware_utc(now, "now")
        if status not in (ATTENDED, NO_SHOW):
            raise ValueError(f"unknown attendance status: {status!r}")
        conditions = [
            _appt.c.id == appointment_id,
            _appt.c.status.in_((BOOKED, ATTENDED, NO_SHOW)),
        ]
        if status == NO_SHOW:
            conditions.append(_appt.c.starts_at <= now)
        result = self.conn.execute(
            sa.update(_appt).where(*conditions).values(status=status, updated_at=now)
        )
        if result.rowcount == 0:
            return None
        return self.get_appointment(appointment_id)

    def undo_attendance(self, appointment_id: int, now: datetime) -> AppointmentInfo | None:
        """Back to booked after a check-in or a no-show recorded by mistake. None when the
        appointment was neither."""
        now = _aware_utc(now, "now")
        result = self.conn.execute(
            sa.update(_appt)
            .where(_appt.c.id == appointment_id, _appt.c.status.in_((ATTENDED, NO_SHOW)))
            .values(status=BOOKED, updated_at=now)
        )
        if result.rowcount == 0:
            return None
        return self.get_appointment(appointment_id)

    def reschedule(
        self, citizen_id: int, appointment_id: int, starts_at: datetime, now: datetime
    ) -> BookingResult:
        """Move one's own booked, future appointment to another time of the same post and
        service; the reference stays. The new seat is taken first: if it is full, nothing
        changes. Rescheduling to the appointment's own time changes nothing and says booked."""
        now = _aware_utc(now, "now")
        starts_at = _aware_utc(starts_at, "starts_at")
        current = self.conn.execute(
            appointment_records.appointment_query(_appt.c.slot_id)
            .where(
                _appt.c.id == appointment_id,
                _appt.c.citizen_id == citizen_id,
                _appt.c.status == BOOKED,
                _appt.c.starts_at > now,
            )
            .with_for_update(of=_appt)
        ).first()
        if current is None:
            return BookingResult(BookingOutcome.unavailable)
        if current.starts_at == starts_at:
            return BookingResult(
                BookingOutcome.booked, appointment_records.appointment_info(current)
            )
        offer = self._offer(current.post_code, current.service_code, *closures_around(starts_at))
        if offer is None:
            return BookingResult(BookingOutcome.unavailable)
        if starts_at not in offer.bookable(starts_at.astimezone(offer.tz).date(), now):
            return BookingResult(BookingOutcome.unavailable)
        held = self._lock_citizen_and_count(
            citizen_id, offer.service_id, starts_at, now, exclude=appointment_id
        )
        if held.same_instant:
            return BookingResult(BookingOutcome.unavailable)

        seats.ensure_slot(self.conn, offer, starts_at)
        if not self._is_sqlite:
            # Lock both slots in id order, so that two citizens swapping times cannot deadlock.
            self.conn.execute(
                sa.select(_slot.c.id)
                .where(
                    sa.or_(
                        _slot.c.id == current.slot_id,
                        sa.and_(
                            _slot.c.post_service_id == offer.post_service_id,
                            _slot.c.starts_at == starts_at,
                        ),
                    )
                )
                .order_by(_slot.c.id)
                .with_for_update()
            ).all()
        new_slot_id = seats.take_seat(self.conn, offer.post_service_id, starts_at)
        if new_slot_id is None:
            return BookingResult(BookingOutcome.full)
        moved = self.conn.execute(
            sa.update(_appt)
            .where(
                _appt.c.id == appointment_id,
                _appt.c.status == BOOKED,
                _appt.c.slot_id == current.slot_id,
            )
            .values(
                slot_id=new_slot_id,
                starts_at=starts_at,
                updated_at=now,
                reminded_day_before_at=None,
                reminded_two_hours_at=None,
            )
        )
        if moved.rowcount != 1:  # the row is locked above: only a broken invariant gets here
            raise RuntimeError(f"appointment {appointment_id} changed while being rescheduled")
        seats.release_seat(self.conn, current.slot_id)
        waitlist.offer_free_seats(self.conn, now, offer.post_id, offer.service_id)  # the old seat
        info = AppointmentInfo(
            id=current.appointment_id,
            reference=current.reference,
            post=offer.post,
            service_code=offer.service_code,
            starts_at=starts_at,
            local=starts_at.astimezone(offer.tz),
            full_name=current.full_name,
            status=BOOKED,
        )
        return BookingResult(BookingOutcome.booked, info)

    # --- internals --------------------------------------------------------------------------

    @property
    def _is_sqlite(self) -> bool:
        return self.conn.dialect.name == "sqlite"

    def _offer(
        self, post_code: str, service_code: str, closed_from: date, closed_to: date
    ) -> Offer | None:
        """The offer as this service books it: from afar, or at the desk (no notice)."""
        return load_offer(
            self.conn, post_code, service_code, closed_from, closed_to, at_desk=self.at_desk
        )

    def _seats_left(self, offer: Offer, start: datetime, end: datetime) -> dict[datetime, int]:
        return seats_left(self.conn, offer, start, end)

    def _lock_citizen_and_count(
        self,
        citizen_id: int,
        service_id: int,
        starts_at: datetime,
        now: datetime,
        exclude: int | None = None,
    ) -> _Held:
        """Lock the citizen's row and count their upcoming booked appointments."""
        upcoming = [
            _appt.c.citizen_id == citizen_id,
            _appt.c.status == BOOKED,
            _appt.c.starts_at >= now,  # one starting now (a walk-in's) is still held
        ]
        if exclude is not None:
            upcoming.append(_appt.c.id != exclude)

        def count(*extra: sa.ColumnElement[bool]) -> sa.ScalarSelect[int]:
            return (
                sa.select(sa.func.count()).select_from(_appt).where(*upcoming, *extra)
            ).scalar_subquery()

        row = self.conn.execute(
            sa.select(
                _citizen.c.id,
                count(_appt.c.starts_at == starts_at).label("same_instant"),
            )
            .where(_citizen.c.id == citizen_id)
            .with_for_update(of=_citizen)
        ).first()
        if row is None:
            raise LookupError(f"no citizen {citizen_id}")
        return _Held(row.same_instant)

    def _cancel(
        self, appointment_id: int, now: datetime, reason: str, *conditions: sa.ColumnElement[bool]
    ) -> bool:
        row = self.conn.execute(
            sa.update(_appt)
            .where(_appt.c.id == appointment_id, _appt.c.status == BOOKED, *conditions)
            .values(status=CANCELLED, cancel_reason=reason, updated_at=now)
            .returning(_appt.c.slot_id, _appt.c.post_id, _appt.c.service_id)
        ).first()
        if row is None:
            return False
        seats.release_seat(self.conn, row.slot_id)
        waitlist.offer_free_seats(self.conn, now, row.post_id, row.service_id)  # first in line
        return True
