"""The world as flows see it (flows.world.World), over one turn's database connection."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.engine import Connection

from api.domain import citizens
from api.domain.booking import BookingService
from flows.world import LookupResult


class SqlWorld(BookingService):
    """Booking from BookingService; citizens' preferences and request lookups beside it."""

    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        self._conn = conn

    def set_language(self, citizen_id: int, lang: str) -> None:
        citizens.set_language(self._conn, citizen_id, lang)

    def set_opted_out(self, citizen_id: int, opted_out: bool) -> None:
        citizens.set_opted_out(self._conn, citizen_id, opted_out)

    def lookup(
        self, reference: str, birth_date: date | None, verified_phone: str | None, now: datetime
    ) -> LookupResult:
        from api.domain.requests import RequestService

        return RequestService(self._conn).lookup(reference, birth_date, verified_phone, now)
