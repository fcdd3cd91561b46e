"""Posts: their weekly opening hours (api.domain.hours.replace_hours), closures (adding one
cancels that day's bookings and tells each citizen, api.domain.closures — after a
confirmation page listing them; removing one opens the day again) and the services they offer
(api.domain.offers.save_offer). Administrators and the post's agents may change them, as
through the staff API, with the same effects (seats freed go to the waitlist first); every
change is audited as the staff API audits it."""

from __future__ import annotations

import re
from datetime import date, time
from typing import Annotated
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import Form, Path, Response
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from api import db
from api.domain import closures, hours, offers, waitlist
from api.domain.audit import staff_write
from api.domain.closures import ClosureChanged, add_closure, remove_closure
from api.domain.errors import NotVisible, Refused
from api.domain.search import mask_phone
from api.domain.tables import table
from api.http.console.base import (
    AnyRow,
    Desk,
    DeskDep,
    FormDesk,
    flash_refused,
    local_today,
    not_found,
    not_yours,
    one_line,
    parse_day,
    perform,
    section_router,
    visible_posts,
)
from api.models import Closure, Post

router = section_router()

_post = table(Post)
_closure = table(Closure)


@router.get("/posts", response_model=None)
def post_list(desk: DeskDep) -> Response:
    with db.read(desk.engine) as conn:
        posts = visible_posts(conn, desk.staff)
    if len(posts) == 1:
        return desk.redirect(f"/console/posts/{posts[0].code}")
    return desk.page("console/posts.html", "posts", posts=posts)


def _post_for(desk: Desk, conn: Connection, code: str) -> AnyRow:
    row = conn.execute(sa.select(_post).where(_post.c.code == code.strip().upper())).first()
    if row is None:
        raise not_found(desk, "post")
    if not desk.staff.may_act_for(row.id):
        raise not_yours(desk, "post")
    return row


@router.get("/posts/{code}", response_model=None)
def post_detail(desk: DeskDep, code: Annotated[str, Path(max_length=8)]) -> Response:
    with db.read(desk.engine) as conn:
        post = _post_for(desk, conn, code)
        posts = visible_posts(conn, desk.staff)
        today = local_today(post, desk.now)
        intervals = hours.week(conn, post.id)
        offers_here = offers.offers_of(conn, post.id)
        closures = conn.execute(
            sa.select(_closure.c.day, _closure.c.reason)
            .where(_closure.c.post_id == post.id, _closure.c.day >= today)
            .order_by(_closure.c.day)
        ).all()
        line = waitlist.line(conn, post.id, desk.now)
    week = [
        ", ".join(f"{i.opens:%H:%M}-{i.closes:%H:%M}" for i in intervals if i.weekday == weekday)
        for weekday in range(7)
    ]
    return desk.page(
        "console/post.html",
        "posts",
        post=post,
        posts=posts,
        week=week,
        closures=[(c.day, c.reason) for c in closures],
        today=today,
        waitlist=line,
        offers=offers_here,
    )


def _confirm_closure(
    desk: Desk, post: AnyRow, preview: closures.ClosurePreview, reason: str, *, stale: bool
) -> Response:
    """The page that says what a closure will cancel, and asks to confirm."""
    tz = ZoneInfo(post.timezone)
    if stale:
        desk.session.flash("error", "closure_stale", day=preview.day.isoformat())
    return desk.page(
        "console/closure_confirm.html",
        "posts",
        post=post,
        day=preview.day,
        reason=reason,
        token=preview.token,
        appointments=[
            {
                "reference": a.reference,
                "time": a.starts_at.astimezone(tz).strftime("%H:%M"),
                "service": a.service,
                "full_name": a.full_name,
                "phone": mask_phone(a.phone) or "—",
            }
            for a in preview.appointments
        ],
    )


@router.post("/posts/{code}/closures", response_model=None)
def create_closure(
    desk: FormDesk,
    code: Annotated[str, Path(max_length=8)],
    day: Annotated[str, Form(max_length=10)] = "",
    reason: Annotated[str, Form(max_length=1000)] = "",
    token: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """Without `token`, the question (when the day has bookings): the confirmation page.
    With it, the closure — unless the day's bookings changed since: the question again."""
    reason = one_line(reason, 200)
    closed_on = parse_day(day)
    with db.read(desk.engine) as conn:
        post = _post_for(desk, conn, code)
        here = f"/console/posts/{post.code}"
        if closed_on is None:
            desk.session.flash("error", "closure_day_needed")
            return desk.redirect(here)
        if closed_on < local_today(post, desk.now):
            desk.session.flash("error", "closure_day_past")
            return desk.redirect(here)
        already = _is_closed(conn, post.id, closed_on)
        preview = closures.preview(conn, post.id, closed_on, desk.now)
    if already:
        desk.session.flash("error", "closure_exists", day=closed_on.isoformat())
        return desk.redirect(here)
    if not token and preview.appointments:
        return _confirm_closure(desk, post, preview, reason, stale=False)
    try:
        with staff_write(desk.engine, desk.staff, desk.now) as tx:
            cancelled = add_closure(
                tx.conn, post.id, closed_on, reason, desk.now, expected=token or preview.token
            )
            tx.audit(
                "create",
                "closure",
                f"{post.code}/{closed_on}",
                None,
                {
                    "day": closed_on,
                    "reason": reason,
                    "cancelled_appointments": [a.reference for a in cancelled],
                },
            )
    except IntegrityError:
        desk.session.flash("error", "closure_exists", day=closed_on.isoformat())
        return desk.redirect(here)
    except ClosureChanged:
        with db.read(desk.engine) as conn:
            fresh = closures.preview(conn, post.id, closed_on, desk.now)
        return _confirm_closure(desk, post, fresh, reason, stale=True)
    desk.session.flash("ok", "closure_added", day=closed_on.isoformat(), cancelled=len(cancelled))
    return desk.redirect(here)


def _is_closed(conn: Connection, post_id: int, day: date) -> bool:
    found = sa.select(_closure.c.day).where(_closure.c.post_id == post_id, _closure.c.day == day)
    return conn.execute(found).first() is not None


@router.post("/posts/{code}/closures/{day}/delete", response_model=None)
def delete_closure(
    desk: FormDesk,
    code: Annotated[str, Path(max_length=8)],
    day: Annotated[str, Path(max_length=10)],
) -> Response:
    with db.read(desk.engine) as conn:
        post = _post_for(desk, conn, code)
    here = f"/console/posts/{post.code}"
    closed_on = parse_day(day)
    if closed_on is None:
        raise not_found(desk)
    try:
        with staff_write(desk.engine, desk.staff, desk.now) as tx:
            removed = remove_closure(tx.conn, post.id, closed_on)
            if removed is None:
                raise NotVisible("closure")
            tx.audit("delete", "closure", f"{post.code}/{closed_on}", removed, None)
    except NotVisible:
        desk.session.flash("error", "closure_missing")
        return desk.redirect(here)
    desk.session.flash("ok", "closure_removed", day=closed_on.isoformat())
    return desk.redirect(here)


def _bounded(text: str, low: int, high: int) -> int | None:
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return value if low <= value <= high else None


@router.post("/posts/{code}/services/{service}", response_model=None)
def save_offer(
    desk: FormDesk,
    code: Annotated[str, Path(max_length=8)],
    service: Annotated[str, Path(max_length=32)],
    slot_minutes: Annotated[str, Form(max_length=6)] = "",
    seats_per_slot: Annotated[str, Form(max_length=6)] = "",
    booking_window_days: Annotated[str, Form(max_length=6)] = "",
    min_notice_hours: Annotated[str, Form(max_length=6)] = "",
    fee_note: Annotated[str, Form(max_length=600)] = "",
    active: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    with db.read(desk.engine) as conn:
        post = _post_for(desk, conn, code)
    here = f"/console/posts/{post.code}#services"
    values = {
        "slot_minutes": _bounded(slot_minutes, 5, 480),
        "seats_per_slot": _bounded(seats_per_slot, 0, 100),
        "booking_window_days": _bounded(booking_window_days, 1, 366),
        "min_notice_hours": _bounded(min_notice_hours, 0, 24 * 30),
    }
    if any(v is None for v in values.values()):
        desk.session.flash("error", "offer_invalid")
        return desk.redirect(here)
    changes = {**values, "fee_note": one_line(fee_note, 300), "active": active == "on"}
    perform(
        desk, lambda tx: offers.save_offer(tx, post.id, post.code, service, changes, create=False)
    )
    desk.session.flash("ok", "offer_saved", service=service)
    return desk.redirect(here)


_INTERVAL = re.compile(r"(\d{1,2})[:hH.](\d{2})\s*[-–à]\s*(\d{1,2})[:hH.](\d{2})")


def parse_intervals(weekday: int, text: str) -> list[hours.Interval] | None:
    """One day's hours as typed: `08:00-12:00, 14:00-16:00` (`8h00 – 12h00` too); empty is
    closed. None when a part is not an interval of wall times."""
    intervals = []
    for part in filter(None, (p.strip() for p in re.split(r"[,;]", text))):
        found = _INTERVAL.fullmatch(part)
        if found is None:
            return None
        h1, m1, h2, m2 = (int(g) for g in found.groups())
        if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
            return None
        intervals.append(hours.Interval(weekday, time(h1, m1), time(h2, m2)))
    return intervals


@router.post("/posts/{code}/hours", response_model=None)
def save_hours(
    desk: FormDesk,
    code: Annotated[str, Path(max_length=8)],
    day0: Annotated[str, Form(max_length=200)] = "",
    day1: Annotated[str, Form(max_length=200)] = "",
    day2: Annotated[str, Form(max_length=200)] = "",
    day3: Annotated[str, Form(max_length=200)] = "",
    day4: Annotated[str, Form(max_length=200)] = "",
    day5: Annotated[str, Form(max_length=200)] = "",
    day6: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    with db.read(desk.engine) as conn:
        post = _post_for(desk, conn, code)
    here = f"/console/posts/{post.code}#hours"
    days = (day0, day1, day2, day3, day4, day5, day6)
    typed = [parse_intervals(weekday, text) for weekday, text in enumerate(days)]
    if any(day is None for day in typed):
        desk.session.flash("error", "hours_invalid")
        return desk.redirect(here)
    wanted = [interval for day in typed for interval in day or ()]
    try:
        perform(desk, lambda tx: hours.replace_hours(tx, post.id, post.code, wanted))
    except Refused as refused:
        flash_refused(desk, refused, {"hours_overlap": "hours_overlap"}, "hours_invalid")
        return desk.redirect(here)
    desk.session.flash("ok", "hours_saved")
    return desk.redirect(here)
