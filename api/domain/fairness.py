"""Fair access: one person, one procedure, and each post's allowance per phone and per name.

The rules, per post (columns of `post`, edited by staff):
- a person — a full name, compared by `flows.world.person_key` — holds at most one upcoming
  booked appointment per service at a post, whichever phone booked it;
- a phone makes at most `max_bookings_per_phone` bookings at a post in `limit_window_days`
  (rolling, by creation time, cancelled ones included: a book-cancel loop hits it); a
  citizen without a phone number counts alone;
- a full name is booked at most `max_bookings_per_name` times at a post in the same window.
A parent books for each child from one phone: the children are persons of their own, within
the phone's allowance. Staff lift a limit for one phone or one name (`lift`): bookings made
before the lift no longer count.

`limit(...)` is asked by the flows before the questions and by `BookingService.book` again,
inside the booking's transaction, after `lock(...)`: on PostgreSQL a transaction-scoped
advisory lock per post and phone and per post and name, so that two concurrent bookings
cannot both slip under a limit (SQLite's write lock already serialises them).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from api.domain.tables import table
from api.models import Appointment, AppointmentStatus, Citizen, LimitLift, Post
from flows.world import LimitInfo, LimitKind, person_key

_appt = table(Appointment)
_citizen = table(Citizen)
_lift = table(LimitLift)
_post = table(Post)

BOOKED = AppointmentStatus.booked.value
PHONE, NAME = "phone", "name"


@dataclass(frozen=True)
class PostRules:
    post_id: int
    per_phone: int
    per_name: int
    days: int
    no_show_limit: int = 2
    no_show_days: int = 90
    no_show_window_days: int = 7
    no_show_delay_days: int = 0


def rules(conn: Connection, post_id: int) -> PostRules:
    row = conn.execute(
        sa.select(
            _post.c.max_bookings_per_phone,
            _post.c.max_bookings_per_name,
            _post.c.limit_window_days,
            _post.c.no_show_limit,
            _post.c.no_show_days,
            _post.c.no_show_window_days,
            _post.c.no_show_delay_days,
        ).where(_post.c.id == post_id)
    ).one()
    return PostRules(post_id, *row)


def rules_of(conn: Connection, post_code: str) -> PostRules | None:
    """A post's rules by its code; None for a post that does not exist."""
    found = conn.execute(sa.select(_post.c.id).where(_post.c.code == post_code)).scalar()
    return rules(conn, int(found)) if found is not None else None


def phone_subject(conn: Connection, citizen_id: int) -> str:
    """What the phone limit counts for this citizen: their number, or the citizen alone."""
    phone = conn.execute(sa.select(_citizen.c.phone).where(_citizen.c.id == citizen_id)).scalar()
    return phone or f"#{citizen_id}"


def _by_subject(subject: str) -> sa.ColumnElement[bool]:
    if subject.startswith("#"):
        return _appt.c.citizen_id == int(subject[1:])
    same_phone = sa.select(_citizen.c.id).where(_citizen.c.phone == subject)
    return _appt.c.citizen_id.in_(same_phone.scalar_subquery())


def _since(conn: Connection, post: PostRules, kind: str, subject: str, now: datetime) -> datetime:
    lifted = conn.execute(
        sa.select(sa.func.max(_lift.c.lifted_at)).where(
            _lift.c.post_id == post.post_id, _lift.c.kind == kind, _lift.c.subject == subject
        )
    ).scalar()
    start = now - timedelta(days=post.days)
    return max(start, lifted) if lifted is not None else start


def counted(conn: Connection, post: PostRules, kind: str, subject: str, now: datetime) -> int:
    """How many bookings count against this phone (or name) at the post now."""
    since = _since(conn, post, kind, subject, now)
    who = _by_subject(subject) if kind == PHONE else _appt.c.name_key == subject
    return int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(_appt)
            .where(_appt.c.post_id == post.post_id, _appt.c.created_at > since, who)
        ).scalar_one()
    )


def _allowance(
    conn: Connection,
    post: PostRules,
    kind: str,
    subject: str,
    who: sa.ColumnElement[bool],
    limit: int,
    now: datetime,
) -> LimitInfo | None:
    since = _since(conn, post, kind, subject, now)
    made = list(
        conn.execute(
            sa.select(_appt.c.created_at)
            .where(_appt.c.post_id == post.post_id, _appt.c.created_at > since, who)
            .order_by(_appt.c.created_at)
        ).scalars()
    )
    if len(made) < limit:
        return None
    # one more booking is possible once enough of those leave the window
    lifts_at = made[len(made) - limit] + timedelta(days=post.days) if limit > 0 else None
    return LimitInfo(LimitKind(kind), limit, post.days, lifts_at)


def limit(
    conn: Connection,
    citizen_id: int,
    post_id: int,
    service_id: int | None,
    full_name: str | None,
    now: datetime,
) -> LimitInfo | None:
    post = rules(conn, post_id)
    phone = phone_subject(conn, citizen_id)
    stopped = _allowance(conn, post, PHONE, phone, _by_subject(phone), post.per_phone, now)
    if stopped is not None:
        return stopped
    no_shows = _no_shows(conn, post, phone, now)
    if no_shows is not None and no_shows.kind is LimitKind.no_shows:
        return no_shows
    if full_name is None:
        return no_shows
    return _named(conn, post, service_id, full_name, now) or no_shows


def _no_shows(conn: Connection, post: PostRules, phone: str, now: datetime) -> LimitInfo | None:
    """After `no_show_limit` no-shows at the post in `no_show_days`: no booking before the
    last one + `no_show_delay_days`, then only within `no_show_window_days` (as the post set)."""
    if post.no_show_limit <= 0:
        return None
    missed = list(
        conn.execute(
            sa.select(_appt.c.starts_at).where(
                _appt.c.post_id == post.post_id,
                _appt.c.status == AppointmentStatus.no_show.value,
                _appt.c.starts_at > now - timedelta(days=post.no_show_days),
                _appt.c.starts_at <= now,
                _by_subject(phone),
            )
        ).scalars()
    )
    if len(missed) < post.no_show_limit:
        return None
    lifts_at = max(missed) + timedelta(days=post.no_show_delay_days)
    if post.no_show_delay_days > 0 and now < lifts_at:
        return LimitInfo(LimitKind.no_shows, post.no_show_limit, post.no_show_days, lifts_at)
    if post.no_show_window_days > 0:
        return LimitInfo(
            LimitKind.no_shows_window,
            post.no_show_limit,
            post.no_show_days,
            None,
            window_days=post.no_show_window_days,
        )
    return None


def _named(
    conn: Connection, post: PostRules, service_id: int | None, full_name: str, now: datetime
) -> LimitInfo | None:
    post_id = post.post_id
    key = person_key(full_name)
    if service_id is not None:
        held = conn.execute(
            sa.select(_appt.c.id)
            .where(
                _appt.c.post_id == post_id,
                _appt.c.service_id == service_id,
                _appt.c.name_key == key,
                _appt.c.status == BOOKED,
                _appt.c.starts_at >= now,  # one starting now (a walk-in's) is still held
            )
            .limit(1)
        ).first()
        if held is not None:
            return LimitInfo(LimitKind.name_held, 1, post.days, None)
    return _allowance(conn, post, NAME, key, _appt.c.name_key == key, post.per_name, now)


def within(stopped: LimitInfo, tz: ZoneInfo, starts_at: datetime, now: datetime) -> bool:
    """Whether a time may still be booked under a restriction (the no-shows' window)."""
    if stopped.kind is not LimitKind.no_shows_window or stopped.window_days is None:
        return False
    last = now.astimezone(tz).date() + timedelta(days=stopped.window_days)
    return starts_at.astimezone(tz).date() <= last


def lock(conn: Connection, citizen_id: int, post_id: int, full_name: str) -> None:
    """Serialise bookings of one phone, and of one name, at one post (PostgreSQL)."""
    if conn.dialect.name == "sqlite":
        return
    for subject in (phone_subject(conn, citizen_id), person_key(full_name)):
        key = zlib.crc32(f"{post_id}:{subject}".encode()) - 2**31
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))


def lift(
    conn: Connection, post_id: int, kind: str, subject: str, staff_id: int | None, now: datetime
) -> None:
    """Staff lift a limit at a post for one phone (E.164, or `#citizen id`) or one full name."""
    if kind not in (PHONE, NAME):
        raise ValueError(f"unknown limit kind: {kind!r}")
    if kind == NAME:
        subject = person_key(subject)
    conn.execute(
        sa.insert(_lift).values(
            post_id=post_id, kind=kind, subject=subject, staff_id=staff_id, lifted_at=now
        )
    )
