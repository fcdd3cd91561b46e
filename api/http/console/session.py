"""The staff console's session: a signed cookie, its CSRF token, and who is logged in.

The session is a small JSON document in a cookie, signed with HMAC-SHA256: the server keeps
nothing, so any process holding the same key accepts it. The key comes from a
`console_secret` setting if the settings have one, else from the environment variable
`CONSOLE_SECRET` (the environment itself: `.env` is read for the settings only); without
either, each process draws a random key at start-up, and every console session ends when the
process restarts (and a session opened on one process is unknown to another: set
`CONSOLE_SECRET` as soon as more than one `serve` process runs).

What the cookie holds: the staff id, the random id of its login (`console_login` on the
server: logging out ends it there, so a copied cookie stops working), a fingerprint of the
password hash (changing the password ends every session of that account), the CSRF token of
the forms, the time of login (a session lasts `SESSION_HOURS`) and the one-shot flash
messages — codes and references, never a citizen's name or phone. Nothing personal, but it is
readable by whoever holds the cookie: it is signed, not encrypted.

The account and the login are read again on every request: a deactivated account, a logout,
a password change or a post taken away act at once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from fastapi import Request, Response
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from api.domain.staff import StaffPrincipal, languages_of, login_is_live
from api.models import StaffRole

COOKIE = "console_session"
COOKIE_PATH = "/"  # the console, and the API's documentation when it is staff-only
SESSION_HOURS = 12
SECRET_ENV = "CONSOLE_SECRET"  # noqa: S105  (the name of a variable, not a secret)
MAX_FLASHES = 5

_staff = SQLModel.metadata.tables["staff"]
_staff_post = SQLModel.metadata.tables["staff_post"]


def _key_from(secret: str | bytes) -> bytes:
    raw = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hmac.new(raw, b"diaspora-bot console session v1", hashlib.sha256).digest()


_PROCESS_SECRET = secrets.token_bytes(32)


def session_key(request: Request) -> bytes:
    """The signing key of this app: a `console_secret` setting when the settings have one,
    else the environment's CONSOLE_SECRET, else this process's random secret."""
    cached = getattr(request.app.state, "console_session_key", None)
    if isinstance(cached, bytes):
        return cached
    configured = getattr(request.app.state.settings, "console_secret", None)
    key = _key_from(configured or os.environ.get(SECRET_ENV) or _PROCESS_SECRET)
    request.app.state.console_session_key = key
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(payload: dict[str, Any], key: bytes) -> str:
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8"))
    mac = hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def unsign(value: str, key: bytes) -> dict[str, Any] | None:
    """The payload of a cookie signed with `key`, or None if it was tampered with or garbled."""
    body, _, mac = value.partition(".")
    if not body or not mac or len(value) > 4096:
        return None
    expected = hmac.new(key, body.encode("ascii", "replace"), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(expected, _unb64(mac)):
            return None
        payload = json.loads(_unb64(body))
    except (binascii.Error, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


def password_fingerprint(password_hash: str | None) -> str:
    return hashlib.sha256((password_hash or "").encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Flash:
    kind: str  # ok | error
    code: str
    params: dict[str, str]


def _flash(item: Any) -> Flash:
    kind, code, params = item
    return Flash(str(kind), str(code), {str(k): str(v) for k, v in dict(params).items()})


@dataclass
class ConsoleSession:
    """The decoded cookie. Changes are written back by `save` on the response."""

    staff_id: int | None = None
    login_id: str = ""
    fingerprint: str = ""
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    logged_in_at: int = 0
    flashes: list[Flash] = field(default_factory=list)
    lang: str = ""  # the console's language chosen with its switch; "" = the browser's
    modified: bool = False

    @classmethod
    def from_request(cls, request: Request) -> ConsoleSession:
        cached = getattr(request.state, "console_session", None)
        if isinstance(cached, ConsoleSession):
            return cached
        session = cls._decode(request.cookies.get(COOKIE), session_key(request))
        request.state.console_session = session
        return session

    @classmethod
    def _decode(cls, cookie: str | None, key: bytes) -> ConsoleSession:
        payload = unsign(cookie, key) if cookie else None
        if payload is None:
            return cls(modified=True)
        try:
            staff_id = payload.get("sid")
            session = cls(
                staff_id=int(staff_id) if staff_id is not None else None,
                login_id=str(payload.get("lid", "")),
                fingerprint=str(payload.get("pv", "")),
                csrf=str(payload["csrf"]),
                logged_in_at=int(payload.get("iat", 0)),
                flashes=[_flash(item) for item in payload.get("fl", [])][:MAX_FLASHES],
                lang=str(payload.get("lg", "")),
            )
        except (KeyError, TypeError, ValueError):
            return cls(modified=True)
        if session.staff_id is not None and time.time() - session.logged_in_at > (
            SESSION_HOURS * 3600
        ):
            session.log_out()
        return session

    def log_in(self, staff_id: int, login_id: str, fingerprint: str) -> None:
        self.staff_id = staff_id
        self.login_id = login_id
        self.fingerprint = fingerprint
        self.logged_in_at = int(time.time())
        self.csrf = secrets.token_urlsafe(32)  # a token seen before login is not reused
        self.modified = True

    def log_out(self) -> None:
        self.staff_id = None
        self.login_id = ""
        self.fingerprint = ""
        self.logged_in_at = 0
        self.csrf = secrets.token_urlsafe(32)
        self.modified = True

    def flash(self, kind: str, code: str, **params: str | int) -> None:
        """A message shown once on the next page: kind is `ok` or `error`; the code and its
        parameters are put into words by the templates (console/_text.html)."""
        flash = Flash(kind, code, {k: str(v) for k, v in params.items()})
        self.flashes = [*self.flashes, flash][-MAX_FLASHES:]
        self.modified = True

    def pop_flashes(self) -> list[Flash]:
        shown, self.flashes = self.flashes, []
        if shown:
            self.modified = True
        return shown

    def csrf_ok(self, token: str) -> bool:
        return hmac.compare_digest(self.csrf.encode("utf-8"), token.encode("utf-8"))

    def save(self, request: Request, response: Response) -> None:
        if not self.modified:
            return
        payload = {
            "sid": self.staff_id,
            "lid": self.login_id,
            "pv": self.fingerprint,
            "csrf": self.csrf,
            "iat": self.logged_in_at,
            "fl": [[f.kind, f.code, f.params] for f in self.flashes],
            "lg": self.lang,
        }
        secure = request.url.scheme == "https" or str(
            request.app.state.settings.public_base_url
        ).startswith("https://")
        response.set_cookie(
            COOKIE,
            sign(payload, session_key(request)),
            max_age=SESSION_HOURS * 3600,
            path=COOKIE_PATH,
            httponly=True,
            secure=secure,
            samesite="lax",
        )


def load_staff(conn: Connection, session: ConsoleSession, now: datetime) -> StaffPrincipal | None:
    """The logged-in account, read afresh; None when logged out (here or from another copy of
    the cookie), deactivated, or the password changed since login."""
    if session.staff_id is None or not login_is_live(conn, session.login_id, session.staff_id, now):
        return None
    row = conn.execute(
        sa.select(_staff.c.id, _staff.c.email, _staff.c.role, _staff.c.password_hash).where(
            _staff.c.id == session.staff_id, _staff.c.active.is_(True)
        )
    ).first()
    if row is None or not hmac.compare_digest(
        password_fingerprint(row.password_hash), session.fingerprint
    ):
        return None
    posts = conn.execute(
        sa.select(_staff_post.c.post_id).where(_staff_post.c.staff_id == row.id)
    ).scalars()
    return StaffPrincipal(
        id=int(row.id),
        email=str(row.email),
        role=StaffRole(row.role),
        post_ids=frozenset(cast(list[int], list(posts))),
        languages=languages_of(conn, int(row.id)),
    )


def fingerprint_of(conn: Connection, staff_id: int) -> str:
    stored = conn.execute(
        sa.select(_staff.c.password_hash).where(_staff.c.id == staff_id)
    ).scalar_one_or_none()
    return password_fingerprint(stored)
