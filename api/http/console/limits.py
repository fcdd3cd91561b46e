"""Booking limits: find a citizen by phone, see where they stand against each post's limits
(per phone, per full name), and lift one for them (api.domain.limit_desk)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import Form, Path, Query, Response

from api import db
from api.domain import limit_desk
from api.domain.audit import staff_write
from api.domain.citizens import normalise_phone
from api.domain.errors import NotVisible, Refused
from api.domain.tables import table
from api.http.console.base import DeskDep, FormDesk, not_found, one_line, section_router
from api.models import Citizen

router = section_router()

_citizen = table(Citizen)


@router.get("/limits", response_model=None)
def limits_page(desk: DeskDep, phone: Annotated[str, Query(max_length=32)] = "") -> Response:
    found: list[tuple[int, list[limit_desk.Standing]]] = []
    wanted = normalise_phone(phone) if phone else None
    if wanted:
        with db.read(desk.engine) as conn:
            ids = conn.execute(
                sa.select(_citizen.c.id).where(_citizen.c.phone == wanted).order_by(_citizen.c.id)
            ).scalars()
            for citizen_id in ids:
                try:
                    found.append(
                        (citizen_id, limit_desk.standing(conn, desk.staff, citizen_id, desk.now))
                    )
                except NotVisible:
                    continue
    searched = bool(phone)
    return desk.page("console/limits.html", "limits", phone=phone, found=found, searched=searched)


@router.post("/limits/{citizen_id}/lift", response_model=None)
def lift_limit(
    desk: FormDesk,
    citizen_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    post: Annotated[str, Form(max_length=8)] = "",
    kind: Annotated[str, Form(max_length=8)] = "",
    full_name: Annotated[str, Form(max_length=200)] = "",
    phone: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    try:
        with staff_write(desk.engine, desk.staff, desk.now) as tx:
            limit_desk.lift(tx, citizen_id, post, kind, one_line(full_name, 120))
    except NotVisible:
        raise not_found(desk, "citizen") from None
    except Refused as refused:
        desk.session.flash("error", refused.code)
    else:
        desk.session.flash("ok", "limit_lifted", post=post)
    return desk.redirect("/console/limits?" + urlencode({"phone": phone}))
