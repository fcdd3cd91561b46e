"""`TxWorld`: the real `api.world.SqlWorld` for flow transcripts, one transaction per call.

    world = TxWorld(demo_engine)
    citizen = world.citizen("+2250701000001")
    dialog = Dialog(world, citizen_id=citizen)   # the same transcripts as with MemoryWorld

Each call the flow makes runs in its own write transaction (the runtime uses one per turn;
for what a flow sees, the difference does not matter), on SQLite or PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from api import db
from api.domain.tables import table
from api.models import Citizen, WaitlistEntry
from api.world import SqlWorld


class TxWorld:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.languages: dict[int, str] = {}  # as Dialog reads them from MemoryWorld
        self.opted_out: dict[int, bool] = {}
        self.voices: dict[int, bool] = {}

    def set_language(self, citizen_id: int, lang: str) -> None:
        self.languages[citizen_id] = lang
        with db.write(self.engine) as conn:
            SqlWorld(conn).set_language(citizen_id, lang)

    def set_voice(self, citizen_id: int, on: bool) -> None:
        self.voices[citizen_id] = on
        with db.write(self.engine) as conn:
            SqlWorld(conn).set_voice(citizen_id, on)

    def citizen(self, phone: str | None) -> int:
        with db.write(self.engine) as conn:
            return int(
                conn.execute(
                    sa.insert(table(Citizen))
                    .values(phone=phone, lang=None, created_at=datetime(2026, 1, 1, tzinfo=UTC))
                    .returning(table(Citizen).c.id)
                ).scalar_one()
            )

    def entries(self) -> list[Any]:
        """The waitlist's entries, in order."""
        with db.read(self.engine) as conn:
            entry = table(WaitlistEntry)
            return list(conn.execute(sa.select(entry).order_by(entry.c.id)))

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            with db.write(self.engine) as conn:
                return getattr(SqlWorld(conn), name)(*args, **kwargs)

        return call
