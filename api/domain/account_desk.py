"""Staff accounts at the administrator's desk: create, set the role and posts, deactivate,
reset the password. Each is one audited staff write (`api.domain.audit.staff_write`); the
staff API and the console call the same functions and translate `NotVisible` (no such
account) and `Refused` (`email_invalid`, `email_taken`, `unknown_role`, `unknown_post`,
`agent_needs_post`, `password_short`, `own_account`).

Snapshots name the role, the posts and the access, never a password or its hash.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from api.domain import staff as accounts
from api.domain.audit import StaffWrite
from api.domain.errors import NotVisible, Refused
from api.domain.staff import AccountRecord
from api.domain.tables import table
from api.models import ConsoleLogin, Post, Staff, StaffPost, StaffRole

_staff = table(Staff)
_staff_post = table(StaffPost)
_post = table(Post)
_login = table(ConsoleLogin)

PASSWORD_MIN = 8


def one(tx: StaffWrite, staff_id: int) -> AccountRecord:
    found = accounts.list_accounts(tx.conn, tx.now, staff_id)
    if not found:
        raise NotVisible("account")
    return found[0]


def snapshot(record: AccountRecord) -> dict[str, Any]:
    return {
        "email": record.email,
        "role": record.role.value,
        "posts": list(record.post_codes),
        "active": record.active,
        "tokens": record.live_tokens,
        "logins": record.live_logins,
    }


_ADD_STAFF_ERRORS = (
    ("already exists", "email_taken"),
    ("e-mail", "email_invalid"),
    ("unknown role", "unknown_role"),
    ("unknown post", "unknown_post"),
    ("at least one post", "agent_needs_post"),
    ("password", "password_short"),
)


def _code_of(message: str) -> str:
    """The stable code of one of add_staff's ValueErrors."""
    return next((code for words, code in _ADD_STAFF_ERRORS if words in message), "invalid")


def _not_self(tx: StaffWrite, staff_id: int) -> None:
    if staff_id == tx.staff.id:
        raise Refused("own_account", "an administrator cannot do this to their own account")


def create(
    tx: StaffWrite, email: str, role: str, post_codes: Iterable[str], password: str | None
) -> AccountRecord:
    if password is not None and len(password) < PASSWORD_MIN:
        raise Refused("password_short", f"the password needs at least {PASSWORD_MIN} characters")
    try:
        staff_id = accounts.add_staff(tx.conn, email, role, post_codes, password, now=tx.now)
    except ValueError as exc:
        raise Refused(_code_of(str(exc)), str(exc)) from None
    after = one(tx, staff_id)
    tx.audit("create", "staff", staff_id, None, snapshot(after))
    return after


def set_role_and_posts(
    tx: StaffWrite, staff_id: int, role: str, post_codes: Iterable[str]
) -> AccountRecord:
    """Replace the account's role and posts (an agent needs one post at least)."""
    before = one(tx, staff_id)
    try:
        wanted = StaffRole(role.strip().lower())
    except ValueError:
        raise Refused("unknown_role", f"unknown role {role!r}") from None
    if staff_id == tx.staff.id and wanted is not before.role:
        _not_self(tx, staff_id)
    codes = sorted({c.strip().upper() for c in post_codes if c.strip()})
    if wanted is StaffRole.agent and not codes:
        raise Refused("agent_needs_post", "an agent needs at least one post")
    found = dict(
        tx.conn.execute(sa.select(_post.c.code, _post.c.id).where(_post.c.code.in_(codes))).all()
    )
    unknown = [c for c in codes if c not in found]
    if unknown:
        raise Refused("unknown_post", f"unknown post: {', '.join(unknown)}")
    tx.conn.execute(sa.update(_staff).where(_staff.c.id == staff_id).values(role=wanted.value))
    tx.conn.execute(sa.delete(_staff_post).where(_staff_post.c.staff_id == staff_id))
    if found:
        tx.conn.execute(
            sa.insert(_staff_post),
            [{"staff_id": staff_id, "post_id": post_id} for post_id in found.values()],
        )
    after = one(tx, staff_id)
    tx.audit("update", "staff", staff_id, snapshot(before), snapshot(after))
    return after


def deactivate(tx: StaffWrite, staff_id: int) -> AccountRecord:
    """Its tokens and console logins end at once."""
    _not_self(tx, staff_id)
    before = one(tx, staff_id)
    accounts.disable_account(tx.conn, staff_id, tx.now)
    after = one(tx, staff_id)
    tx.audit("disable", "staff", staff_id, snapshot(before), snapshot(after))
    return after


def reset_password(tx: StaffWrite, staff_id: int, password: str) -> AccountRecord:
    """A new password, given to its owner by the administrator; every console login of the
    account ends (its tokens stay: revoke them apart)."""
    before = one(tx, staff_id)
    if len(password) < PASSWORD_MIN:
        raise Refused("password_short", f"the password needs at least {PASSWORD_MIN} characters")
    accounts.set_password(tx.conn, staff_id, password)
    tx.conn.execute(
        sa.update(_login)
        .where(_login.c.staff_id == staff_id, _login.c.ended_at.is_(None))
        .values(ended_at=tx.now)
    )
    after = one(tx, staff_id)
    tx.audit("reset_password", "staff", staff_id, snapshot(before), snapshot(after))
    return after
