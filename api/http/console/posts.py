"""Posts: their opening hours and closures (adding a closure cancels that day's bookings and
tells each citizen, api.domain.closures)."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import Form, Path, Response
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from api import db
from api.domain import waitlist
from api.domain.audit import staff_write
from api.domain.closures import add_closure
from api.domain.tables import table
from api.http.console.base import (
    AnyRow,
    Desk,
    DeskDep,
    FormDesk,
    french_day,
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
        closures=[(c.day, french_day(c.day), c.reason) for c in closures],
        today=today,
        waitlist=line,
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
        desk.session.flash("error", "closure_exists", day=french_day(closed_on))
        return desk.redirect(here)
    desk.session.flash("ok", "closure_added", day=french_day(closed_on), cancelled=len(cancelled))
    return desk.redirect(here)
