"""Staff accounts for tests."""

from __future__ import annotations

import uuid

from sqlalchemy.engine import Engine

from api.db import write
from api.domain.staff import add_staff, issue_token
from api.models import utcnow


def admin_token(engine: Engine) -> str:
    email = f"admin-{uuid.uuid4().hex[:8]}@test.bf"
    with write(engine) as conn:
        add_staff(conn, email, "admin", [], None, now=utcnow())
        return issue_token(conn, email, utcnow())


def agent_token(engine: Engine, *posts: str) -> str:
    email = f"agent-{uuid.uuid4().hex[:8]}@test.bf"
    with write(engine) as conn:
        add_staff(conn, email, "agent", list(posts), None, now=utcnow())
        return issue_token(conn, email, utcnow())
