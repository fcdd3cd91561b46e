"""Staff accounts, passwords, API tokens and console logins.

A token is `dbt_` + 256 random bits (url-safe base64). It is shown once, when issued; the
database keeps only its SHA-256, so a leaked backup grants nothing. Looking a token up by its
hash is also what keeps the check constant-time: the secret itself is never compared. A token
may carry an expiry. Passwords are hashed with Argon2id (argon2-cffi).

A console login is a row too (`console_login`, keyed by the SHA-256 of the random id its
cookie carries): logging out ends it on the server, so a copied cookie no longer works, and
disabling an account ends all of its logins and tokens at once.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from api import models
from api.domain import audit
from api.models import StaffRole
from flows.engine import LANGUAGES

TOKEN_PREFIX = "dbt_"  # noqa: S105  (a prefix, not a secret)
LAST_USED_RESOLUTION = timedelta(minutes=1)
LOGIN_DURATION = timedelta(hours=12)
LOGIN_FAILURES = 5  # failed console logins of one account …
LOGIN_FAILURES_WINDOW = timedelta(minutes=15)  # … within this time: the next ones wait

_staff = SQLModel.metadata.tables["staff"]
_staff_post = SQLModel.metadata.tables["staff_post"]
_staff_language = SQLModel.metadata.tables["staff_language"]
_api_token = SQLModel.metadata.tables["api_token"]
_post = SQLModel.metadata.tables["post"]
_login = SQLModel.metadata.tables["console_login"]
_audit = SQLModel.metadata.tables["audit_log"]


@dataclass(frozen=True)
class StaffPrincipal:
    """Who is calling: an administrator (every post, every language), an agent (their posts
    only) or a translator (the catalogs of their languages only)."""

    id: int
    email: str
    role: StaffRole
    post_ids: frozenset[int]
    languages: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        return self.role is StaffRole.admin

    def may_act_for(self, post_id: int) -> bool:
        return self.is_admin or post_id in self.post_ids

    def may_translate(self, lang: str) -> bool:
        return self.is_admin or lang in self.languages


def post_filter(staff: StaffPrincipal, column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """`column` (a post id) is one the caller may see: an administrator every post, an agent
    their own. Another post's data is treated exactly as data that does not exist."""
    if staff.is_admin:
        return sa.true()
    return column.in_(sorted(staff.post_ids))


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    return PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Verified against when the account is unknown, so that timing does not tell."""
    return _hasher().hash(secrets.token_urlsafe(16))


def normalise_email(email: str) -> str:
    return email.strip().lower()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def add_staff(
    conn: Connection,
    email: str,
    role: str,
    post_codes: Iterable[str],
    password: str | None = None,
    *,
    now: datetime | None = None,
    languages: Iterable[str] = (),
) -> int:
    """Create a staff account and return its id; raise ValueError with a readable message."""
    address = normalise_email(email)
    local, _, domain = address.partition("@")
    if not local or "." not in domain or any(c.isspace() for c in address):
        raise ValueError(f"not an e-mail address: {email!r}")
    try:
        staff_role = StaffRole(role.strip().lower())
    except ValueError:
        raise ValueError(f"unknown role {role!r}: use admin, agent or translator") from None
    codes = sorted({code.strip().upper() for code in post_codes if code.strip()})
    if staff_role is StaffRole.agent and not codes:
        raise ValueError("an agent needs at least one post (--post CODE)")
    langs = sorted({lang.strip().lower() for lang in languages if lang.strip()})
    if staff_role is StaffRole.translator and not langs:
        raise ValueError("a translator needs at least one language (--lang mos)")
    unknown_langs = [lang for lang in langs if lang not in LANGUAGES]
    if unknown_langs:
        raise ValueError(f"unknown language: {', '.join(unknown_langs)}")
    if password is not None and len(password) < 8:
        raise ValueError("the password needs at least 8 characters")

    post_ids: dict[str, int] = {}
    if codes:
        rows = conn.execute(sa.select(_post.c.code, _post.c.id).where(_post.c.code.in_(codes)))
        post_ids = {code: id_ for code, id_ in rows}
        unknown = [code for code in codes if code not in post_ids]
        if unknown:
            raise ValueError(f"unknown post: {', '.join(unknown)}")
    if conn.execute(sa.select(_staff.c.id).where(_staff.c.email == address)).first():
        raise ValueError(f"a staff account already exists for {address}")

    staff_id: int = conn.execute(
        _staff.insert()
        .values(
            email=address,
            role=staff_role.value,
            password_hash=_hasher().hash(password) if password is not None else None,
            active=True,
            created_at=now or models.utcnow(),
        )
        .returning(_staff.c.id)
    ).scalar_one()
    if post_ids:
        conn.execute(
            _staff_post.insert(),
            [{"staff_id": staff_id, "post_id": post_id} for post_id in post_ids.values()],
        )
    if langs:
        conn.execute(
            _staff_language.insert(), [{"staff_id": staff_id, "lang": lang} for lang in langs]
        )
    return staff_id


def issue_token(
    conn: Connection, email: str, now: datetime, *, expires_at: datetime | None = None
) -> str:
    """A new API token for an active account, valid until `expires_at` (None: until revoked).
    Returned once; only its hash is stored."""
    staff_id = conn.execute(
        sa.select(_staff.c.id).where(
            _staff.c.email == normalise_email(email), _staff.c.active.is_(True)
        )
    ).scalar_one_or_none()
    if staff_id is None:
        raise ValueError(f"no active staff account for {normalise_email(email)}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    conn.execute(
        _api_token.insert().values(
            staff_id=staff_id, token_hash=hash_token(token), created_at=now, expires_at=expires_at
        )
    )
    return token


def staff_for_token(conn: Connection, token: str, now: datetime) -> StaffPrincipal | None:
    """The account behind a bearer token, or None (unknown, revoked, expired, or account
    disabled).

    Records when the token was last used, at most once a minute to spare the database.
    """
    if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        return None
    row = conn.execute(
        sa.select(_api_token.c.id, _api_token.c.last_used_at, _staff.c.id.label("staff_id"))
        .join(_staff, _staff.c.id == _api_token.c.staff_id)
        .where(
            _api_token.c.token_hash == hash_token(token),
            _api_token.c.revoked_at.is_(None),
            sa.or_(_api_token.c.expires_at.is_(None), _api_token.c.expires_at > now),
            _staff.c.active.is_(True),
        )
    ).first()
    if row is None:
        return None
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        conn.execute(_api_token.update().where(_api_token.c.id == row.id).values(last_used_at=now))
    return _principal(conn, row.staff_id)


def revoke_token(conn: Connection, token: str, now: datetime) -> bool:
    """Revoke one token; False if it was unknown or already revoked."""
    result = conn.execute(
        _api_token.update()
        .where(_api_token.c.token_hash == hash_token(token), _api_token.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount > 0


def revoke_all_tokens(conn: Connection, email: str, now: datetime) -> int:
    """Revoke every live token of an account (lost laptop, agent leaving); how many."""
    staff_id = staff_id_of(conn, email)
    return 0 if staff_id is None else revoke_tokens_of(conn, staff_id, now)


def revoke_tokens_of(conn: Connection, staff_id: int, now: datetime) -> int:
    result = conn.execute(
        _api_token.update()
        .where(_api_token.c.staff_id == staff_id, _api_token.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount


def disable_staff(conn: Connection, email: str, now: datetime) -> bool:
    """Deactivate an account: its tokens are revoked and its console logins ended, at once.
    False when there is no such account."""
    staff_id = staff_id_of(conn, email)
    if staff_id is None:
        return False
    disable_account(conn, staff_id, now)
    return True


def disable_account(conn: Connection, staff_id: int, now: datetime) -> None:
    conn.execute(_staff.update().where(_staff.c.id == staff_id).values(active=False))
    revoke_tokens_of(conn, staff_id, now)
    conn.execute(
        _login.update()
        .where(_login.c.staff_id == staff_id, _login.c.ended_at.is_(None))
        .values(ended_at=now)
    )


def staff_id_of(conn: Connection, email: str) -> int | None:
    found = conn.execute(
        sa.select(_staff.c.id).where(_staff.c.email == normalise_email(email))
    ).scalar_one_or_none()
    return None if found is None else int(found)


# --- console logins ---------------------------------------------------------------------------


def record_login_failure(conn: Connection, email: str, now: datetime) -> None:
    """A failed console login, in the audit log: the account it was for (its id; `unknown`
    when there is none), never the password nor what was typed."""
    staff_id = staff_id_of(conn, email)
    audit.record(
        conn,
        staff_id=None,  # nobody is logged in
        action="login_failed",
        entity="staff",
        entity_id=staff_id if staff_id is not None else "unknown",
        before=None,
        after=None,
        now=now,
    )


def login_wait(conn: Connection, email: str, now: datetime) -> int:
    """Seconds before this account may try again (0: now): `LOGIN_FAILURES` failures within
    `LOGIN_FAILURES_WINDOW` make it wait until the oldest of them leaves the window. Counted in
    the audit log, so every process sees the same."""
    staff_id = staff_id_of(conn, email)
    if staff_id is None:
        return 0
    recent: list[datetime] = list(
        conn.execute(
            sa.select(_audit.c.at)
            .where(
                _audit.c.action == "login_failed",
                _audit.c.entity == "staff",
                _audit.c.entity_id == str(staff_id),
                _audit.c.at > now - LOGIN_FAILURES_WINDOW,
            )
            .order_by(_audit.c.at.desc())
            .limit(LOGIN_FAILURES)
        ).scalars()
    )
    if len(recent) < LOGIN_FAILURES:
        return 0
    oldest = recent[-1] if recent[-1].tzinfo else recent[-1].replace(tzinfo=now.tzinfo)
    return max(1, math.ceil((oldest + LOGIN_FAILURES_WINDOW - now).total_seconds()))


def open_login(conn: Connection, staff_id: int, now: datetime) -> str:
    """A new console login; returns the random id for the cookie (the database keeps its hash)."""
    login_id = secrets.token_urlsafe(32)
    conn.execute(
        _login.insert().values(
            id_hash=hash_token(login_id),
            staff_id=staff_id,
            created_at=now,
            expires_at=now + LOGIN_DURATION,
        )
    )
    return login_id


def login_is_live(conn: Connection, login_id: str, staff_id: int, now: datetime) -> bool:
    if not login_id or len(login_id) > 100:
        return False
    found = conn.execute(
        sa.select(_login.c.id_hash).where(
            _login.c.id_hash == hash_token(login_id),
            _login.c.staff_id == staff_id,
            _login.c.ended_at.is_(None),
            _login.c.expires_at > now,
        )
    ).first()
    return found is not None


def end_login(conn: Connection, login_id: str, now: datetime) -> None:
    conn.execute(
        _login.update()
        .where(_login.c.id_hash == hash_token(login_id), _login.c.ended_at.is_(None))
        .values(ended_at=now)
    )


def set_password(conn: Connection, staff_id: int, password: str) -> None:
    """A new password (Argon2id); the console sessions opened with the old one stop working."""
    conn.execute(
        _staff.update()
        .where(_staff.c.id == staff_id)
        .values(password_hash=_hasher().hash(password))
    )


DEMO_ADMIN = "demo.admin@diaspora.local"


def demo_admin(conn: Connection, now: datetime) -> tuple[str, str]:
    """The local demo's administrator, created if missing, with a new random password each
    time (only its hash is kept, so it is shown at start-up and never again). Called by
    `serve` on the local demo database only; never in production."""
    password = secrets.token_urlsafe(12)
    staff_id = staff_id_of(conn, DEMO_ADMIN)
    if staff_id is None:
        add_staff(conn, DEMO_ADMIN, "admin", [], password, now=now)
    else:
        set_password(conn, staff_id, password)
        conn.execute(_staff.update().where(_staff.c.id == staff_id).values(active=True))
    audit.record(
        conn,
        staff_id=None,
        action="demo_login",
        entity="staff",
        entity_id=staff_id_of(conn, DEMO_ADMIN) or 0,
        before=None,
        after={"email": DEMO_ADMIN},
        now=now,
    )
    return DEMO_ADMIN, password


def verify_password(conn: Connection, email: str, password: str) -> StaffPrincipal | None:
    """The account if the password is right, else None; rehashes when parameters changed."""
    row = conn.execute(
        sa.select(_staff.c.id, _staff.c.password_hash).where(
            _staff.c.email == normalise_email(email), _staff.c.active.is_(True)
        )
    ).first()
    stored = row.password_hash if row is not None else None
    try:
        _hasher().verify(stored or _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or stored is None:
        return None
    if _hasher().check_needs_rehash(stored):
        conn.execute(
            _staff.update()
            .where(_staff.c.id == row.id)
            .values(password_hash=_hasher().hash(password))
        )
    return _principal(conn, row.id)


def _principal(conn: Connection, staff_id: int) -> StaffPrincipal:
    staff = conn.execute(
        sa.select(_staff.c.id, _staff.c.email, _staff.c.role).where(_staff.c.id == staff_id)
    ).one()
    posts = conn.execute(
        sa.select(_staff_post.c.post_id).where(_staff_post.c.staff_id == staff_id)
    ).scalars()
    return StaffPrincipal(
        id=staff.id,
        email=staff.email,
        role=StaffRole(staff.role),
        post_ids=frozenset(posts),
        languages=languages_of(conn, staff_id),
    )


def languages_of(conn: Connection, staff_id: int) -> frozenset[str]:
    """The languages whose catalogs this account reviews (besides an administrator's all)."""
    rows = conn.execute(
        sa.select(_staff_language.c.lang).where(_staff_language.c.staff_id == staff_id)
    ).scalars()
    return frozenset(str(lang) for lang in rows)


# --- accounts, as administrators see them -----------------------------------------------------


@dataclass(frozen=True)
class AccountRecord:
    id: int
    email: str
    role: StaffRole
    active: bool
    post_codes: tuple[str, ...]
    live_tokens: int
    live_logins: int


def list_accounts(
    conn: Connection, now: datetime, staff_id: int | None = None
) -> list[AccountRecord]:
    """Every account (or one), with its posts and how many tokens and console logins are live."""
    tokens = (
        sa.select(sa.func.count())
        .where(
            _api_token.c.staff_id == _staff.c.id,
            _api_token.c.revoked_at.is_(None),
            sa.or_(_api_token.c.expires_at.is_(None), _api_token.c.expires_at > now),
        )
        .scalar_subquery()
    )
    logins = (
        sa.select(sa.func.count())
        .where(
            _login.c.staff_id == _staff.c.id,
            _login.c.ended_at.is_(None),
            _login.c.expires_at > now,
        )
        .scalar_subquery()
    )
    query = sa.select(
        _staff.c.id,
        _staff.c.email,
        _staff.c.role,
        _staff.c.active,
        tokens.label("tokens"),
        logins.label("logins"),
    ).order_by(_staff.c.email)
    if staff_id is not None:
        query = query.where(_staff.c.id == staff_id)
    rows = conn.execute(query).all()
    codes: dict[int, list[str]] = {int(r.id): [] for r in rows}
    for link in conn.execute(
        sa.select(_staff_post.c.staff_id, _post.c.code)
        .join(_post, _post.c.id == _staff_post.c.post_id)
        .where(_staff_post.c.staff_id.in_(list(codes)))
        .order_by(_post.c.code)
    ):
        codes[int(link.staff_id)].append(str(link.code))
    return [
        AccountRecord(
            id=int(r.id),
            email=str(r.email),
            role=StaffRole(r.role),
            active=bool(r.active),
            post_codes=tuple(codes[int(r.id)]),
            live_tokens=int(r.tokens),
            live_logins=int(r.logins),
        )
        for r in rows
    ]
