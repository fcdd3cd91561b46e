"""Broadcasts: the list of those the desk may see — by the one rule of api.domain.broadcasts
(`within`: an agent sees a broadcast whose whole segment stays within their posts)."""

from __future__ import annotations

from fastapi import Response

from api import db
from api.domain import broadcasts
from api.http.console.base import DeskDep, section_router, visible_posts

router = section_router()


@router.get("/broadcasts", response_model=None)
def broadcast_list(desk: DeskDep) -> Response:
    with db.read(desk.engine) as conn:
        codes = (
            None
            if desk.staff.is_admin
            else frozenset(p.code for p in visible_posts(conn, desk.staff))
        )
        rows, _ = broadcasts.list_broadcasts(conn, post_codes=codes, limit=100, offset=0)
    return desk.page("console/broadcasts.html", "broadcasts", rows=rows)
