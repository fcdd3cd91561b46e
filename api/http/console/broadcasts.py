"""Broadcasts: compose (a title, a text per language, an audience with its live count), edit a
draft in the same composer, send now or at a post's local time, cancel, duplicate, and follow
the progress while it sends.

The use cases are api.domain.broadcast_desk's (the same rule of visibility as the staff API:
an agent sees a broadcast whose whole segment stays within their posts); these routes read
the form and put what the domain raises into a page or a flash message. Two small JSON
answers feed the page's script (/static/console-broadcasts.js): the audience count of the
form as it is typed (a POST carrying the CSRF token) and the statistics while sending.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends, Form, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from api import db
from api.domain import broadcast_delivery, broadcast_desk, broadcasts
from api.domain.audit import staff_write
from api.domain.broadcast_delivery import Stats
from api.domain.broadcasts import (
    DEFAULT_LANGUAGE,
    TEXT_MAX,
    Segment,
)
from api.domain.errors import NotVisible, Refused
from api.http.console.base import (
    REQUEST_STATUSES,
    Desk,
    DeskDep,
    FormDesk,
    IdPath,
    not_visible,
    one_line,
    parse_day,
    section_router,
    secure,
    visible_posts,
)
from flows.engine import LANGUAGES

router = section_router()

TELEGRAM_MAX = 4096
LANGUAGE_NAMES = {
    "fr": "Français",
    "mos": "Mooré",
    "dyu": "Dioula",
    "ff": "Fulfulde",
    "en": "English",
}
CHANNEL_NAMES = {"whatsapp": "WhatsApp", "telegram": "Telegram"}
LIVE = ("scheduled", "sending")

TextField = Annotated[str, Form(max_length=TEXT_MAX * 2)]
ListField = Annotated[list[str], Form(max_length=300)]


class ComposeForm:
    """The compose form as posted: title, texts, and the audience's criteria."""

    def __init__(
        self,
        title: Annotated[str, Form(max_length=400)] = "",
        text_fr: TextField = "",
        text_mos: TextField = "",
        text_dyu: TextField = "",
        text_ff: TextField = "",
        text_en: TextField = "",
        posts: ListField = [],  # noqa: B006  (FastAPI copies defaults)
        countries: Annotated[str, Form(max_length=800)] = "",
        languages: ListField = [],  # noqa: B006
        channels: ListField = [],  # noqa: B006
        appointment_start: Annotated[str, Form(max_length=10)] = "",
        appointment_end: Annotated[str, Form(max_length=10)] = "",
        request_statuses: ListField = [],  # noqa: B006
    ) -> None:
        self.title = one_line(title, broadcasts.TITLE_MAX)
        raw = {"fr": text_fr, "mos": text_mos, "dyu": text_dyu, "ff": text_ff, "en": text_en}
        self.texts = {lang: text.replace("\r\n", "\n").strip() for lang, text in raw.items()}
        self.posts = [p.strip().upper() for p in posts if p.strip()]
        self.countries = countries
        self.languages = [lang for lang in languages if lang in LANGUAGES]
        self.channels = [c for c in channels if c in CHANNEL_NAMES]
        self.appointment_start = appointment_start
        self.appointment_end = appointment_end
        self.request_statuses = [s for s in request_statuses if s in REQUEST_STATUSES]

    def segment(self) -> Segment:
        """The Segment these criteria describe; ValueError when a criterion is malformed."""
        data: dict[str, Any] = {
            "posts": self.posts,
            "countries": [c for c in self.countries.replace(";", ",").split(",") if c.strip()],
            "languages": self.languages,
            "channels": self.channels,
        }
        start, end = parse_day(self.appointment_start), parse_day(self.appointment_end)
        if start or end:
            data["appointment"] = {"start": start or end, "end": end or start}
        if self.request_statuses:
            data["request"] = {"statuses": self.request_statuses}
        try:
            return Segment.model_validate(data)
        except ValidationError as exc:
            raise ValueError(str(exc)) from None

    def values(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "texts": self.texts,
            "posts": self.posts,
            "countries": self.countries,
            "languages": self.languages,
            "channels": self.channels,
            "appointment_start": self.appointment_start,
            "appointment_end": self.appointment_end,
            "request_statuses": self.request_statuses,
        }


def _empty_values(desk: Desk, post_codes: list[str]) -> dict[str, Any]:
    return {
        "title": "",
        "texts": dict.fromkeys(LANGUAGES, ""),
        "posts": [] if desk.staff.is_admin else post_codes[:1],
        "countries": "",
        "languages": [],
        "channels": [],
        "appointment_start": "",
        "appointment_end": "",
        "request_statuses": [],
    }


def _compose_page(
    desk: Desk,
    values: dict[str, Any],
    error: str = "",
    params: Mapping[str, str] | None = None,
    *,
    editing: int | None = None,
) -> Response:
    """The composer: empty, as posted, or filled in with the draft being edited (`editing`)."""
    with db.read(desk.engine) as conn:
        posts = visible_posts(conn, desk.staff)
    return desk.page(
        "console/broadcast_new.html",
        "broadcasts",
        values=values,
        posts=posts,
        languages=LANGUAGES,
        language_names=LANGUAGE_NAMES,
        channel_names=CHANNEL_NAMES,
        request_statuses=REQUEST_STATUSES,
        text_max=TEXT_MAX,
        telegram_max=TELEGRAM_MAX,
        error=error,
        error_params=dict(params or {}),
        editing=editing,
    )


@router.get("/broadcasts", response_model=None)
def broadcast_list(desk: DeskDep) -> Response:
    with db.read(desk.engine) as conn:
        rows = broadcast_desk.listing(conn, desk.staff)
    return desk.page("console/broadcasts.html", "broadcasts", rows=rows)


@router.get("/broadcasts/new", response_model=None)
def broadcast_new(desk: DeskDep) -> Response:
    with db.read(desk.engine) as conn:
        codes = [p.code for p in visible_posts(conn, desk.staff)]
    return _compose_page(desk, _empty_values(desk, codes))


def _checked(desk: Desk, form: ComposeForm, editing: int | None = None) -> Segment | Response:
    """The form's segment, or the compose page again saying what is missing."""

    def again(error: str, **params: str) -> Response:
        return _compose_page(desk, form.values(), error, params, editing=editing)

    try:
        segment = form.segment()
    except ValueError:
        return again("segment_invalid")
    if not form.title:
        return again("title_needed")
    if not form.texts.get(DEFAULT_LANGUAGE):
        return again("french_needed")
    too_long = [LANGUAGE_NAMES[lang] for lang, text in form.texts.items() if len(text) > TEXT_MAX]
    if too_long:
        return again("text_too_long", languages=", ".join(too_long))
    return segment


@router.post("/broadcasts", response_model=None)
def broadcast_create(desk: FormDesk, form: Annotated[ComposeForm, Depends()]) -> Response:
    segment = _checked(desk, form)
    if isinstance(segment, Response):
        return segment
    try:
        with staff_write(desk.engine, desk.staff, desk.now) as tx:
            record = broadcast_desk.compose(tx, title=form.title, texts=form.texts, segment=segment)
    except Refused as refused:
        return _compose_page(desk, form.values(), refused.code, refused.params)
    desk.session.flash("ok", "broadcast_created", title=record.title)
    return desk.redirect(f"/console/broadcasts/{record.id}")


def _draft_values(record: broadcasts.BroadcastRecord) -> dict[str, Any]:
    """A draft as the compose form's values: title, texts and the criteria the form has."""
    segment = broadcasts.segment_of(record)
    return {
        "title": record.title,
        "texts": {lang: record.texts.get(lang, "") for lang in LANGUAGES},
        "posts": list(segment.posts),
        "countries": ", ".join(segment.countries),
        "languages": list(segment.languages),
        "channels": list(segment.channels),
        "appointment_start": segment.appointment.start.isoformat() if segment.appointment else "",
        "appointment_end": segment.appointment.end.isoformat() if segment.appointment else "",
        "request_statuses": [s.value for s in segment.request.statuses] if segment.request else [],
    }


def _not_editable(desk: Desk, broadcast_id: int, status: str) -> Response:
    desk.session.flash("error", "broadcast_not_editable", status=status)
    return desk.redirect(f"/console/broadcasts/{broadcast_id}")


@router.get("/broadcasts/{broadcast_id}/edit", response_model=None)
def broadcast_edit_form(desk: DeskDep, broadcast_id: IdPath) -> Response:
    """The compose form filled in with a draft; only a draft opens in it."""
    with db.read(desk.engine) as conn:
        try:
            record = broadcast_desk.visible(conn, desk.staff, broadcast_id)
        except NotVisible as missing:
            raise not_visible(desk, missing) from None
    if record.status != "draft":
        return _not_editable(desk, broadcast_id, record.status)
    return _compose_page(desk, _draft_values(record), editing=record.id)


@router.post("/broadcasts/{broadcast_id}/edit", response_model=None)
def broadcast_edit(
    desk: FormDesk, broadcast_id: IdPath, form: Annotated[ComposeForm, Depends()]
) -> Response:
    """Save the changed draft through the staff API's own use case (broadcast_desk.edit)."""
    segment = _checked(desk, form, editing=broadcast_id)
    if isinstance(segment, Response):
        return segment
    try:
        with staff_write(desk.engine, desk.staff, desk.now) as tx:
            record = broadcast_desk.edit(
                tx, broadcast_id, title=form.title, texts=form.texts, segment=segment
            )
    except NotVisible as missing:
        raise not_visible(desk, missing) from None
    except Refused as refused:
        if refused.code == "wrong_status":
            return _not_editable(desk, broadcast_id, str(refused.params.get("status", "")))
        return _compose_page(
            desk, form.values(), refused.code, refused.params, editing=broadcast_id
        )
    desk.session.flash("ok", "broadcast_edited", title=record.title)
    return desk.redirect(f"/console/broadcasts/{record.id}")


@router.post("/broadcasts/count", response_model=None)
def broadcast_count(desk: FormDesk, form: Annotated[ComposeForm, Depends()]) -> Response:
    """The live count of the form's audience (JSON, for the page's script)."""
    try:
        segment = form.segment()
        with db.read(desk.engine) as conn:
            found = broadcast_desk.audience(conn, desk.staff, segment)
    except ValueError:
        return _json({"error": "segment_invalid"}, 422)
    except Refused as refused:
        return _json({"error": refused.code}, 403 if refused.code == "outside_posts" else 422)
    return _json(
        {
            "total": found.total,
            "reachable": found.reachable,
            "opted_out": found.opted_out,
            "unreachable": found.unreachable,
        }
    )


def _json(content: dict[str, Any], status_code: int = 200) -> Response:
    return secure(JSONResponse(content, status_code=status_code))


def progress_of(found: Stats) -> dict[str, Any]:
    """The statistics with how far the broadcast is, in per cent of its audience."""
    done = found.audience - found.pending
    if found.audience:
        percent = round(100 * done / found.audience)
    else:
        percent = 100 if found.status == "sent" else 0
    if found.status in LIVE:
        percent = min(percent, 99)  # 100 % only once every message has been written
    live = found.status in LIVE or found.pending > 0
    return {**found.as_dict(), "percent": percent, "live": live}


@router.get("/broadcasts/{broadcast_id}", response_model=None)
def broadcast_detail(desk: DeskDep, broadcast_id: IdPath) -> Response:
    with db.read(desk.engine) as conn:
        try:
            record = broadcast_desk.visible(conn, desk.staff, broadcast_id)
            found = broadcast_delivery.stats(conn, broadcast_id)
        except NotVisible as missing:
            raise not_visible(desk, missing) from None
        segment = broadcasts.segment_of(record)
        count = broadcasts.count(conn, segment) if record.status == "draft" else None
        posts = visible_posts(conn, desk.staff)
    named = [p for p in posts if p.code in segment.named_posts()] or posts
    local_post = named[0] if named else None
    return desk.page(
        "console/broadcast.html",
        "broadcasts",
        b=record,
        segment=segment,
        count=count,
        progress=progress_of(found),
        posts=named,
        local_post=local_post,
        language_names=LANGUAGE_NAMES,
        channel_names=CHANNEL_NAMES,
        text_max=TEXT_MAX,
        telegram_max=TELEGRAM_MAX,
        min_local=(
            desk.now.astimezone(ZoneInfo(local_post.timezone)).strftime("%Y-%m-%dT%H:%M")
            if local_post is not None
            else ""
        ),
    )


@router.get("/broadcasts/{broadcast_id}/stats", response_model=None)
def broadcast_stats(desk: DeskDep, broadcast_id: IdPath) -> Response:
    with db.read(desk.engine) as conn:
        try:
            found = broadcast_desk.progress(conn, desk.staff, broadcast_id)
        except NotVisible:
            return _json({"error": "not_found"}, 404)
    return _json(progress_of(found))


def _local_send_at(desk: Desk, text: str, post_code: str) -> datetime | str | None:
    """The moment a local time of a post names (UTC), None for now, or an error code."""
    if not text.strip():
        return None
    try:
        local = datetime.fromisoformat(text.strip())
    except ValueError:
        return "send_at_invalid"
    if not date(2000, 1, 1) <= local.date() <= date(2099, 12, 31):
        return "send_at_invalid"
    with db.read(desk.engine) as conn:
        post = next((p for p in visible_posts(conn, desk.staff) if p.code == post_code), None)
    if post is None:
        return "choose_post"
    return local.replace(tzinfo=ZoneInfo(post.timezone))


@router.post("/broadcasts/{broadcast_id}/send", response_model=None)
def broadcast_send(
    desk: FormDesk,
    broadcast_id: IdPath,
    when: Annotated[str, Form(max_length=10)] = "now",
    send_at: Annotated[str, Form(max_length=20)] = "",
    post: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    here = f"/console/broadcasts/{broadcast_id}"
    moment = None if when == "now" else _local_send_at(desk, send_at, post.strip().upper())
    if when != "now" and moment is None:
        moment = "send_at_needed"
    if isinstance(moment, str):
        desk.session.flash("error", moment)
        return desk.redirect(here)
    try:
        with staff_write(desk.engine, desk.staff, desk.now) as tx:
            record = broadcast_desk.send(tx, broadcast_id, moment)
    except NotVisible as missing:
        raise not_visible(desk, missing) from None
    except Refused as refused:
        desk.session.flash("error", f"broadcast_{refused.code}", **refused.params)
        return desk.redirect(here)
    due_now = record.send_at is None or record.send_at <= desk.now
    desk.session.flash("ok", "broadcast_sending" if due_now else "broadcast_scheduled")
    return desk.redirect(here)


@router.post("/broadcasts/{broadcast_id}/cancel", response_model=None)
def broadcast_cancel(desk: FormDesk, broadcast_id: IdPath) -> Response:
    here = f"/console/broadcasts/{broadcast_id}"
    try:
        with staff_write(desk.engine, desk.staff, desk.now) as tx:
            _, stopped = broadcast_desk.cancel(tx, broadcast_id)
    except NotVisible as missing:
        raise not_visible(desk, missing) from None
    except Refused as refused:
        desk.session.flash("error", f"broadcast_{refused.code}", **refused.params)
        return desk.redirect(here)
    desk.session.flash("ok", "broadcast_cancelled", stopped=stopped)
    return desk.redirect(here)


@router.post("/broadcasts/{broadcast_id}/duplicate", response_model=None)
def broadcast_duplicate(desk: FormDesk, broadcast_id: IdPath) -> Response:
    try:
        with staff_write(desk.engine, desk.staff, desk.now) as tx:
            record = broadcast_desk.duplicate(tx, broadcast_id)
    except NotVisible as missing:
        raise not_visible(desk, missing) from None
    except Refused as refused:
        desk.session.flash("error", f"broadcast_{refused.code}", **refused.params)
        return desk.redirect(f"/console/broadcasts/{broadcast_id}")
    desk.session.flash("ok", "broadcast_duplicated")
    return desk.redirect(f"/console/broadcasts/{record.id}")
