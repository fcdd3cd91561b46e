"""Posts: their opening hours, closures (adding one cancels that day's bookings and tells
each citizen, api.domain.closures; removing one opens the day again) and — for
administrators — the services they offer (api.domain.offers.save_offer). Every change is
audited as the staff API audits it."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import Form, Path, Response
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from api import db
from api.domain import offers, waitlist
from api.domain.audit import staff_write
from api.domain.closures import add_closure, remove_closure
from api.domain.errors import NotVisible
from api.domain.tables import table
from api.http.console.base import (
    AnyRow,
    Desk,
    DeskDep,
    FormDesk,
    local_today,
    not_found,
    one_line,
    parse_day,
    section_router,
    visible_posts,
)
from api.models import Closure, OpeningHours, Post

router = section_router()

_post = table(Post)
_hours = table(OpeningHours)
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
    if row is None or not desk.staff.may_act_for(row.id):
        raise not_found(desk, "post")
    return row


@router.get("/posts/{code}", response_model=None)
def post_detail(desk: DeskDep, code: Annotated[str, Path(max_length=8)]) -> Response:
    with db.read(desk.engine) as conn:
        post = _post_for(desk, conn, code)
        posts = visible_posts(conn, desk.staff)
        today = local_today(post, desk.now)
        hours = conn.execute(
            sa.select(_hours.c.weekday, _hours.c.opens, _hours.c.closes)
            .where(_hours.c.post_id == post.id)
            .order_by(_hours.c.weekday, _hours.c.opens)
        ).all()
        offers_here = offers.offers_of(conn, post.id)
        closures = conn.execute(
            sa.select(_closure.c.day, _closure.c.reason)
            .where(_closure.c.post_id == post.id, _closure.c.day >= today)
            .order_by(_closure.c.day)
        ).all()
        line = waitlist.line(conn, post.id, desk.now)
    week = [
        [f"{h.opens:%H:%M} – {h.closes:%H:%M}" for h in hours if h.weekday == weekday]
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


@router.post("/posts/{code}/closures", response_model=None)
def create_closure(
    desk: FormDesk,
    code: Annotated[str, Path(max_length=8)],
    day: Annotated[str, Form(max_length=10)] = "",
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
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
    try:
        with staff_write(desk.engine, desk.staff, desk.now) as tx:
            cancelled = add_closure(tx.conn, post.id, closed_on, reason, desk.now)
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
    desk.session.flash("ok", "closure_added", day=closed_on.isoformat(), cancelled=len(cancelled))
    return desk.redirect(here)


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
    if not desk.staff.is_admin:
        raise not_found(desk)
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
    try:
        with staff_write(desk.engine, desk.staff, desk.now) as tx:
            offers.save_offer(tx, post.id, post.code, service, changes, create=False)
    except NotVisible as missing:
        raise not_found(desk, missing.what) from None
    desk.session.flash("ok", "offer_saved", service=service)
    return desk.redirect(here)
