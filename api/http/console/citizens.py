"""Citizens (administrators): find a citizen by phone, download
everything held about them, erase them; and the audit log as CSV.

Each action is the staff API's own (api.http.staff.citizens, api.http.staff.audit), called
with the desk's account: the console only translates its answers into pages and messages.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import Form, Query, Response
from fastapi.responses import StreamingResponse

from api.http.console.base import (
    Desk,
    DeskDep,
    FormDesk,
    IdPath,
    not_found,
    one_line,
    section_router,
)
from api.http.staff import audit as audit_api
from api.http.staff import citizens as citizen_api
from api.http.staff.deps import PageParams
from api.http.staff.errors import ProblemError

router = section_router()

CONFIRMATION = "EFFACER"


def _admin(desk: Desk) -> Desk:
    if not desk.staff.is_admin:  # agents: as if the page did not exist
        raise not_found(desk)
    return desk


@router.get("/citizens", response_model=None)
def citizens(desk: DeskDep, phone: Annotated[str, Query(max_length=32)] = "") -> Response:
    _admin(desk)
    phone = one_line(phone, 32)
    found: list[citizen_api.CitizenPublic] = []
    if phone:
        page = citizen_api.list_citizens(desk.staff, desk.engine, PageParams(50, 0), phone)
        found = list(page.items)
    return desk.page(
        "console/citizens.html", "citizens", phone=phone, found=found, confirmation=CONFIRMATION
    )


@router.get("/citizens/{citizen_id}/export", response_model=None)
def export(desk: DeskDep, citizen_id: IdPath) -> Response:
    _admin(desk)
    try:
        held = citizen_api.export(citizen_id, desk.staff, desk.engine, desk.now)
    except ProblemError:
        raise not_found(desk, "citizen") from None
    body = json.dumps(held.model_dump(mode="json"), ensure_ascii=False, indent=2)
    return Response(
        body,
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="citizen-{citizen_id}.json"'},
    )


@router.post("/citizens/{citizen_id}/erase", response_model=None)
def erase(
    desk: FormDesk,
    citizen_id: IdPath,
    confirm: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    _admin(desk)
    if confirm.strip().upper() != CONFIRMATION:
        desk.session.flash("error", "erase_confirm_needed", word=CONFIRMATION)
        return desk.redirect("/console/citizens")
    try:
        done = citizen_api.erase(citizen_id, desk.staff, desk.engine, desk.now)
    except ProblemError as refused:
        if refused.status == 404:
            raise not_found(desk, "citizen") from None
        desk.session.flash("error", "erased_already")
    else:
        desk.session.flash(
            "ok",
            "citizen_erased",
            cancelled=str(done.appointments_cancelled),
            identities=str(done.identities_deleted),
        )
    return desk.redirect("/console/citizens")


@router.get("/audit.csv", response_model=None)
def audit_export(desk: DeskDep) -> Response:
    _admin(desk)
    return StreamingResponse(
        audit_api.audit_csv(desk.engine),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
    )
