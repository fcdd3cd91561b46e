"""Walk-ins: booking for the citizen standing at the desk, among the free seats, and the
printable receipt — the use case of api.domain.walk_ins, as forms."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import Form, Query, Response

from api import console_i18n, db
from api.domain import appointment_desk, appointment_proof, walk_ins
from api.domain.booking import BookingService
from api.domain.errors import NotVisible, Refused
from api.domain.outbox import default_renderer
from api.domain.tables import table
from api.http.console.base import (
    AnyRow,
    Desk,
    DeskDep,
    FormDesk,
    IdPath,
    all_services,
    not_found,
    not_visible,
    one_line,
    parse_day,
    perform,
    pick_post,
    section_router,
    visible_posts,
)
from api.models import Post, PostService, Service
from flows.choices import SERVICE_DOCUMENTS
from flows.engine import LANGUAGES
from flows.messages import msg
from flows.world import SlotOption

router = section_router()

DAYS_SHOWN = 10
_post = table(Post)
_offer = table(PostService)
_service = table(Service)


@dataclass(frozen=True)
class Choice:
    value: str
    label: str


def _form(
    desk: Desk,
    post: str,
    service: str,
    day: str,
    *,
    error: str = "",
    typed: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    """The walk-in form: the post, its services, the open days and the free times of one."""
    with db.read(desk.engine) as conn:
        posts = visible_posts(conn, desk.staff)
        chosen = pick_post(posts, post) or (posts[0] if posts else None)
        if post and pick_post(posts, post) is None:
            raise not_found(desk, "post")
        names = {s.code: s.name for s in all_services(conn)}
        booking = BookingService(conn, at_desk=True)
        services: list[Choice] = []
        days: list[date] = []
        times: list[SlotOption] = []
        wanted = parse_day(day)
        if chosen is not None:
            services = [
                Choice(o.code, names.get(o.code, o.code)) for o in booking.services(chosen.code)
            ]
            if service not in {s.value for s in services}:
                service = services[0].value if services else ""
            if service:
                days = booking.open_days(chosen.code, service, desk.now, DAYS_SHOWN)
                if wanted not in days:
                    wanted = days[0] if days else None
                if wanted is not None:
                    times = booking.open_times(chosen.code, service, wanted, desk.now)
    response = desk.page(
        "console/walk_in.html",
        "appointments",
        posts=posts,
        post=chosen,
        services=services,
        service=service,
        days=[d.isoformat() for d in days],  # in words by the template (long_day)
        day=wanted.isoformat() if wanted else "",
        times=[
            Choice(t.starts_at.astimezone(UTC).isoformat(), t.local.strftime("%H:%M"))
            for t in times
        ],
        languages=LANGUAGES,
        error=error,
        typed=typed or {},
    )
    response.status_code = status_code
    return response


@router.get("/walk-in", response_model=None)
def walk_in_form(
    desk: DeskDep,
    post: Annotated[str, Query(max_length=8)] = "",
    service: Annotated[str, Query(max_length=32)] = "",
    day: Annotated[str, Query(max_length=10)] = "",
) -> Response:
    return _form(desk, post, service, day)


@router.post("/walk-in", response_model=None)
def book_walk_in(
    desk: FormDesk,
    post: Annotated[str, Form(max_length=8)] = "",
    service: Annotated[str, Form(max_length=32)] = "",
    day: Annotated[str, Form(max_length=10)] = "",
    starts_at: Annotated[str, Form(max_length=40)] = "",
    full_name: Annotated[str, Form(max_length=200)] = "",
    phone: Annotated[str, Form(max_length=40)] = "",
    lang: Annotated[str, Form(max_length=8)] = "fr",
) -> Response:
    """Book among the free seats (api.domain.walk_ins), then show the receipt."""
    typed = {"full_name": one_line(full_name, 120), "phone": one_line(phone, 32), "lang": lang}
    try:
        when = datetime.fromisoformat(starts_at)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        return _form(desk, post, service, day, error="time_needed", typed=typed, status_code=422)
    try:
        record = perform(
            desk,
            lambda tx: walk_ins.book(
                tx, post, service, when, typed["full_name"], typed["phone"], lang
            ),
        )
    except Refused as refused:
        status = 409 if refused.code in ("full", "limit_reached", "unavailable") else 422
        return _form(desk, post, service, day, error=refused.code, typed=typed, status_code=status)
    return desk.redirect(f"/console/appointments/{record.id}/receipt")


@router.get("/appointments/{appointment_id}/receipt", response_model=None)
def receipt(desk: DeskDep, appointment_id: IdPath) -> Response:
    """A printable page for the citizen: reference, post, service, day and time in the post's
    local time, the documents to bring and the fee."""
    with db.read(desk.engine) as conn:
        try:
            record = appointment_desk.visible(conn, desk.staff, appointment_id)
        except NotVisible as missing:
            raise not_visible(desk, missing) from None
        place: AnyRow = conn.execute(
            sa.select(
                _post.c.name,
                _post.c.address,
                _post.c.phone,
                _service.c.name.label("service_name"),
                _offer.c.fee_note,
            )
            .select_from(
                _post.join(_offer, _offer.c.post_id == _post.c.id).join(
                    _service, _service.c.id == _offer.c.service_id
                )
            )
            .where(_post.c.id == record.post_id, _service.c.code == record.service_code)
        ).one()
    lang = console_i18n.choose(desk.session.lang, desk.request.headers.get("accept-language"))
    documents = SERVICE_DOCUMENTS.get(record.service_code, msg("service.other.documents"))
    return desk.page(
        "console/receipt.html",
        "appointments",
        record=record,
        place=place,
        documents=default_renderer().render(documents, lang),
        # the citizen's proof of appointment, as the chat sends it: the same signed QR code
        proof_url=appointment_proof.file_path(desk.request.app.state.proof_key, record.reference)
        if record.status == "booked"
        else None,
    )
