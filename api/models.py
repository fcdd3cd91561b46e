"""The tables. SQLModel classes, one per entity; times are UTC instants (see UTCDateTime)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from enum import Enum, StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

# One naming convention for every constraint, so Alembic (and SQLite's batch mode) can name them.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: the same on SQLite and PostgreSQL."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _utc(nullable: bool = False, **kw: Any) -> Any:
    return Field(sa_column=sa.Column(UTCDateTime(), nullable=nullable, **kw))


def _json(nullable: bool = False) -> Any:
    return Field(default=None, sa_column=sa.Column(sa.JSON(), nullable=nullable))


# --- the consular network -------------------------------------------------------------------


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
    starts_at: datetime = _utc()
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
    starts_at: datetime = _utc(index=True)
    full_name: str = Field(max_length=120)
    name_key: str = Field(default="", max_length=120, index=True)  # api.domain.fairness.name_key
    status: AppointmentStatus = Field(
        default=AppointmentStatus.booked,
        sa_column=sa.Column(sa.String(16), nullable=False, default="booked"),
    )
    cancel_reason: str = Field(default="", max_length=300)
    created_at: datetime = _utc()
    updated_at: datetime = _utc()
    reminded_day_before_at: datetime | None = _utc(nullable=True)
    reminded_two_hours_at: datetime | None = _utc(nullable=True)


class LimitLift(SQLModel, table=True):
    """Staff lifted a booking limit at a post for one phone or one full name: bookings made
    before `lifted_at` no longer count against it."""

    __tablename__ = "limit_lift"
    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="post.id", index=True)
    kind: str = Field(max_length=8)  # phone | name
    subject: str = Field(max_length=120)  # E.164 phone, or a name key
    staff_id: int | None = Field(default=None, foreign_key="staff.id")
    lifted_at: datetime = _utc()


class WaitlistStatus(StrEnum):
    waiting = "waiting"
    offered = "offered"  # a seat is held for them until offer_expires_at
    booked = "booked"  # took the offer, or booked some other way
    declined = "declined"
    expired = "expired"  # the offer ran out unanswered


class WaitlistEntry(SQLModel, table=True):
    """A citizen waiting for a seat of one service at one post, first come first served."""

    __tablename__ = "waitlist_entry"
    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="post.id", index=True)
    service_id: int = Field(foreign_key="service.id")
    citizen_id: int = Field(foreign_key="citizen.id", index=True)
    full_name: str = Field(default="", max_length=120)
    status: str = Field(default="waiting", max_length=12, index=True)
    created_at: datetime = _utc()
    offered_starts_at: datetime | None = _utc(nullable=True)
    offer_expires_at: datetime | None = _utc(nullable=True)
    offer_slot_id: int | None = Field(default=None, foreign_key="slot.id")
    appointment_id: int | None = Field(default=None, foreign_key="appointment.id")
    updated_at: datetime = _utc()


# --- citizens and their channels --------------------------------------------------------------


class Citizen(SQLModel, table=True):
    """A person writing to the bot. A phone number vouched for by a provider (WhatsApp, a
    shared Telegram contact) is verified and belongs to one citizen only; a number typed
    into the simulator is not, and is never merged with anyone."""

    __table_args__ = (
        sa.Index(
            "uq_citizen_verified_phone",
            "phone",
            unique=True,
            sqlite_where=sa.text("phone_verified"),
            postgresql_where=sa.text("phone_verified"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    phone: str | None = Field(default=None, max_length=20, index=True)  # E.164
    phone_verified: bool = False
    country: str | None = Field(default=None, max_length=2, index=True)  # from the phone number
    lang: str | None = Field(default=None, max_length=8)
    opted_out: bool = False  # announcements only; own reminders continue
    # voice prompts with the bot's messages: None until the first voice note turns them on,
    # then what the citizen chose (the language menu's last option, or the keyword VOIX)
    voice: bool | None = None
    created_at: datetime = _utc()
    erased_at: datetime | None = _utc(nullable=True)


class ChannelIdentity(SQLModel, table=True):
    """One address on one channel (whatsapp:+225…, telegram chat id, simulator user), with the
    conversation held there. The conversation lives on this row so that one turn reads and
    writes a single row."""

    __tablename__ = "channel_identity"
    __table_args__ = (sa.UniqueConstraint("channel", "address"),)
    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    address: str = Field(max_length=64)
    citizen_id: int = Field(foreign_key="citizen.id", index=True)
    last_inbound_at: datetime | None = _utc(nullable=True)
    unreachable_at: datetime | None = _utc(nullable=True)
    state: dict[str, Any] | None = _json(nullable=True)
    state_updated_at: datetime | None = _utc(nullable=True)
    # This sender's messages since `burst_started_at` (bot.runtime's flood rule).
    burst_started_at: datetime | None = _utc(nullable=True)
    burst_count: int = 0


class InboundMessage(SQLModel, table=True):
    """Provider message ids already processed: the dedupe set (purged after 48 hours)."""

    __tablename__ = "inbound_message"
    channel: str = Field(max_length=16, primary_key=True)
    provider_id: str = Field(max_length=64, primary_key=True)
    received_at: datetime = _utc(index=True)


class ConversationStart(SQLModel, table=True):
    """One row per conversation (a first message, or the first after 30 minutes of silence):
    the dashboard's conversations per day, channel and language. No address, no text."""

    __tablename__ = "conversation_start"
    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    lang: str = Field(default="fr", max_length=8)
    citizen_id: int = Field(index=True)
    started_at: datetime = _utc(index=True)


# --- staff ------------------------------------------------------------------------------------


class StaffRole(StrEnum):
    admin = "admin"
    agent = "agent"
    translator = "translator"  # reviews the catalogs of their languages (staff_language)


class Staff(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=200, unique=True)
    role: StaffRole = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    password_hash: str | None = Field(default=None, max_length=200)
    active: bool = True
    created_at: datetime = _utc()


class StaffPost(SQLModel, table=True):
    """The posts an agent is attached to."""

    __tablename__ = "staff_post"
    staff_id: int = Field(foreign_key="staff.id", primary_key=True)
    post_id: int = Field(foreign_key="post.id", primary_key=True)


class StaffLanguage(SQLModel, table=True):
    """The languages a translator reviews (administrators review every language)."""

    __tablename__ = "staff_language"
    staff_id: int = Field(foreign_key="staff.id", primary_key=True)
    lang: str = Field(max_length=8, primary_key=True)


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"
    id: int | None = Field(default=None, primary_key=True)
    staff_id: int = Field(foreign_key="staff.id", index=True)
    token_hash: str = Field(max_length=64, unique=True)  # sha256 of a 256-bit random token
    created_at: datetime = _utc()
    last_used_at: datetime | None = _utc(nullable=True)
    revoked_at: datetime | None = _utc(nullable=True)
    expires_at: datetime | None = _utc(nullable=True)  # None: until revoked


class ConsoleLogin(SQLModel, table=True):
    """One console session on the server's side: logging out ends it, so a copied cookie stops
    working; disabling the account ends them all. The cookie carries the random id, the
    database its SHA-256."""

    __tablename__ = "console_login"
    id_hash: str = Field(max_length=64, primary_key=True)
    staff_id: int = Field(foreign_key="staff.id", index=True)
    created_at: datetime = _utc()
    expires_at: datetime = _utc()
    ended_at: datetime | None = _utc(nullable=True)


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_log"
    id: int | None = Field(default=None, primary_key=True)
    staff_id: int | None = Field(default=None, foreign_key="staff.id", index=True)
    action: str = Field(max_length=40)
    entity: str = Field(max_length=40)
    entity_id: str = Field(max_length=40)
    before: dict[str, Any] | None = _json(nullable=True)
    after: dict[str, Any] | None = _json(nullable=True)
    at: datetime = _utc(index=True)


# --- consular requests (dossiers) -------------------------------------------------------------


class RequestStatus(StrEnum):
    received = "received"
    in_progress = "in_progress"
    ready = "ready"  # for pick-up
    delivered = "delivered"
    rejected = "rejected"


class ConsularRequest(SQLModel, table=True):
    """A file a citizen lodged at a post; staff issue its reference (ABJ-2026-000123)."""

    __tablename__ = "consular_request"
    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(max_length=20, unique=True)
    post_id: int = Field(foreign_key="post.id", index=True)
    service_id: int = Field(foreign_key="service.id")
    citizen_id: int | None = Field(default=None, foreign_key="citizen.id", index=True)
    phone: str | None = Field(default=None, max_length=20, index=True)  # E.164
    full_name: str = Field(max_length=120)
    name_key: str = Field(default="", max_length=120, index=True)  # flows.world.person_key
    birth_date: date | None = None
    status: RequestStatus = Field(
        default=RequestStatus.received,
        sa_column=sa.Column(sa.String(16), nullable=False, default="received", index=True),
    )
    reason: str = Field(default="", max_length=300)  # why rejected
    created_at: datetime = _utc()
    updated_at: datetime = _utc()


class RequestSequence(SQLModel, table=True):
    """The last serial issued per post and year: ABJ-2026-000123 comes from (ABJ, 2026) = 123."""

    __tablename__ = "request_sequence"
    post_id: int = Field(foreign_key="post.id", primary_key=True)
    year: int = Field(primary_key=True)
    last: int = 0


class RequestEvent(SQLModel, table=True):
    """The history of a request: each status it went through, who moved it, and why."""

    __tablename__ = "request_event"
    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="consular_request.id", index=True)
    status: str = Field(max_length=16)
    note: str = Field(default="", max_length=300)
    staff_id: int | None = Field(default=None, foreign_key="staff.id")
    at: datetime = _utc()


class LookupGuard(SQLModel, table=True):
    """Wrong answers to a status lookup, per reference and sender (`c<citizen id>`): three in
    a row lock that sender out for 15 minutes. The row of sender `*` counts every sender's
    failures: its ceiling locks the reference for all but its verified owner."""

    __tablename__ = "lookup_guard"
    reference: str = Field(max_length=20, primary_key=True)
    sender: str = Field(max_length=24, primary_key=True)
    failures: int = 0
    locked_until: datetime | None = _utc(nullable=True)
    updated_at: datetime = _utc()


# --- the outbox: every message the bot sends on its own initiative ----------------------------


class Lane(int, Enum):
    """Priority: replies and notifications before bulk announcements."""

    reply = 0
    notification = 1
    bulk = 2


class OutboxStatus(StrEnum):
    pending = "pending"
    sending = "sending"  # claimed by a worker
    sent = "sent"  # accepted by the provider
    delivered = "delivered"
    read = "read"
    failed = "failed"  # permanently
    skipped = "skipped"  # not sendable: opted out, unreachable, outside the 24-hour window…
    cancelled = "cancelled"


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (
        sa.Index("ix_outbox_due", "status", "lane", "next_attempt_at"),
        sa.UniqueConstraint("dedupe_key"),
    )
    id: int | None = Field(default=None, primary_key=True)
    lane: int = 0
    kind: str = Field(max_length=24)  # reply, notification, reminder, broadcast
    channel: str = Field(max_length=16)
    address: str = Field(max_length=64)
    citizen_id: int | None = Field(default=None, foreign_key="citizen.id", index=True)
    lang: str = Field(default="fr", max_length=8)
    payload: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))
    dedupe_key: str | None = Field(default=None, max_length=120)  # exactly once per purpose
    broadcast_id: int | None = Field(default=None, foreign_key="broadcast.id", index=True)
    status: str = Field(
        default="pending", sa_column=sa.Column(sa.String(12), nullable=False, default="pending")
    )
    skip_reason: str = Field(default="", max_length=40)
    attempts: int = 0
    next_attempt_at: datetime = _utc()
    claimed_by: str | None = Field(default=None, max_length=64)
    claimed_at: datetime | None = _utc(nullable=True)
    # Set when a send may have reached the provider without its answer being recorded (the
    # worker's lease expired, or the call broke after the request went out): the start of
    # the claim it happened in. The next claim asks the provider before sending again.
    in_doubt_since: datetime | None = _utc(nullable=True)
    provider_message_id: str | None = Field(default=None, max_length=64, index=True)
    error: str = Field(default="", max_length=300)
    created_at: datetime = _utc()
    sent_at: datetime | None = _utc(nullable=True)
    delivered_at: datetime | None = _utc(nullable=True)
    read_at: datetime | None = _utc(nullable=True)


# --- broadcasts -------------------------------------------------------------------------------


class BroadcastStatus(StrEnum):
    draft = "draft"
    scheduled = "scheduled"
    sending = "sending"  # audience being written to the outbox / being sent
    sent = "sent"
    cancelled = "cancelled"


class Broadcast(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=200)
    texts: dict[str, str] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))  # lang → text
    segment: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))
    status: str = Field(
        default="draft", sa_column=sa.Column(sa.String(12), nullable=False, default="draft")
    )
    send_at: datetime | None = _utc(nullable=True)
    created_by: int | None = Field(default=None, foreign_key="staff.id")
    created_at: datetime = _utc()
    started_at: datetime | None = _utc(nullable=True)
    finished_at: datetime | None = _utc(nullable=True)
    # Where fan-out stands: the last citizen id written to the outbox (resumable after a crash)
    cursor: int = 0
    queued: int = 0
    skipped: dict[str, int] | None = _json(nullable=True)  # reason → count


# --- translations reviewed by their speakers, voice prompts -------------------------------------


class Translation(SQLModel, table=True):
    """One catalog entry as a translator left it: it overlays locales/<lang>/…/messages.po.

    `source` is the French text it was reviewed against: when the French changes, the entry
    is "changed" (to review again) and keeps its text until then (`previous_text` keeps the
    text before the last edit)."""

    lang: str = Field(max_length=8, primary_key=True)
    key: str = Field(max_length=80, primary_key=True)
    text: str = Field(max_length=4096)
    source: str = Field(max_length=4096)
    reviewed: bool = False
    previous_text: str | None = Field(default=None, max_length=4096)
    comment: str = Field(default="", max_length=1000)
    staff_id: int | None = Field(default=None, foreign_key="staff.id")
    updated_at: datetime = _utc()


class TranslationVersion(SQLModel, table=True):
    """One row, bumped by every change of translations, glossary or voice prompts: each
    process polls it (one primary-key read every few seconds) to reload its overlay."""

    __tablename__ = "translation_version"
    id: int = Field(default=1, primary_key=True)
    version: int = 0


class GlossaryTerm(SQLModel, table=True):
    """A consular term in one language, edited by translators (seeded from glossary.csv)."""

    __tablename__ = "glossary_term"
    term_id: str = Field(max_length=40, primary_key=True)
    lang: str = Field(max_length=8, primary_key=True)
    text: str = Field(max_length=200)
    staff_id: int | None = Field(default=None, foreign_key="staff.id")
    updated_at: datetime = _utc()


class VoicePrompt(SQLModel, table=True):
    """A recorded clip (OGG/Opus) of one message in one language, served at /voice/{token}."""

    __tablename__ = "voice_prompt"
    lang: str = Field(max_length=8, primary_key=True)
    key: str = Field(max_length=80, primary_key=True)
    token: str = Field(max_length=64, unique=True)  # random: the URL cannot be guessed
    audio: bytes = Field(sa_column=sa.Column(sa.LargeBinary(), nullable=False))
    seconds: float = 0.0
    staff_id: int | None = Field(default=None, foreign_key="staff.id")
    updated_at: datetime = _utc()


# --- the consular desk: conversations with a person (menu 7) ---------------------------------


class DeskStatus(StrEnum):
    waiting = "waiting"  # the citizen wrote last: an agent has to answer
    open = "open"  # an agent answered or took it
    closed = "closed"


class DeskConversation(SQLModel, table=True):
    """A citizen's conversation with the desk of one post (the console's inbox). At most one
    is not closed per citizen."""

    __tablename__ = "desk_conversation"
    __table_args__ = (
        sa.Index("ix_desk_conversation_inbox", "post_id", "status", "waiting_since"),
        sa.Index(
            "uq_desk_conversation_live",
            "citizen_id",
            unique=True,
            sqlite_where=sa.text("status != 'closed'"),
            postgresql_where=sa.text("status != 'closed'"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    citizen_id: int = Field(foreign_key="citizen.id", index=True)
    post_id: int = Field(foreign_key="post.id")
    channel: str = Field(max_length=16)  # where the citizen wrote from
    lang: str = Field(default="fr", max_length=8)
    status: str = Field(
        default="waiting", sa_column=sa.Column(sa.String(12), nullable=False, default="waiting")
    )
    assigned_to: int | None = Field(default=None, foreign_key="staff.id")
    created_at: datetime = _utc()
    # the citizen's first message not answered yet (None once an agent answered)
    waiting_since: datetime | None = _utc(nullable=True)
    first_response_at: datetime | None = _utc(nullable=True)
    last_message_at: datetime = _utc()
    closed_at: datetime | None = _utc(nullable=True)
    # what the citizen last typed to the bot before asking for a person: [[step, text], …]
    tried: list[list[str]] | None = _json(nullable=True)


class DeskMessage(SQLModel, table=True):
    """One message of a desk conversation: `in` from the citizen, `out` from an agent."""

    __tablename__ = "desk_message"
    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="desk_conversation.id", index=True)
    direction: str = Field(max_length=3)  # in | out
    kind: str = Field(default="text", max_length=16)  # text, photo, voice… (as flows.Kind)
    text: str = Field(default="", sa_column=sa.Column(sa.Text(), nullable=False, default=""))
    media: str = Field(default="", max_length=500)  # the provider's reference to a photo…
    staff_id: int | None = Field(default=None, foreign_key="staff.id")
    outbox_id: int | None = Field(default=None, foreign_key="outbox.id")
    at: datetime = _utc()


class DeskAnswer(SQLModel, table=True):
    """A canned answer of the desk, in one language, maintained by staff."""

    __tablename__ = "desk_answer"
    id: int | None = Field(default=None, primary_key=True)
    lang: str = Field(max_length=8, index=True)
    title: str = Field(max_length=80)
    text: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    created_by: int | None = Field(default=None, foreign_key="staff.id")
    created_at: datetime = _utc()
