"""The demo consular network (`diaspora-bot seed demo`): posts, services, hours, holidays.

Real posts and cities, fictional capacities and contact details in realistic formats. Fee
notes come from shared domain notes (domain/services.md) where a figure is known; they are
seed data that staff edit, never constants the code relies on.

Idempotent and gentle: it fills in what is missing and never overwrites what is there, so
`make run` may seed on every start without undoing a staff member's edits. Rows are found by
their natural keys (post code, service code, post + service, post + day); a post's weekly
hours are seeded only while the post has none. It never creates citizens.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from api import models  # noqa: F401  (registers the tables)
from api.db import write


@dataclass(frozen=True)
class DemoPost:
    code: str
    name: str
    country: str
    city: str
    timezone: str
    address: str
    phone: str
    email: str
    european_hours: bool = False  # 09:00–12:30 and 14:00–16:00 instead of 08–12 and 13–15


POSTS: tuple[DemoPost, ...] = (
    DemoPost(
        "ABJ", "Consulat général, Abidjan", "CI", "Abidjan", "Africa/Abidjan",
        "Consulat général du Burkina Faso, avenue Terrasson de Fougères, Plateau, Abidjan",
        "+225 27 20 21 15 01", "cgbf.abidjan@diplomatie.gov.bf",
    ),
    DemoPost(
        "BKE", "Consulat général, Bouaké", "CI", "Bouaké", "Africa/Abidjan",
        "Consulat général du Burkina Faso, quartier Commerce, Bouaké",
        "+225 27 31 63 44 10", "cgbf.bouake@diplomatie.gov.bf",
    ),
    DemoPost(
        "ACC", "Ambassade, Accra", "GH", "Accra", "Africa/Accra",
        "Ambassade du Burkina Faso, 772/3 Asylum Down, off Farrar Avenue, Accra",
        "+233 30 222 1988", "ambf.accra@diplomatie.gov.bf",
    ),
    DemoPost(
        "LBV", "Ambassade, Libreville", "GA", "Libreville", "Africa/Libreville",
        "Ambassade du Burkina Faso, quartier Haut de Gué-Gué, Libreville",
        "+241 11 73 28 91", "ambf.libreville@diplomatie.gov.bf",
    ),
    DemoPost(
        "PAR", "Consulat général, Paris", "FR", "Paris", "Europe/Paris",
        "Consulat général du Burkina Faso, 159 boulevard Haussmann, 75008 Paris",
        "+33 1 43 59 90 63", "cgbf.paris@diplomatie.gov.bf", european_hours=True,
    ),
    DemoPost(
        "MIL", "Consulat général, Milan", "IT", "Milan", "Europe/Rome",
        "Consolato generale del Burkina Faso, via Giacomo Leopardi 12, 20123 Milano",
        "+39 02 4801 2345", "cgbf.milan@diplomatie.gov.bf", european_hours=True,
    ),
    DemoPost(
        "NYC", "Consulat général, New York", "US", "New York", "America/New_York",
        "Consulate General of Burkina Faso, 866 United Nations Plaza, Suite 326, "
        "New York, NY 10017",
        "+1 212 308 4720", "cgbf.newyork@diplomatie.gov.bf", european_hours=True,
    ),
)  # fmt: skip

# (code, French name, seats per slot): menu order is the order of this tuple.
SERVICES: tuple[tuple[str, str, int], ...] = (
    ("passport", "Passeport", 2),
    ("cnib", "CNIB (carte nationale d'identité burkinabè)", 3),
    ("consular_card", "Carte consulaire", 3),
    ("civil_status", "Actes d'état civil", 2),
    ("legalization", "Légalisation", 3),
    ("laissez_passer", "Laissez-passer", 1),
    ("other", "Autre demande", 1),
)

SLOT_MINUTES = 30
BOOKING_WINDOW_DAYS = 30
MIN_NOTICE_HOURS = 12

# Fee notes known from public pages, by (post code, service code).
FEE_NOTES: dict[tuple[str, str], str] = {
    ("PAR", "passport"): "80 € avec carte consulaire, 160 € sans",
    ("PAR", "legalization"): "10 € par document avec carte consulaire, 20 € sans",
    ("ABJ", "consular_card"): "7 000 FCFA",
    ("BKE", "consular_card"): "7 000 FCFA",
    ("ABJ", "cnib"): "2 500 FCFA",
    ("BKE", "cnib"): "2 500 FCFA",
    ("LBV", "cnib"): "2 500 FCFA",
    ("NYC", "consular_card"): "Gratuite",
}

AFRICAN_HOURS = ((time(8, 0), time(12, 0)), (time(13, 0), time(15, 0)))
EUROPEAN_HOURS = ((time(9, 0), time(12, 30)), (time(14, 0), time(16, 0)))
WEEKDAYS = range(5)  # Monday to Friday

# Burkinabè holidays, kept by every post.
NATIONAL_CLOSURES: tuple[tuple[date, str], ...] = (
    (date(2026, 12, 11), "Proclamation de la République (fête nationale)"),
    (date(2026, 12, 25), "Noël"),
    (date(2027, 1, 1), "Jour de l'an"),
)

# Holidays of the host country, by post.
LOCAL_CLOSURES: dict[str, tuple[tuple[date, str], ...]] = {
    "ACC": ((date(2026, 12, 4), "Farmers' Day (jour férié au Ghana)"),),
    "MIL": (
        (date(2026, 12, 8), "Immacolata Concezione (jour férié en Italie)"),
        (date(2027, 1, 6), "Epifania (jour férié en Italie)"),
    ),
    "NYC": ((date(2027, 1, 18), "Martin Luther King Jr. Day (jour férié aux États-Unis)"),),
}


def _table(name: str) -> sa.Table:
    return SQLModel.metadata.tables[name]


def _insert_missing(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """INSERT … ON CONFLICT DO NOTHING (on the table's unique keys), on either store."""
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(table).on_conflict_do_nothing(), rows)


def _ids_by_code(conn: Connection, table: sa.Table) -> dict[str, int]:
    return {code: id_ for id_, code in conn.execute(sa.select(table.c.id, table.c.code))}


def seed_demo(engine: Engine) -> None:
    """Load the demo network in one write transaction; running it again changes nothing."""
    with write(engine) as conn:
        _seed(conn)


def _seed(conn: Connection) -> None:
    post_t, service_t = _table("post"), _table("service")
    _insert_missing(
        conn,
        post_t,
        [
            {
                "code": p.code,
                "name": p.name,
                "country": p.country,
                "city": p.city,
                "timezone": p.timezone,
                "address": p.address,
                "phone": p.phone,
                "email": p.email,
                "active": True,
            }
            for p in POSTS
        ],
    )
    _insert_missing(
        conn,
        service_t,
        [
            {"code": code, "name": name, "position": position}
            for position, (code, name, _seats) in enumerate(SERVICES, start=1)
        ],
    )
    post_ids = _ids_by_code(conn, post_t)
    service_ids = _ids_by_code(conn, service_t)

    _insert_missing(
        conn,
        _table("post_service"),
        [
            {
                "post_id": post_ids[p.code],
                "service_id": service_ids[code],
                "slot_minutes": SLOT_MINUTES,
                "seats_per_slot": seats,
                "booking_window_days": BOOKING_WINDOW_DAYS,
                "min_notice_hours": MIN_NOTICE_HOURS,
                "fee_note": FEE_NOTES.get((p.code, code), ""),
                "active": True,
            }
            for p in POSTS
            for code, _name, seats in SERVICES
        ],
    )

    hours_t = _table("opening_hours")
    # Two seeds at once on PostgreSQL: the second waits here, then sees the first one's hours.
    conn.execute(sa.select(post_t.c.id).with_for_update()).all()
    with_hours = set(conn.execute(sa.select(hours_t.c.post_id).distinct()).scalars())
    _insert_missing(
        conn,
        hours_t,
        [
            {"post_id": post_ids[p.code], "weekday": day, "opens": opens, "closes": closes}
            for p in POSTS
            if post_ids[p.code] not in with_hours
            for day in WEEKDAYS
            for opens, closes in (EUROPEAN_HOURS if p.european_hours else AFRICAN_HOURS)
        ],
    )

    _insert_missing(
        conn,
        _table("closure"),
        [
            {"post_id": post_ids[p.code], "day": day, "reason": reason}
            for p in POSTS
            for day, reason in NATIONAL_CLOSURES + LOCAL_CLOSURES.get(p.code, ())
        ],
    )
