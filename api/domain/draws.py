"""Draws: the seats of a coming period (a consular mission) allotted at random among the
citizens who registered interest, instead of first come first served.

Staff open a draw for one service at one post (`open_draw`): a registration window (opens,
closes: in the post's local time) and the period whose seats it allots (local days
`first_day`..`last_day`, after the window closes). From then until the draw is done, the
period's seats are not sold first come (api.domain.booking leaves them out of the open days).
While the window is open, a citizen who picks that post and service is told, and may register
(`register`): one registration per phone and one per person (full name, as
`flows.world.person_key` compares them) in each draw; the booking limits of
api.domain.fairness are asked before, at the name, as for a booking.

At the close the scheduler's `draws.close` job (`run`, every minute) draws. Who draws is
decided by one conditional UPDATE (`open` → `drawn`, with the seed): a second clock finds
nothing to do. The seed is 32 random hex digits (`secrets.token_hex(16)`), recorded on the
draw and in the audit log with the registrations in the order drawn.

The order (`order`) is reproducible: the registrations' ids sorted ascending, then
`random.Random(seed).shuffle(ids)` (Python's Mersenne Twister seeded from the string, which
is stable across runs and platforms). Same seed and same registrations: the same order.

The registrants then wait in the draw's own line of the waitlist (api.domain.waitlist, entries
with `draw_id`, created in the drawn order): each seat of the period is held for the next in
line, told on their channel in their language, "1" takes it, "2" passes it on, unanswered it
expires after the post's `waitlist_hold_minutes` and goes to the next. When no seat of the
period is left and none is held, those not reached are told kindly (`not_reached`) and the
draw is `done`: what frees later is sold first come again. Everything is audited.
"""

from __future__ import annotations

import logging
import random
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import IntegrityError

from api import db
from api.domain import audit, outbox, waitlist
from api.domain.audit import StaffWrite
from api.domain.errors import NotVisible, Refused
from api.domain.staff import StaffPrincipal, post_filter
from api.domain.tables import table
from api.models import Draw, DrawEntry, Post, PostService, Service, WaitlistEntry
from flows.choices import service_name
from flows.messages import msg, raw
from flows.world import DrawOutcome, person_key

log = logging.getLogger(__name__)

_draw = table(Draw)
_reg = table(DrawEntry)
_entry = table(WaitlistEntry)
_post = table(Post)
_service = table(Service)
_offer = table(PostService)

OPEN, DRAWN, DONE, CANCELLED = "open", "drawn", "done", "cancelled"
PENDING = (OPEN, DRAWN)  # the period is not sold first come (api.domain.booking)
JOB_ID = "draws.close"
LONGEST_PERIOD_DAYS = 92
REGISTERED = "registered"  # a registration's result before the draw
ALGORITHM = "registration ids sorted, then random.Random(seed).shuffle"


@dataclass(frozen=True)
class Registrant:
    id: int
    citizen_id: int
    full_name: str
    registered_at: datetime
    rank: int | None  # in the drawn order, once drawn
    result: str  # registered, waiting, offered, booked, declined, expired, not_reached


@dataclass(frozen=True)
class DrawView:
    id: int
    post_code: str
    timezone: str
    service_code: str
    opens_at: datetime
    closes_at: datetime
    first_day: date
    last_day: date
    status: str
    seed: str | None
    drawn_at: datetime | None
    created_at: datetime
    registrants: list[Registrant]

    def local(self, instant: datetime) -> datetime:
        return instant.astimezone(ZoneInfo(self.timezone))


def order(seed: str, registration_ids: Iterable[int]) -> list[int]:
    """The drawn order: ids sorted ascending, then shuffled by `random.Random(seed)`."""
    ids = sorted(registration_ids)
    random.Random(seed).shuffle(ids)
    return ids


# --- the citizen's side ----------------------------------------------------------------------


def pending(conn: Connection, post_code: str, service_code: str, now: datetime) -> Row[Any] | None:
    """The draw of this service at this post whose registration has not closed yet."""
    return conn.execute(
        sa.select(_draw)
        .select_from(
            _draw.join(_post, _post.c.id == _draw.c.post_id).join(
                _service, _service.c.id == _draw.c.service_id
            )
        )
        .where(
            _post.c.code == post_code,
            _service.c.code == service_code,
            _draw.c.status == OPEN,
            _draw.c.closes_at > now,
        )
        .order_by(_draw.c.opens_at)
        .limit(1)
    ).first()


def registered(conn: Connection, draw_id: int, citizen_id: int) -> bool:
    found = conn.execute(
        sa.select(_reg.c.id).where(_reg.c.draw_id == draw_id, _reg.c.citizen_id == citizen_id)
    ).first()
    return found is not None


def register(
    conn: Connection, citizen_id: int, draw_id: int, full_name: str, now: datetime
) -> DrawOutcome:
    full_name = " ".join(full_name.split())[:120]
    key = person_key(full_name)
    draw = conn.execute(sa.select(_draw).where(_draw.c.id == draw_id)).first()
    if draw is None or draw.status != OPEN or not draw.opens_at <= now < draw.closes_at:
        return DrawOutcome.closed
    known = conn.execute(
        sa.select(_reg.c.id).where(
            _reg.c.draw_id == draw_id,
            sa.or_(_reg.c.citizen_id == citizen_id, _reg.c.name_key == key),
        )
    ).first()
    if known is not None:
        return DrawOutcome.already
    try:
        with conn.begin_nested():  # two turns at once: the unique keys decide
            conn.execute(
                sa.insert(_reg).values(
                    draw_id=draw_id,
                    citizen_id=citizen_id,
                    full_name=full_name,
                    name_key=key,
                    created_at=now,
                )
            )
    except IntegrityError:
        return DrawOutcome.already
    return DrawOutcome.registered


# --- the staff's side ------------------------------------------------------------------------


def _in_utc(value: datetime, tz: ZoneInfo) -> datetime:
    """A time given in the post's local time (an explicit offset is honoured)."""
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(UTC)


def visible_post(conn: Connection, staff: StaffPrincipal, post_code: str) -> Row[Any]:
    row = conn.execute(
        sa.select(_post).where(
            _post.c.code == post_code.strip().upper(), post_filter(staff, _post.c.id)
        )
    ).first()
    if row is None:
        raise NotVisible("post")
    return row


def open_draw(
    tx: StaffWrite,
    post_code: str,
    service_code: str,
    opens: datetime,
    closes: datetime,
    first_day: date,
    last_day: date,
) -> DrawView:
    """Allot the seats of `first_day`..`last_day` by draw, registration from `opens` to
    `closes`. Refused: window_order, window_past, period_order, period_long,
    period_before_close (422 in the API); overlap (409)."""
    post = visible_post(tx.conn, tx.staff, post_code)
    service = tx.conn.execute(
        sa.select(_service.c.id)
        .select_from(_offer.join(_service, _service.c.id == _offer.c.service_id))
        .where(_offer.c.post_id == post.id, _service.c.code == service_code)
    ).scalar()
    if service is None:
        raise NotVisible("offer")
    tz = ZoneInfo(post.timezone)
    opens_at, closes_at = _in_utc(opens, tz), _in_utc(closes, tz)
    if closes_at <= opens_at:
        raise Refused("window_order", "the registration must close after it opens")
    if closes_at <= tx.now:
        raise Refused("window_past", "the registration must close in the future")
    if last_day < first_day:
        raise Refused("period_order", "the period's last day is before its first")
    if (last_day - first_day).days >= LONGEST_PERIOD_DAYS:
        raise Refused("period_long", f"a period is at most {LONGEST_PERIOD_DAYS} days")
    if first_day <= closes_at.astimezone(tz).date():
        raise Refused("period_before_close", "the period must start after the registration")
    overlap = tx.conn.execute(
        sa.select(_draw.c.id).where(
            _draw.c.post_id == post.id,
            _draw.c.service_id == service,
            _draw.c.status.in_(PENDING),
            _draw.c.first_day <= last_day,
            _draw.c.last_day >= first_day,
        )
    ).first()
    if overlap is not None:
        raise Refused("overlap", f"draw {overlap.id} already allots seats of that period")
    draw_id = tx.conn.execute(
        sa.insert(_draw)
        .values(
            post_id=post.id,
            service_id=service,
            opens_at=opens_at,
            closes_at=closes_at,
            first_day=first_day,
            last_day=last_day,
            status=OPEN,
            staff_id=tx.staff.id,
            created_at=tx.now,
            updated_at=tx.now,
        )
        .returning(_draw.c.id)
    ).scalar_one()
    view = get(tx.conn, tx.staff, int(draw_id))
    tx.audit("create", "draw", view.id, None, _snapshot(view))
    return view


def cancel(tx: StaffWrite, draw_id: int) -> DrawView:
    """Cancel a draw before it is drawn; registrants are told, the period is sold first come
    again. Refused `not_open` once drawn (or cancelled)."""
    before = get(tx.conn, tx.staff, draw_id)
    done = tx.conn.execute(
        sa.update(_draw)
        .where(_draw.c.id == draw_id, _draw.c.status == OPEN)
        .values(status=CANCELLED, updated_at=tx.now)
        .returning(_draw.c.post_id, _draw.c.service_id)
    ).first()
    if done is None:
        raise Refused("not_open", f"the draw is {before.status}: only an open draw is cancelled")
    post = tx.conn.execute(sa.select(_post).where(_post.c.id == done.post_id)).one()
    for registrant in before.registrants:
        told = msg(
            "notify.draw_cancelled",
            service=service_name(before.service_code),
            post=raw(post.name),
            first=before.first_day,
            last=before.last_day,
        )
        outbox.notify(
            tx.conn,
            registrant.citizen_id,
            told,
            kind="notification",
            dedupe_key=f"draw:{draw_id}:cancelled:{registrant.id}",
            now=tx.now,
        )
    waitlist.offer_free_seats(tx.conn, tx.now, done.post_id, done.service_id)
    after = get(tx.conn, tx.staff, draw_id)
    tx.audit("cancel", "draw", draw_id, _snapshot(before), _snapshot(after))
    return after


def _snapshot(view: DrawView) -> dict[str, Any]:
    return {
        "post": view.post_code,
        "service": view.service_code,
        "opens_at": view.opens_at,
        "closes_at": view.closes_at,
        "first_day": view.first_day,
        "last_day": view.last_day,
        "status": view.status,
        "registrants": len(view.registrants),
    }


def _views(conn: Connection, where: sa.ColumnElement[bool]) -> list[DrawView]:
    draws = conn.execute(
        sa.select(
            _draw,
            _post.c.code.label("post_code"),
            _post.c.timezone,
            _service.c.code.label("service_code"),
        )
        .select_from(
            _draw.join(_post, _post.c.id == _draw.c.post_id).join(
                _service, _service.c.id == _draw.c.service_id
            )
        )
        .where(where)
        .order_by(_draw.c.first_day.desc(), _draw.c.id.desc())
    ).all()
    ids = [d.id for d in draws]
    people: dict[int, list[Registrant]] = {i: [] for i in ids}
    rows = conn.execute(
        sa.select(_reg, _entry.c.status.label("result"))
        .select_from(_reg.outerjoin(_entry, _entry.c.id == _reg.c.waitlist_entry_id))
        .where(_reg.c.draw_id.in_(ids))
        .order_by(_reg.c.rank.is_(None), _reg.c.rank, _reg.c.id)
    ).all()
    for r in rows:
        people[r.draw_id].append(
            Registrant(
                r.id, r.citizen_id, r.full_name, r.created_at, r.rank, r.result or REGISTERED
            )
        )
    return [
        DrawView(
            id=d.id,
            post_code=d.post_code,
            timezone=d.timezone,
            service_code=d.service_code,
            opens_at=d.opens_at,
            closes_at=d.closes_at,
            first_day=d.first_day,
            last_day=d.last_day,
            status=d.status,
            seed=d.seed,
            drawn_at=d.drawn_at,
            created_at=d.created_at,
            registrants=people[d.id],
        )
        for d in draws
    ]


def draws_of(conn: Connection, staff: StaffPrincipal, post_code: str) -> list[DrawView]:
    """A post's draws, the latest period first."""
    post = visible_post(conn, staff, post_code)
    return _views(conn, _draw.c.post_id == post.id)


def get(conn: Connection, staff: StaffPrincipal, draw_id: int) -> DrawView:
    found = _views(conn, sa.and_(_draw.c.id == draw_id, post_filter(staff, _draw.c.post_id)))
    if not found:
        raise NotVisible("draw")
    return found[0]


# --- the job: draw at the close, then allot in turn ---------------------------------------------


def hold_seat(
    service: Any, draw_id: int, post_code: str, service_code: str, now: datetime
) -> tuple[int, datetime, Any] | None:
    """A free seat of the draw's period for its next winner (api.domain.waitlist asks)."""
    period = service.conn.execute(
        sa.select(_draw.c.first_day, _draw.c.last_day).where(
            _draw.c.id == draw_id, _draw.c.status == DRAWN
        )
    ).first()
    if period is None:
        return None
    held: tuple[int, datetime, Any] | None = service.hold_period_seat(
        post_code, service_code, period.first_day, period.last_day, now
    )
    return held


def _draw_one(conn: Connection, draw_id: int, now: datetime) -> bool:
    """Draw, if this call is the one that claims the draw; its winners wait in its line."""
    seed = secrets.token_hex(16)
    claimed = conn.execute(
        sa.update(_draw)
        .where(_draw.c.id == draw_id, _draw.c.status == OPEN, _draw.c.closes_at <= now)
        .values(status=DRAWN, seed=seed, drawn_at=now, updated_at=now)
        .returning(_draw.c.post_id, _draw.c.service_id)
    ).first()
    if claimed is None:
        return False
    registrations = {
        r.id: r for r in conn.execute(sa.select(_reg).where(_reg.c.draw_id == draw_id)).all()
    }
    drawn = order(seed, registrations)
    for rank, registration_id in enumerate(drawn, start=1):
        registration = registrations[registration_id]
        entry_id = conn.execute(
            sa.insert(_entry)
            .values(
                post_id=claimed.post_id,
                service_id=claimed.service_id,
                citizen_id=registration.citizen_id,
                full_name=registration.full_name,
                status=waitlist.WAITING,
                created_at=now,
                updated_at=now,
                draw_id=draw_id,
            )
            .returning(_entry.c.id)
        ).scalar_one()
        conn.execute(
            sa.update(_reg)
            .where(_reg.c.id == registration_id)
            .values(rank=rank, waitlist_entry_id=entry_id)
        )
    audit.record(
        conn,
        staff_id=None,
        action="draw",
        entity="draw",
        entity_id=draw_id,
        before={"status": OPEN},
        after={"status": DRAWN, "seed": seed, "algorithm": ALGORITHM, "order": drawn},
        now=now,
    )
    waitlist.offer_free_seats(conn, now, claimed.post_id, claimed.service_id)
    return True


def _settle(conn: Connection, draw_id: int, now: datetime) -> bool:
    """When no seat of the period is left and none is held: tell those not reached, and the
    draw is done (what frees later is sold first come)."""
    draw = conn.execute(sa.select(_draw).where(_draw.c.id == draw_id)).first()
    if draw is None or draw.status != DRAWN:
        return False
    waitlist.offer_free_seats(conn, now, draw.post_id, draw.service_id)
    offered = conn.execute(
        sa.select(sa.func.count())
        .select_from(_entry)
        .where(_entry.c.draw_id == draw_id, _entry.c.status == waitlist.OFFERED)
    ).scalar_one()
    if offered:
        return False
    finished = conn.execute(
        sa.update(_draw)
        .where(_draw.c.id == draw_id, _draw.c.status == DRAWN)
        .values(status=DONE, updated_at=now)
    )
    if finished.rowcount != 1:  # another clock settled it
        return False
    left = conn.execute(
        sa.update(_entry)
        .where(_entry.c.draw_id == draw_id, _entry.c.status == waitlist.WAITING)
        .values(status=waitlist.NOT_REACHED, updated_at=now)
        .returning(_entry.c.id, _entry.c.citizen_id)
    ).all()
    post = conn.execute(sa.select(_post).where(_post.c.id == draw.post_id)).one()
    _, service = waitlist.codes(conn, draw.post_id, draw.service_id)
    for entry in left:
        told = msg("notify.draw_not_reached", service=service_name(service), post=raw(post.name))
        outbox.notify(
            conn,
            entry.citizen_id,
            told,
            kind="notification",
            dedupe_key=f"draw:{draw_id}:not_reached:{entry.id}",
            now=now,
        )
    audit.record(
        conn,
        staff_id=None,
        action="settle",
        entity="draw",
        entity_id=draw_id,
        before={"status": DRAWN},
        after={"status": DONE, "not_reached": len(left)},
        now=now,
    )
    waitlist.offer_free_seats(conn, now, draw.post_id, draw.service_id)  # first come again
    return True


def run(engine: Engine, now: datetime) -> int:
    """The scheduled job: draw each draw whose registration has closed, then settle those
    whose seats are all given. Idempotent: the conditional UPDATEs decide who does the work.
    Returns how many draws were drawn or settled."""
    with db.read(engine) as conn:
        due = list(
            conn.execute(
                sa.select(_draw.c.id).where(_draw.c.status == OPEN, _draw.c.closes_at <= now)
            ).scalars()
        )
    drawn = 0
    for draw_id in due:
        with db.write(engine) as conn:
            drawn += _draw_one(conn, draw_id, now)
    with db.read(engine) as conn:
        allotting = list(
            conn.execute(sa.select(_draw.c.id).where(_draw.c.status == DRAWN)).scalars()
        )
    settled = 0
    for draw_id in allotting:
        with db.write(engine) as conn:
            settled += _settle(conn, draw_id, now)
    if drawn or settled:
        log.info("draws: %d drawn, %d settled", drawn, settled)
    return drawn + settled
