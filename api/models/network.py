"""The tables of the consular network."""

from __future__ import annotations

from datetime import date, datetime, time
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from api.models.base import utc_field


class Post(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=8, unique=True)
    name: str = Field(max_length=120)
    country: str = Field(max_length=2, index=True)  # ISO 3166-1 alpha-2
    city: str = Field(max_length=80)
    timezone: str = Field(max_length=64)  # IANA
    address: str = Field(default="", max_length=300)
    phone: str = Field(default="", max_length=40)
    email: str = Field(default="", max_length=120)
    # fair access (README "Booking rules"): bookings per phone and per full name in a
    # rolling window, cancelled ones included; how long a waitlist offer holds
    max_bookings_per_phone: int = 4
    max_bookings_per_name: int = 4
    limit_window_days: int = 30
    waitlist_hold_minutes: int = 120
    # after `no_show_limit` no-shows in `no_show_days`, a citizen books only within
    # `no_show_window_days` (0: no such restriction) and after `no_show_delay_days`
    no_show_limit: int = 2
    no_show_days: int = 90
    no_show_window_days: int = 7
    no_show_delay_days: int = 0
    active: bool = True


class Service(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True)
    position: int = 0  # menu order
    name: str = Field(max_length=120)  # French name, for staff; citizens see the catalogs'


class PostService(SQLModel, table=True):
    """What a post offers: one service, with its slot length, seats and booking window."""

    __tablename__ = "post_service"
    __table_args__ = (
        sa.UniqueConstraint("post_id", "service_id"),
        sa.CheckConstraint("slot_minutes > 0", name="slot_minutes_positive"),
        sa.CheckConstraint("seats_per_slot >= 0", name="seats_not_negative"),
    )
    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="post.id", index=True)
    service_id: int = Field(foreign_key="service.id")
    slot_minutes: int = 30
    seats_per_slot: int = 2
    booking_window_days: int = 30
    min_notice_hours: int = 12
    fee_note: str = Field(default="", max_length=300)
    active: bool = True


class OpeningHours(SQLModel, table=True):
    """Weekly opening hours of a post, in its local time (weekday 0 = Monday)."""

    __tablename__ = "opening_hours"
    __table_args__ = (
        sa.CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday_range"),
        sa.CheckConstraint("opens < closes", name="opens_before_closes"),
    )
    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="post.id", index=True)
    weekday: int
    opens: time
    closes: time


class Closure(SQLModel, table=True):
    """A day a post is closed: public holiday or exceptional closure."""

    __table_args__ = (sa.UniqueConstraint("post_id", "day"),)
    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="post.id", index=True)
    day: date
    reason: str = Field(default="", max_length=200)


class Slot(SQLModel, table=True):
    """Seats taken at one start time. Created on first booking; the CHECK is the backstop."""

    __table_args__ = (
        sa.UniqueConstraint("post_service_id", "starts_at"),
        sa.CheckConstraint("booked >= 0 AND booked <= capacity", name="seats_within_capacity"),
    )
    id: int | None = Field(default=None, primary_key=True)
    post_service_id: int = Field(foreign_key="post_service.id")
    starts_at: datetime = utc_field()
    capacity: int
    booked: int = 0


class AppointmentStatus(StrEnum):
    booked = "booked"
    cancelled = "cancelled"
    attended = "attended"
    no_show = "no_show"


class Appointment(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(max_length=12, unique=True)
    citizen_id: int = Field(foreign_key="citizen.id", index=True)
    post_id: int = Field(foreign_key="post.id", index=True)
    service_id: int = Field(foreign_key="service.id")
    slot_id: int = Field(foreign_key="slot.id", index=True)
    starts_at: datetime = utc_field(index=True)
    full_name: str = Field(max_length=120)
    name_key: str = Field(default="", max_length=120, index=True)  # api.domain.fairness.name_key
    status: AppointmentStatus = Field(
        default=AppointmentStatus.booked,
        sa_column=sa.Column(sa.String(16), nullable=False, default="booked"),
    )
    cancel_reason: str = Field(default="", max_length=300)
    created_at: datetime = utc_field()
    updated_at: datetime = utc_field()
    reminded_day_before_at: datetime | None = utc_field(nullable=True)
    reminded_two_hours_at: datetime | None = utc_field(nullable=True)


class LimitLift(SQLModel, table=True):
    """Staff lifted a booking limit at a post for one phone or one full name: bookings made
    before `lifted_at` no longer count against it."""

    __tablename__ = "limit_lift"
    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="post.id", index=True)
    kind: str = Field(max_length=8)  # phone | name
    subject: str = Field(max_length=120)  # E.164 phone, or a name key
    staff_id: int | None = Field(default=None, foreign_key="staff.id")
    lifted_at: datetime = utc_field()


class WaitlistStatus(StrEnum):
    waiting = "waiting"
    offered = "offered"  # a seat is held for them until offer_expires_at
    booked = "booked"  # took the offer, or booked some other way
    declined = "declined"
    expired = "expired"  # the offer ran out unanswered
    not_reached = "not_reached"  # drawn, but the draw's seats ran out before their turn


class WaitlistEntry(SQLModel, table=True):
    """A citizen waiting for a seat of one service at one post, first come first served."""

    __tablename__ = "waitlist_entry"
    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="post.id", index=True)
    service_id: int = Field(foreign_key="service.id")
    citizen_id: int = Field(foreign_key="citizen.id", index=True)
    full_name: str = Field(default="", max_length=120)
    status: str = Field(default="waiting", max_length=12, index=True)
    created_at: datetime = utc_field()
    offered_starts_at: datetime | None = utc_field(nullable=True)
    offer_expires_at: datetime | None = utc_field(nullable=True)
    offer_slot_id: int | None = Field(default=None, foreign_key="slot.id")
    appointment_id: int | None = Field(default=None, foreign_key="appointment.id")
    updated_at: datetime = utc_field()
    # a draw's winners wait in the draw's own line, offered the seats of its period
    draw_id: int | None = Field(default=None, foreign_key="draw.id", index=True)


class Draw(SQLModel, table=True):
    """A draw for the seats of one period (local days `first_day`..`last_day`) of one service
    at one post: registration from `opens_at` to `closes_at`, then a random order from `seed`
    (api.domain.draws). Status: open → drawn → done, or cancelled while open."""

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="post.id", index=True)
    service_id: int = Field(foreign_key="service.id")
    opens_at: datetime = utc_field()
    closes_at: datetime = utc_field()
    first_day: date
    last_day: date
    status: str = Field(default="open", max_length=12, index=True)
    seed: str | None = Field(default=None, max_length=64)
    drawn_at: datetime | None = utc_field(nullable=True)
    staff_id: int | None = Field(default=None, foreign_key="staff.id")
    created_at: datetime = utc_field()
    updated_at: datetime = utc_field()


class DrawEntry(SQLModel, table=True):
    """A citizen's registration of interest in a draw: one per phone and one per person."""

    __tablename__ = "draw_entry"
    __table_args__ = (
        sa.UniqueConstraint("draw_id", "citizen_id"),
        sa.UniqueConstraint("draw_id", "name_key"),
    )
    id: int | None = Field(default=None, primary_key=True)
    draw_id: int = Field(foreign_key="draw.id", index=True)
    citizen_id: int = Field(foreign_key="citizen.id", index=True)
    full_name: str = Field(max_length=120)
    name_key: str = Field(max_length=120)
    created_at: datetime = utc_field()
    rank: int | None = None  # in the draw's order, 1 = first; set when drawn
    waitlist_entry_id: int | None = Field(default=None, foreign_key="waitlist_entry.id")
