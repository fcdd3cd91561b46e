"""Administration (administrators only; to an agent these pages do not exist): staff
accounts — create, set the role and posts, deactivate, reset a password — through
api.domain.account_desk, the same audited use cases as the staff API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Form, Response

from api import db
from api.domain import account_desk
from api.domain.audit import StaffWrite, staff_write
from api.domain.errors import NotVisible, Refused
from api.domain.staff import AccountRecord, list_accounts
from api.http.console.base import (
    Desk,
    DeskDep,
    FormDesk,
    IdPath,
    not_found,
    not_visible,
    one_line,
    section_router,
    visible_posts,
)

router = section_router()
HOME = "/console/admin/staff"

Posts = Annotated[list[str], Form(max_length=100)]


def _admin(desk: Desk) -> Desk:
    if not desk.staff.is_admin:
        raise not_found(desk)
    return desk


@router.get("/admin/staff", response_model=None)
def staff_list(desk: DeskDep) -> Response:
    _admin(desk)
    with db.read(desk.engine) as conn:
        rows = list_accounts(conn, desk.now)
        posts = visible_posts(conn, desk.staff)
    return desk.page("console/admin_staff.html", "admin", rows=rows, posts=posts)


@router.post("/admin/staff", response_model=None)
def staff_create(
    desk: FormDesk,
    email: Annotated[str, Form(max_length=200)] = "",
    role: Annotated[str, Form(max_length=8)] = "agent",
    posts: Posts = [],  # noqa: B006  (FastAPI copies defaults)
    password: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    _admin(desk)
    try:
        with staff_write(desk.engine, desk.staff, desk.now) as tx:
            created = account_desk.create(tx, one_line(email, 200), role, posts, password)
    except Refused as refused:
        desk.session.flash("error", f"account_{refused.code}")
        return desk.redirect(HOME)
    desk.session.flash("ok", "account_created", email=created.email)
    return desk.redirect(f"{HOME}/{created.id}")


@router.get("/admin/staff/{staff_id}", response_model=None)
def staff_detail(desk: DeskDep, staff_id: IdPath) -> Response:
    _admin(desk)
    with db.read(desk.engine) as conn:
        found = list_accounts(conn, desk.now, staff_id)
        posts = visible_posts(conn, desk.staff)
    if not found:
        raise not_found(desk, "account")
    return desk.page("console/admin_account.html", "admin", account=found[0], posts=posts)


def _change(
    desk: Desk, staff_id: int, done: str, use_case: Callable[[StaffWrite], AccountRecord]
) -> Response:
    here = f"{HOME}/{staff_id}"
    try:
        with staff_write(desk.engine, desk.staff, desk.now) as tx:
            after = use_case(tx)
    except NotVisible as missing:
        raise not_visible(desk, missing) from None
    except Refused as refused:
        desk.session.flash("error", f"account_{refused.code}")
        return desk.redirect(here)
    desk.session.flash("ok", done, email=after.email)
    return desk.redirect(here)


@router.post("/admin/staff/{staff_id}", response_model=None)
def staff_update(
    desk: FormDesk,
    staff_id: IdPath,
    role: Annotated[str, Form(max_length=8)] = "agent",
    posts: Posts = [],  # noqa: B006
) -> Response:
    _admin(desk)
    return _change(
        desk,
        staff_id,
        "account_updated",
        lambda tx: account_desk.set_role_and_posts(tx, staff_id, role, posts),
    )


@router.post("/admin/staff/{staff_id}/disable", response_model=None)
def staff_disable(desk: FormDesk, staff_id: IdPath) -> Response:
    _admin(desk)
    return _change(
        desk, staff_id, "account_disabled", lambda tx: account_desk.deactivate(tx, staff_id)
    )


@router.post("/admin/staff/{staff_id}/password", response_model=None)
def staff_password(
    desk: FormDesk, staff_id: IdPath, password: Annotated[str, Form(max_length=200)] = ""
) -> Response:
    _admin(desk)
    return _change(
        desk,
        staff_id,
        "password_reset",
        lambda tx: account_desk.reset_password(tx, staff_id, password),
    )
