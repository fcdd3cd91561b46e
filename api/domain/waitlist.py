"""The waitlist: citizens waiting for a seat of one service at one post, first come first served.

A citizen who finds no free seat over the whole booking window joins the line (`join`). When
a seat frees — a cancellation by the citizen or by staff, a closure lifted, capacity or hours
raised — `offer_free_seats` holds it for the first citizen waiting: the seat is taken with the
same conditional UPDATE as a booking (so nobody else can book it meanwhile), the entry becomes
`offered` until `post.waitlist_hold_minutes` from now, the citizen is told on their channel,
in their language, with the day and time, and their conversation is put on the offer ("1"
takes it, "2" declines). An offer not answered in time expires: the seat goes to the next
(`expire_offers`, then `offer_free_seats`).

Two citizens can never accept the same seat: a held seat belongs to one entry, and accepting
is one conditional UPDATE of that entry (`offered` and not expired → `booked`). A citizen who
books that service at that post some other way leaves the line (`left_by_booking`).

Cancellations call `offer_free_seats` for their post and service in their own transaction;
the scheduler's `waitlist.offers` job (api.worker) runs `run` every minute for everything else.

A draw's winners (api.domain.draws) wait in a line of their own (`draw_id` set, in the drawn
order), offered only the seats of the draw's period, which the ordinary line never gets while
the draw is pending. Everything else — the hold, the message, "1"/"2", the expiry — is the same.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from api import db
from api.domain import outbox
from api.domain.tables import table
from api.models import ChannelIdentity, Post, PostService, Service, Slot, WaitlistEntry
from flows.choices import service_name
from flows.messages import msg, raw
from flows.state import Conversation

log = logging.getLogger(__name__)

_entry = table(WaitlistEntry)
_post = table(Post)
_service = table(Service)
_offer_t = table(PostService)
_slot = table(Slot)
_identity = table(ChannelIdentity)

WAITING, OFFERED, BOOKED, DECLINED, EXPIRED = "waiting", "offered", "booked", "declined", "expired"
NOT_REACHED = "not_reached"
IN_LINE = (WAITING, OFFERED)
JOB_ID = "waitlist.offers"


@dataclass(frozen=True)
class Entry:
    id: int
    post_code: str
    service_code: str
    citizen_id: int
    full_name: str
    status: str
    place: int | None  # in the line, while waiting or offered
    created_at: datetime
    offered_starts_at: datetime | None
    offer_expires_at: datetime | None


def _ids(conn: Connection, post_code: str, service_code: str) -> tuple[int, int] | None:
    row = conn.execute(
        sa.select(_post.c.id, _service.c.id)
        .select_from(
            _offer_t.join(_post, _post.c.id == _offer_t.c.post_id).join(
                _service, _service.c.id == _offer_t.c.service_id
            )
        )
        .where(_post.c.code == post_code, _service.c.code == service_code)
    ).first()
    return (int(row[0]), int(row[1])) if row else None


def codes(conn: Connection, post_id: int, service_id: int) -> tuple[str, str]:
    post = conn.execute(sa.select(_post.c.code).where(_post.c.id == post_id)).scalar_one()
    service = conn.execute(
        sa.select(_service.c.code).where(_service.c.id == service_id)
    ).scalar_one()
    return str(post), str(service)


def place(conn: Connection, entry_id: int) -> int:
    """The entry's place in its line (1 = first), counting those waiting or offered before."""
    mine = (
        sa.select(_entry.c.post_id, _entry.c.service_id, _entry.c.draw_id)
        .where(_entry.c.id == entry_id)
        .cte()
    )
    return int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(_entry.join(mine, sa.true()))
            .where(
                _entry.c.post_id == mine.c.post_id,
                _entry.c.service_id == mine.c.service_id,
                _entry.c.draw_id.is_not_distinct_from(mine.c.draw_id),
                _entry.c.status.in_(IN_LINE),
                _entry.c.id <= entry_id,
            )
        ).scalar_one()
    )


def join(
    conn: Connection,
    citizen_id: int,
    post_code: str,
    service_code: str,
    full_name: str,
    now: datetime,
) -> int:
    """Join the line (or keep one's place in it); returns the place."""
    ids = _ids(conn, post_code, service_code)
    if ids is None:
        raise LookupError(f"no offer of {service_code} at {post_code}")
    existing = conn.execute(
        sa.select(_entry.c.id).where(
            _entry.c.citizen_id == citizen_id,
            _entry.c.post_id == ids[0],
            _entry.c.service_id == ids[1],
            _entry.c.draw_id.is_(None),
            _entry.c.status.in_(IN_LINE),
        )
    ).scalar()
    if existing is None:
        existing = conn.execute(
            sa.insert(_entry)
            .values(
                post_id=ids[0],
                service_id=ids[1],
                citizen_id=citizen_id,
                full_name=" ".join(full_name.split())[:120],
                status=WAITING,
                created_at=now,
                updated_at=now,
            )
            .returning(_entry.c.id)
        ).scalar_one()
    return place(conn, int(existing))


def _release(conn: Connection, slot_id: int | None) -> None:
    if slot_id is not None:
        conn.execute(
            sa.update(_slot)
            .where(_slot.c.id == slot_id, _slot.c.booked > 0)
            .values(booked=_slot.c.booked - 1)
        )


def _end_offer(
    conn: Connection, status: str, now: datetime, *conditions: sa.ColumnElement[bool]
) -> list[tuple[int, int]]:
    """Offered entries → `status`, their held seats back; the (post, service) they were for."""
    rows = conn.execute(
        sa.update(_entry)
        .where(_entry.c.status == OFFERED, *conditions)
        .values(status=status, updated_at=now)
        .returning(_entry.c.offer_slot_id, _entry.c.post_id, _entry.c.service_id)
    ).all()
    for row in rows:
        _release(conn, row.offer_slot_id)
    return [(row.post_id, row.service_id) for row in rows]


def expire_offers(conn: Connection, now: datetime) -> list[tuple[int, int]]:
    return _end_offer(conn, EXPIRED, now, _entry.c.offer_expires_at <= now)


def decline(conn: Connection, citizen_id: int, entry_id: int, now: datetime) -> bool:
    ended = _end_offer(
        conn, DECLINED, now, _entry.c.id == entry_id, _entry.c.citizen_id == citizen_id
    )
    for post_id, service_id in ended:
        offer_free_seats(conn, now, post_id, service_id)
    return bool(ended)


def _open_offer(citizen_id: int, entry_id: int, now: datetime) -> tuple[Any, ...]:
    """The citizen's entry while its offer holds."""
    return (
        _entry.c.id == entry_id,
        _entry.c.citizen_id == citizen_id,
        _entry.c.status == OFFERED,
        _entry.c.offer_expires_at > now,
    )


def offered_terms(conn: Connection, citizen_id: int, entry_id: int, now: datetime) -> Any:
    """What an open offer would book — post (and its time zone), service, name, start — for
    the limits to weigh before it is taken (a row, or None once the offer is gone)."""
    return conn.execute(
        sa.select(
            _entry.c.post_id,
            _post.c.timezone,
            _entry.c.service_id,
            _entry.c.full_name,
            _entry.c.offered_starts_at,
        )
        .join(_post, _post.c.id == _entry.c.post_id)
        .where(*_open_offer(citizen_id, entry_id, now))
    ).first()


def accept(conn: Connection, citizen_id: int, entry_id: int, now: datetime) -> Any:
    """The one conditional UPDATE that takes an offer: the entry's row, or None."""
    return conn.execute(
        sa.update(_entry)
        .where(*_open_offer(citizen_id, entry_id, now))
        .values(status=BOOKED, updated_at=now)
        .returning(
            _entry.c.offer_slot_id,
            _entry.c.offered_starts_at,
            _entry.c.full_name,
            _entry.c.post_id,
            _entry.c.service_id,
        )
    ).first()


def booked_from_offer(conn: Connection, entry_id: int, appointment_id: int) -> None:
    conn.execute(
        sa.update(_entry).where(_entry.c.id == entry_id).values(appointment_id=appointment_id)
    )


def left_by_booking(
    conn: Connection, citizen_id: int, post_id: int, service_id: int, now: datetime
) -> None:
    """The citizen booked that service there some other way: out of the line (a seat held
    for them goes to the next)."""
    which = (
        _entry.c.citizen_id == citizen_id,
        _entry.c.post_id == post_id,
        _entry.c.service_id == service_id,
    )
    conn.execute(
        sa.update(_entry)
        .where(_entry.c.status == WAITING, *which)
        .values(status=BOOKED, updated_at=now)
    )
    for ended in _end_offer(conn, BOOKED, now, *which):
        offer_free_seats(conn, now, *ended)


def offer(conn: Connection, citizen_id: int, entry_id: int, now: datetime) -> Any:
    """The seat held for this citizen's entry, while the offer holds (a row, or None)."""
    return conn.execute(
        sa.select(
            _entry.c.id,
            _entry.c.offered_starts_at,
            _entry.c.offer_expires_at,
            _post.c.code.label("post_code"),
            _service.c.code.label("service_code"),
        )
        .select_from(
            _entry.join(_post, _post.c.id == _entry.c.post_id).join(
                _service, _service.c.id == _entry.c.service_id
            )
        )
        .where(*_open_offer(citizen_id, entry_id, now))
    ).first()


def offer_free_seats(
    conn: Connection, now: datetime, post_id: int | None = None, service_id: int | None = None
) -> int:
    """Hold a free seat for the first citizen waiting, line by line, as long as both last;
    returns how many offers were made."""
    from api.domain import draws  # draws and booking call back into the waitlist
    from api.domain.booking import BookingService

    lines = sa.select(_entry.c.post_id, _entry.c.service_id, _entry.c.draw_id).where(
        _entry.c.status == WAITING
    )
    if post_id is not None and service_id is not None:
        lines = lines.where(_entry.c.post_id == post_id, _entry.c.service_id == service_id)
    made = 0
    service = BookingService(conn)
    for line in conn.execute(lines.distinct()).all():
        post_code, service_code = codes(conn, line.post_id, line.service_id)
        hold = conn.execute(
            sa.select(_post.c.waitlist_hold_minutes).where(_post.c.id == line.post_id)
        ).scalar_one()
        while True:
            first = conn.execute(
                sa.select(_entry.c.id, _entry.c.citizen_id)
                .where(
                    _entry.c.post_id == line.post_id,
                    _entry.c.service_id == line.service_id,
                    _entry.c.draw_id.is_not_distinct_from(line.draw_id),
                    _entry.c.status == WAITING,
                )
                .order_by(_entry.c.id)
                .limit(1)
            ).first()
            if first is None:
                break
            if line.draw_id is None:
                held = service.hold_seat(post_code, service_code, now)
            else:  # a draw's winners: the seats of its period only
                held = draws.hold_seat(service, line.draw_id, post_code, service_code, now)
            if held is None:
                break
            slot_id, starts_at, post_info = held
            expires_at = now + timedelta(minutes=hold)
            taken = conn.execute(
                sa.update(_entry)
                .where(_entry.c.id == first.id, _entry.c.status == WAITING)
                .values(
                    status=OFFERED,
                    offer_slot_id=slot_id,
                    offered_starts_at=starts_at,
                    offer_expires_at=expires_at,
                    updated_at=now,
                )
            )
            if taken.rowcount != 1:  # another clock offered it first: give the seat back
                _release(conn, slot_id)
                continue
            _tell(
                conn,
                first.citizen_id,
                first.id,
                service_code,
                post_info,
                starts_at,
                expires_at,
                now,
                drawn=line.draw_id is not None,
            )
            made += 1
    return made


def _tell(
    conn: Connection,
    citizen_id: int,
    entry_id: int,
    service_code: str,
    post: Any,
    starts_at: datetime,
    expires_at: datetime,
    now: datetime,
    *,
    drawn: bool = False,
) -> None:
    """The offer, on the citizen's channel in their language; their conversation waits on it."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(post.timezone)
    said = {
        "service": service_name(service_code),
        "post": raw(post.name),
        "when": starts_at.astimezone(tz),
        "until": expires_at.astimezone(tz),
    }
    # i18n: a seat held for a citizen drawn by lot (a draw) or first on the waitlist
    message = msg("notify.draw_offer", **said) if drawn else msg("notify.waitlist_offer", **said)
    outbox.notify(
        conn, citizen_id, message, kind="notification", dedupe_key=f"waitlist:{entry_id}", now=now
    )
    target = outbox.reachable_channel(conn, citizen_id)
    if target is None:
        return
    state = Conversation(
        lang=target.lang,
        flow="waitlist",
        step="offer",
        data={"entry": entry_id, "until": expires_at.isoformat()},
        updated_at=now,
    )
    conn.execute(
        sa.update(_identity)
        .where(_identity.c.channel == target.channel, _identity.c.address == target.address)
        .values(state=state.to_json(), state_updated_at=now)
    )


def run(engine: Engine, now: datetime) -> int:
    """The scheduled job: expire offers past their time, then offer every free seat."""
    with db.write(engine) as conn:
        expire_offers(conn, now)
        made = offer_free_seats(conn, now)
    if made:
        log.info("waitlist: %d offers", made)
    return made


def line(conn: Connection, post_id: int, now: datetime) -> list[Entry]:
    """A post's waitlist: those waiting or offered a seat, in order, per service."""
    rows = conn.execute(
        sa.select(_entry, _post.c.code.label("post_code"), _service.c.code.label("service_code"))
        .select_from(
            _entry.join(_post, _post.c.id == _entry.c.post_id).join(
                _service, _service.c.id == _entry.c.service_id
            )
        )
        .where(
            _entry.c.post_id == post_id,
            _entry.c.draw_id.is_(None),  # a draw's line is shown with the draw
            _entry.c.status.in_(IN_LINE),
        )
        .order_by(_service.c.position, _entry.c.id)
    ).all()
    places: dict[str, int] = {}
    result = []
    for row in rows:
        places[row.service_code] = places.get(row.service_code, 0) + 1
        result.append(
            Entry(
                id=row.id,
                post_code=row.post_code,
                service_code=row.service_code,
                citizen_id=row.citizen_id,
                full_name=row.full_name,
                status=row.status,
                place=places[row.service_code],
                created_at=row.created_at,
                offered_starts_at=row.offered_starts_at,
                offer_expires_at=row.offer_expires_at,
            )
        )
    return result
