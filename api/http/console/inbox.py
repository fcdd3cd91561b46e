"""The desk's inbox: conversations that citizens opened from the chat (menu 7) — waiting first,
oldest first, with the waiting time; one conversation with what the citizen holds here
(appointments, requests) and the canned answers of their language; reply, take, close; and
the canned answers that staff maintain. The use cases are api.domain.desk_conversations'.

New messages appear without a reload: /static/inbox.js fetches the page again every few
seconds and swaps its `data-live` parts (served by the app, no CDN; without JavaScript the
page works the same, with a reload).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import Form, Query, Response

from api import db
from api.domain import appointment_desk
from api.domain import desk_conversations as domain
from api.domain.appointment_desk import appointment_table, appointments_query
from api.domain.audit import StaffWrite, staff_write
from api.domain.desk_conversations import ConversationRecord
from api.domain.errors import NotVisible, Refused
from api.domain.requests import record_query
from api.domain.requests import to_record as request_record
from api.domain.staff import post_filter
from api.domain.tables import table
from api.http.console.base import (
    PAGE_SIZE,
    DeskDep,
    FormDesk,
    IdPath,
    not_visible,
    one_line,
    pick_post,
    section_router,
    visible_posts,
)
from api.models import ConsularRequest, DeskStatus, Post

router = section_router()

_post = table(Post)
_request_t = table(ConsularRequest)
STATUSES = tuple(s.value for s in DeskStatus)
RECENT = 10  # appointments and requests shown beside a conversation


def waited(since: datetime | None, now: datetime) -> int | None:
    """How long the citizen has been waiting, in minutes (put in words by `text.waiting`)."""
    if since is None:
        return None
    return max(0, int((now - since).total_seconds() // 60))


@router.get("/inbox", response_model=None)
def inbox(
    desk: DeskDep,
    post: Annotated[str, Query(max_length=8)] = "",
    status: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    status = status if status in STATUSES else ""
    with db.read(desk.engine) as conn:
        posts = visible_posts(conn, desk.staff)
        chosen = pick_post(posts, post)
        query = domain.inbox_query(
            desk.staff,
            post_id=chosen.id if chosen is not None else None,
            status=DeskStatus(status) if status else None,
        )
        if not status:  # the closed ones only when asked for
            query = query.where(domain.conversation_table.c.status != domain.CLOSED)
        rows = [domain.to_record(r) for r in conn.execute(query.limit(PAGE_SIZE))]
        numbers = domain.numbers(conn, desk.now, desk.staff)
    return desk.page(
        "console/inbox.html",
        "inbox",
        conversations=rows,
        posts=posts,
        filters={"post": chosen.code if chosen is not None else "", "status": status},
        statuses=STATUSES,
        waited=lambda record: waited(record.waiting_since, desk.now),
        numbers=numbers,
        duration=lambda delay: waited(desk.now - delay, desk.now) if delay is not None else None,
    )


def _visible(desk: DeskDep, conversation_id: int) -> ConversationRecord:
    with db.read(desk.engine) as conn:
        try:
            return domain.visible(conn, desk.staff, conversation_id)
        except NotVisible as missing:
            raise not_visible(desk, missing) from None


@router.get("/inbox/{conversation_id}", response_model=None)
def conversation(desk: DeskDep, conversation_id: IdPath) -> Response:
    record = _visible(desk, conversation_id)
    with db.read(desk.engine) as conn:
        thread = domain.messages(conn, conversation_id)
        appointments = [
            appointment_desk.to_record(r)
            for r in conn.execute(
                appointments_query()
                .where(
                    appointment_table.c.citizen_id == record.citizen_id,
                    post_filter(desk.staff, appointment_table.c.post_id),
                )
                .order_by(appointment_table.c.starts_at.desc())
                .limit(RECENT)
            )
        ]
        requests = [
            request_record(r)
            for r in conn.execute(
                record_query()
                .where(
                    _request_t.c.citizen_id == record.citizen_id,
                    post_filter(desk.staff, _request_t.c.post_id),
                )
                .order_by(_request_t.c.created_at.desc())
                .limit(RECENT)
            )
        ]
        answers = domain.canned_answers(conn, record.lang)
        timezone = conn.execute(
            sa.select(_post.c.timezone).where(_post.c.code == record.post_code)
        ).scalar_one()
    return desk.page(
        "console/inbox_conversation.html",
        "inbox",
        record=record,
        thread=thread,
        appointments=appointments,
        requests=requests,
        answers=answers,
        waited=waited(record.waiting_since, desk.now),
        tz=ZoneInfo(timezone),
    )


def _act(
    desk: FormDesk,
    conversation_id: int,
    use_case: Callable[[StaffWrite], object],
    done: str,
) -> Response:
    try:
        with staff_write(desk.engine, desk.staff, desk.now) as tx:
            use_case(tx)
    except NotVisible as missing:
        raise not_visible(desk, missing) from None
    except Refused as refused:
        desk.session.flash("error", f"desk_{refused.code}", detail=refused.detail)
    else:
        desk.session.flash("ok", done)
    return desk.redirect(f"/console/inbox/{conversation_id}")


@router.post("/inbox/{conversation_id}/reply", response_model=None)
def reply(
    desk: FormDesk,
    conversation_id: IdPath,
    text: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    templates = desk.request.app.state.settings.whatsapp_templates
    return _act(
        desk,
        conversation_id,
        lambda tx: domain.reply(tx, conversation_id, text, templates),
        "desk_reply_sent",
    )


@router.post("/inbox/{conversation_id}/assign", response_model=None)
def assign(desk: FormDesk, conversation_id: IdPath) -> Response:
    return _act(desk, conversation_id, lambda tx: domain.assign(tx, conversation_id), "desk_taken")


@router.post("/inbox/{conversation_id}/close", response_model=None)
def close(desk: FormDesk, conversation_id: IdPath) -> Response:
    return _act(desk, conversation_id, lambda tx: domain.close(tx, conversation_id), "desk_done")


# -- canned answers ------------------------------------------------------------------------------


@router.get("/inbox-answers", response_model=None)
def answers(desk: DeskDep) -> Response:
    with db.read(desk.engine) as conn:
        listed = domain.canned_answers(conn)
    return desk.page(
        "console/inbox_answers.html", "inbox", answers=listed, languages=domain.LANGUAGES
    )


@router.post("/inbox-answers", response_model=None)
def add_answer(
    desk: FormDesk,
    lang: Annotated[str, Form(max_length=8)] = "",
    title: Annotated[str, Form(max_length=200)] = "",
    text: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    try:
        with staff_write(desk.engine, desk.staff, desk.now) as tx:
            domain.add_canned_answer(tx, lang, one_line(title, domain.TITLE_MAX), text)
    except Refused as refused:
        desk.session.flash("error", f"desk_{refused.code}", detail=refused.detail)
    else:
        desk.session.flash("ok", "desk_answer_added")
    return desk.redirect("/console/inbox-answers")


@router.post("/inbox-answers/{answer_id}/delete", response_model=None)
def delete_answer(desk: FormDesk, answer_id: IdPath) -> Response:
    try:
        with staff_write(desk.engine, desk.staff, desk.now) as tx:
            domain.delete_canned_answer(tx, answer_id)
    except NotVisible as missing:
        raise not_visible(desk, missing) from None
    desk.session.flash("ok", "desk_answer_deleted")
    return desk.redirect("/console/inbox-answers")
