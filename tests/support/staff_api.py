"""The staff API in a test: the app on a demo database, a frozen clock, an administrator,
an agent of Accra and one of Abidjan, and a few helpers to put citizens and bookings in place."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from api.app import create_app
from api.db import read, write
from api.domain.booking import BookingService
from api.domain.requests import RequestService
from api.domain.tables import table
from api.models import AuditLog, ChannelIdentity, Citizen, OutboxMessage
from api.settings import Settings
from tests.support.staff import admin_token, agent_token

with warnings.catch_warnings():
    # Starlette 1.x asks for `httpx2` beside plain httpx; harmless for these tests.
    from starlette.exceptions import StarletteDeprecationWarning

    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)  # a Tuesday; Abidjan is on UTC

citizen_t = table(Citizen)
identity_t = table(ChannelIdentity)
outbox_t = table(OutboxMessage)
audit_t = table(AuditLog)


def letters(n: int) -> str:
    """A word of letters for a number (names have no digits): 2 → "Cb"."""
    word = ""
    while True:
        n, rest = divmod(n, 26)
        word += "abcdefghijklmnopqrstuvwxyz"[rest]
        if not n:
            return word.capitalize()


@dataclass
class StaffApi:
    engine: Engine
    client: TestClient
    tokens: dict[str, str]  # admin, acc (agent of Accra), abj (agent of Abidjan)
    booked: int = 0  # bookings made through `book`

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}

    def call(self, method: str, path: str, who: str = "admin", **kw: Any) -> Any:
        return self.client.request(method, "/api/v1" + path, headers=self.auth(who), **kw)

    def get(self, path: str, who: str = "admin", **kw: Any) -> Any:
        return self.call("GET", path, who, **kw)

    def post(self, path: str, who: str = "admin", **kw: Any) -> Any:
        return self.call("POST", path, who, **kw)

    # --- data --------------------------------------------------------------------------------

    def citizen(
        self,
        phone: str,
        *,
        lang: str = "fr",
        verified: bool = True,
        channel: str = "whatsapp",
        country: str | None = "CI",
    ) -> int:
        with write(self.engine) as conn:
            citizen_id = int(
                conn.execute(
                    sa.insert(citizen_t)
                    .values(
                        phone=phone,
                        phone_verified=verified,
                        country=country,
                        lang=lang,
                        opted_out=False,
                        created_at=NOW,
                    )
                    .returning(citizen_t.c.id)
                ).scalar_one()
            )
            conn.execute(
                sa.insert(identity_t).values(
                    channel=channel,
                    address=phone,
                    citizen_id=citizen_id,
                    last_inbound_at=NOW,
                    state={"flow": "menu", "step": "main"},
                    state_updated_at=NOW,
                )
            )
        return citizen_id

    def book(
        self,
        citizen_id: int,
        post: str = "ABJ",
        service: str = "passport",
        day: date = date(2026, 12, 3),
        index: int = 0,
        name: str | None = None,
    ) -> dict[str, Any]:
        """Awa Ouédraogo's first, then one person of their own each time (one person holds
        one appointment per service and post)."""
        self.booked += 1
        if name is None:
            name = "Awa Ouédraogo" + ("" if self.booked == 1 else " " + letters(self.booked))
        with write(self.engine) as conn:
            world = BookingService(conn)
            slot = world.open_times(post, service, day, NOW)[index]
            result = world.book(citizen_id, post, service, slot.starts_at, name, NOW)
        assert result.appointment is not None, result.outcome
        return {"id": result.appointment.id, "reference": result.appointment.reference}

    def lodge(
        self,
        post: str = "ABJ",
        phone: str | None = "+2250701000001",
        birth_date: date = date(1990, 3, 12),
        service: str = "cnib",
    ) -> str:
        with write(self.engine) as conn:
            request = RequestService(conn).create(
                post, service, phone, "Awa Ouédraogo", birth_date, None, NOW
            )
        return request.reference

    def outbox(self, citizen_id: int | None = None) -> list[dict[str, Any]]:
        query = sa.select(outbox_t).order_by(outbox_t.c.id)
        if citizen_id is not None:
            query = query.where(outbox_t.c.citizen_id == citizen_id)
        with read(self.engine) as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def audit(self) -> list[dict[str, Any]]:
        with read(self.engine) as conn:
            return [
                dict(r) for r in conn.execute(sa.select(audit_t).order_by(audit_t.c.id)).mappings()
            ]


def staff_api(engine: Engine, now: datetime = NOW) -> StaffApi:
    settings = Settings(database_url=engine.url.render_as_string(hide_password=False))
    app = create_app(settings, engine=engine, run_worker=False)
    app.state.clock = lambda: now
    tokens = {
        "admin": admin_token(engine),
        "acc": agent_token(engine, "ACC"),
        "abj": agent_token(engine, "ABJ"),
    }
    return StaffApi(engine, TestClient(app), tokens)
