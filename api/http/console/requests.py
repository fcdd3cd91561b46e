"""Requests (dossiers): the list with its search, lodging one at the desk, its page with the
history and the failed lookups, and moving it on — the use cases of api.domain.request_desk."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import Form, Path, Query, Response
from sqlalchemy.engine import Connection

from api import db
from api.domain import request_desk
from api.domain.audit import staff_write
from api.domain.citizens import normalise_phone
from api.domain.errors import NotVisible, Refused
from api.domain.requests import (
    ALLOWED_FROM,
    BACK_TO,
    RequestRecord,
    RequestService,
    clean_reference,
    record_query,
)
from api.domain.tables import table
from api.http.console.base import (
    PAGE_SIZE,
    REQUEST_STATUSES,
    AnyRow,
    Desk,
    DeskDep,
    FormDesk,
    all_services,
    flash_refused,
    not_visible,
    one_line,
    parse_day,
    perform,
    pick_post,
    section_router,
    visible_posts,
)
from api.models import ConsularRequest, Post, RequestStatus, Staff

router = section_router()

_request_t = table(ConsularRequest)
_post = table(Post)
_staff = table(Staff)


def _request_filters(
    desk: Desk, posts: list[AnyRow], q: str, post: str, status: str
) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if not desk.staff.is_admin:
        conditions.append(_request_t.c.post_id.in_(sorted(desk.staff.post_ids)))
    chosen = pick_post(posts, post)
    if chosen is not None:
        conditions.append(_request_t.c.post_id == chosen.id)
    if status in REQUEST_STATUSES:
        conditions.append(_request_t.c.status == status)
    if q:
        exact = clean_reference(q)
        fragment = re.sub(r"[^A-Z0-9-]", "", q.upper())[:20]
        conditions.append(
            sa.or_(
                _request_t.c.reference == exact,
                _request_t.c.reference.contains(fragment, autoescape=True),
            )
            if fragment
            else _request_t.c.reference == exact
        )
    return conditions


@router.get("/requests", response_model=None)
def request_list(
    desk: DeskDep,
    q: Annotated[str, Query(max_length=40)] = "",
    post: Annotated[str, Query(max_length=8)] = "",
    status: Annotated[str, Query(max_length=16)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    q = one_line(q, 40)
    status = status if status in REQUEST_STATUSES else ""
    with db.read(desk.engine) as conn:
        posts = visible_posts(conn, desk.staff)
        conditions = _request_filters(desk, posts, q, post, status)
        query = record_query().where(*conditions)
        total = conn.execute(
            sa.select(sa.func.count()).select_from(_request_t).where(*conditions)
        ).scalar_one()
        rows = conn.execute(
            query.order_by(_request_t.c.updated_at.desc(), _request_t.c.id.desc())
            .limit(PAGE_SIZE)
            .offset((page - 1) * PAGE_SIZE)
        ).all()
        services = {s.code: s.name for s in all_services(conn)}
    filters = {"q": q, "post": post.upper() if pick_post(posts, post) else "", "status": status}

    def page_url(number: int) -> str:
        kept = {k: v for k, v in filters.items() if v}
        return "/console/requests?" + urlencode({**kept, "page": number})

    pages = max(1, -(-int(total) // PAGE_SIZE))
    return desk.page(
        "console/requests.html",
        "requests",
        rows=rows,
        total=total,
        posts=posts,
        services=services,
        filters=filters,
        statuses=REQUEST_STATUSES,
        page=page,
        pages=pages,
        previous_url=page_url(page - 1) if page > 1 else None,
        next_url=page_url(page + 1) if page < pages else None,
    )


@router.get("/requests/new", response_model=None)
def request_form(desk: DeskDep) -> Response:
    with db.read(desk.engine) as conn:
        posts = visible_posts(conn, desk.staff)
        services = all_services(conn)
    return desk.page(
        "console/request_new.html", "requests", posts=posts, services=services, values={}
    )


@router.post("/requests", response_model=None)
def create_request(
    desk: FormDesk,
    post: Annotated[str, Form(max_length=8)] = "",
    service: Annotated[str, Form(max_length=32)] = "",
    phone: Annotated[str, Form(max_length=40)] = "",
    full_name: Annotated[str, Form(max_length=400)] = "",
    birth_date: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    values = {
        "post": post.strip().upper(),
        "service": service.strip(),
        "phone": one_line(phone, 40),
        "full_name": one_line(full_name, 120),
        "birth_date": birth_date.strip(),
    }
    born = parse_day(birth_date)
    errors: list[str] = []
    with db.read(desk.engine) as conn:
        posts = visible_posts(conn, desk.staff)
        services = all_services(conn)
    chosen = pick_post(posts, post)
    if chosen is None:
        errors.append("choose_post")
    if values["service"] not in {s.code for s in services}:
        errors.append("choose_service")
    if not values["full_name"]:
        errors.append("name_needed")
    if born is None or not date(1900, 1, 1) <= born <= desk.now.date():
        errors.append("birth_date_invalid")
    if values["phone"] and normalise_phone(values["phone"]) is None:
        errors.append("phone_invalid")
    reference = ""
    if not errors:
        try:
            with staff_write(desk.engine, desk.staff, desk.now) as tx:
                record = request_desk.lodge(
                    tx,
                    values["post"],
                    values["service"],
                    values["phone"] or None,
                    values["full_name"],
                    born,
                )
            reference = record.reference
        except NotVisible as missing:
            errors.append("choose_post" if missing.what == "post" else "choose_service")
        except Refused:
            errors.append("phone_invalid")
    if errors:
        response = desk.page(
            "console/request_new.html",
            "requests",
            posts=posts,
            services=services,
            values=values,
            errors=errors,
        )
        response.status_code = 422
        return response
    desk.session.flash("ok", "request_created", reference=reference)
    return desk.redirect(f"/console/requests/{reference}")


def _request_for(desk: Desk, conn: Connection, reference: str) -> RequestRecord:
    try:
        return request_desk.visible(conn, desk.staff, reference)
    except NotVisible as missing:
        raise not_visible(desk, missing) from None


def next_statuses(current: RequestStatus) -> list[RequestStatus]:
    return [wanted for wanted, sources in ALLOWED_FROM.items() if current in sources]


@router.get("/requests/{reference}", response_model=None)
def request_detail(desk: DeskDep, reference: Annotated[str, Path(max_length=40)]) -> Response:
    with db.read(desk.engine) as conn:
        record = _request_for(desk, conn, reference)
        history = RequestService(conn).history(record.id)
        guard = RequestService(conn).guard(record.reference, desk.now)
        staff_ids = {e.staff_id for e in history if e.staff_id is not None}
        emails = {
            row.id: row.email
            for row in conn.execute(
                sa.select(_staff.c.id, _staff.c.email).where(_staff.c.id.in_(sorted(staff_ids)))
            )
        }
        post = conn.execute(sa.select(_post).where(_post.c.id == record.post_id)).one()
        services = {s.code: s.name for s in all_services(conn)}
    return desk.page(
        "console/request_detail.html",
        "requests",
        record=record,
        post=post,
        service_name=services.get(record.service_code, record.service_code),
        history=history,
        guard=guard,
        emails=emails,
        statuses=REQUEST_STATUSES,
        next_statuses=next_statuses(record.status),
        back_to=BACK_TO.get(record.status),
        tz=ZoneInfo(post.timezone),
    )


@router.post("/requests/{reference}/status", response_model=None)
def change_request_status(
    desk: FormDesk,
    reference: Annotated[str, Path(max_length=40)],
    status: Annotated[str, Form(max_length=16)] = "",
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    reason = one_line(reason, 300)
    if status not in REQUEST_STATUSES:
        desk.session.flash("error", "choose_status")
        return desk.redirect(f"/console/requests/{clean_reference(reference)}")
    try:
        _, after = perform(desk, lambda tx: request_desk.move(tx, reference, status, reason))
    except Refused as refused:
        codes = {"transition_refused": "transition_refused"}
        flash_refused(desk, refused, codes, "rejection_reason_needed")
        return desk.redirect(f"/console/requests/{clean_reference(reference)}")
    desk.session.flash("ok", "status_changed", reference=after.reference, status=status)
    return desk.redirect(f"/console/requests/{after.reference}")


@router.post("/requests/{reference}/step-back", response_model=None)
def step_back(
    desk: FormDesk,
    reference: Annotated[str, Path(max_length=40)],
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """`POST /api/v1/requests/{reference}/step-back`, as a form: a correction with its reason."""
    here = f"/console/requests/{clean_reference(reference)}"
    try:
        _, after = perform(
            desk, lambda tx: request_desk.step_back(tx, reference, one_line(reason, 300))
        )
    except Refused as refused:
        flash_refused(desk, refused, {"reason_needed": "correction_reason_needed"}, "no_step_back")
        return desk.redirect(here)
    desk.session.flash(
        "ok", "request_stepped_back", reference=after.reference, status=after.status.value
    )
    return desk.redirect(f"/console/requests/{after.reference}")
