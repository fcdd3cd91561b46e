"""A post's draws: open one for a coming period of a service (its registration window in the
post's local time), see each draw's registrants, seed and result, cancel one before it is
drawn (api.domain.draws, the same use cases as the staff API)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Form, Path, Response

from api import db
from api.domain import draws, offers
from api.domain.errors import NotVisible, Refused
from api.http.console.base import (
    DeskDep,
    FormDesk,
    IdPath,
    flash_refused,
    local_today,
    not_visible,
    parse_day,
    perform,
    section_router,
)

router = section_router()

# the domain's refusals, in the console's words (console/_text.html)
REFUSED = {
    "window_order": "draw_window_order",
    "window_past": "draw_window_past",
    "period_order": "draw_period_order",
    "period_long": "draw_period_long",
    "period_before_close": "draw_period_before_close",
    "overlap": "draw_overlap",
    "not_open": "draw_not_open",
}


def _local(text: str) -> datetime | None:
    """A `datetime-local` field (`2026-12-04T18:00`): the post's local time."""
    try:
        value = datetime.fromisoformat(text.strip()).replace(tzinfo=None)
    except ValueError:
        return None
    return value if parse_day(value.date().isoformat()) is not None else None


@router.get("/posts/{code}/draws", response_model=None)
def draws_page(desk: DeskDep, code: Annotated[str, Path(max_length=8)]) -> Response:
    try:
        with db.read(desk.engine) as conn:
            found = draws.draws_of(conn, desk.staff, code)
            post = draws.visible_post(conn, desk.staff, code)
            services = offers.offers_of(conn, post.id)
    except NotVisible as missing:
        raise not_visible(desk, missing) from None
    return desk.page(
        "console/draws.html",
        "posts",
        post=post,
        draws=found,
        services=services,
        names={o.service: o.service_name for o in services},
        today=local_today(post, desk.now),
    )


@router.post("/posts/{code}/draws", response_model=None)
def open_draw(
    desk: FormDesk,
    code: Annotated[str, Path(max_length=8)],
    service: Annotated[str, Form(max_length=32)] = "",
    opens_at: Annotated[str, Form(max_length=20)] = "",
    closes_at: Annotated[str, Form(max_length=20)] = "",
    first_day: Annotated[str, Form(max_length=10)] = "",
    last_day: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    here = f"/console/posts/{code.strip().upper()}/draws"
    opens, closes = _local(opens_at), _local(closes_at)
    first, last = parse_day(first_day), parse_day(last_day)
    if opens is None or closes is None or first is None or last is None:
        desk.session.flash("error", "draw_fields_needed")
        return desk.redirect(here)
    window, period = (opens, closes), (first, last)
    try:
        opened = perform(desk, lambda tx: draws.open_draw(tx, code, service, *window, *period))
    except Refused as refused:
        flash_refused(desk, refused, REFUSED, "draw_refused")
        return desk.redirect(here)
    desk.session.flash("ok", "draw_opened", service=opened.service_code)
    return desk.redirect(f"{here}#draw-{opened.id}")


@router.post("/posts/{code}/draws/{draw_id}/cancel", response_model=None)
def cancel_draw(
    desk: FormDesk, code: Annotated[str, Path(max_length=8)], draw_id: IdPath
) -> Response:
    here = f"/console/posts/{code.strip().upper()}/draws"
    try:
        perform(desk, lambda tx: draws.cancel(tx, draw_id))
    except Refused as refused:
        flash_refused(desk, refused, REFUSED, "draw_refused")
        return desk.redirect(here)
    desk.session.flash("ok", "draw_cancelled")
    return desk.redirect(f"{here}#draw-{draw_id}")
