"""The search box of every page (`GET /console/search?q=`): an appointment or request
reference, a phone number or a name, answered by api.domain.search within the desk's posts."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Response

from api import db
from api.domain import search
from api.http.console.base import DeskDep, one_line, section_router

router = section_router()


@router.get("/search", response_model=None)
def find(desk: DeskDep, q: Annotated[str, Query(max_length=200)] = "") -> Response:
    text = one_line(q, 120)
    found = None
    if text:
        with db.read(desk.engine) as conn:
            found = search.find(conn, desk.staff, text)
    return desk.page("console/search.html", "search", search_text=text, found=found)
