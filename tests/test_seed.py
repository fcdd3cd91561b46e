"""The demo network (`seed demo`) on both stores: the contract's codes, zones and order."""

from __future__ import annotations

from datetime import time

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from api.seed import seed_demo

CONTRACT_POSTS = {
    "ABJ": ("CI", "Africa/Abidjan"),
    "BKE": ("CI", "Africa/Abidjan"),
    "ACC": ("GH", "Africa/Accra"),
    "LBV": ("GA", "Africa/Libreville"),
    "PAR": ("FR", "Europe/Paris"),
    "MIL": ("IT", "Europe/Rome"),
    "NYC": ("US", "America/New_York"),
}
SERVICE_ORDER = [
    "passport",
    "cnib",
    "consular_card",
    "civil_status",
    "legalization",
    "laissez_passer",
    "other",
]
post_t, hours_t, closure_t = (
    SQLModel.metadata.tables[name] for name in ("post", "opening_hours", "closure")
)
TABLES = ("post", "service", "post_service", "opening_hours", "closure", "citizen", "staff")


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}


def test_posts_have_contract_codes_and_zones(demo_engine: Engine) -> None:
    with demo_engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT code, country, timezone, address, phone FROM post"))
        posts = {r.code: r for r in rows}
    assert {code: (p.country, p.timezone) for code, p in posts.items()} == CONTRACT_POSTS
    assert all(p.address and p.phone.startswith("+") for p in posts.values())


def test_services_in_menu_order_offered_everywhere(demo_engine: Engine) -> None:
    with demo_engine.connect() as conn:
        codes = conn.execute(sa.text("SELECT code FROM service ORDER BY position")).scalars()
        assert list(codes) == SERVICE_ORDER
        offers = conn.execute(
            sa.text(
                "SELECT p.code AS post, s.code AS service, ps.slot_minutes, ps.seats_per_slot,"
                " ps.booking_window_days, ps.min_notice_hours, ps.fee_note"
                " FROM post_service ps JOIN post p ON p.id = ps.post_id"
                " JOIN service s ON s.id = ps.service_id"
            )
        ).all()
    assert len(offers) == 7 * 7
    assert all(o.slot_minutes == 30 and 1 <= o.seats_per_slot <= 3 for o in offers)
    assert all(o.booking_window_days == 30 and o.min_notice_hours == 12 for o in offers)
    fees = {(o.post, o.service): o.fee_note for o in offers}
    assert "80 €" in fees["PAR", "passport"]
    assert fees["ABJ", "consular_card"] == "7 000 FCFA"


def test_hours_monday_to_friday(demo_engine: Engine) -> None:
    with demo_engine.connect() as conn:
        rows = conn.execute(
            sa.select(post_t.c.code, hours_t.c.weekday, hours_t.c.opens, hours_t.c.closes).join(
                post_t, post_t.c.id == hours_t.c.post_id
            )
        ).all()
    by_post: dict[str, set[int]] = {}
    for code, weekday, _opens, _closes in rows:
        by_post.setdefault(code, set()).add(weekday)
    assert by_post == {code: {0, 1, 2, 3, 4} for code in CONTRACT_POSTS}
    paris = {(o, c) for code, _w, o, c in rows if code == "PAR"}
    abidjan = {(o, c) for code, _w, o, c in rows if code == "ABJ"}
    assert paris == {(time(9, 0), time(12, 30)), (time(14, 0), time(16, 0))}
    assert abidjan == {(time(8, 0), time(12, 0)), (time(13, 0), time(15, 0))}


def test_holidays_are_closures_on_weekdays(demo_engine: Engine) -> None:
    with demo_engine.connect() as conn:
        rows = conn.execute(
            sa.select(post_t.c.code, closure_t.c.day).join(
                post_t, post_t.c.id == closure_t.c.post_id
            )
        ).all()
    days = {(code, day.isoformat()) for code, day in rows}
    assert {(code, "2026-12-11") for code in CONTRACT_POSTS} <= days
    assert all(day.weekday() < 5 for _code, day in rows)


def test_idempotent_and_never_creates_citizens(demo_engine: Engine) -> None:
    before = _counts(demo_engine)
    seed_demo(demo_engine)
    assert _counts(demo_engine) == before
    assert before["citizen"] == 0
    assert before["staff"] == 0


def test_keeps_staff_edits(demo_engine: Engine) -> None:
    with demo_engine.begin() as conn:
        conn.execute(sa.text("UPDATE post SET phone = '+225 00' WHERE code = 'ABJ'"))
        conn.execute(
            sa.text(
                "DELETE FROM opening_hours WHERE weekday = 4"
                " AND post_id = (SELECT id FROM post WHERE code = 'ABJ')"
            )
        )
    seed_demo(demo_engine)
    with demo_engine.connect() as conn:
        phone = conn.execute(sa.text("SELECT phone FROM post WHERE code = 'ABJ'")).scalar_one()
        fridays = conn.execute(
            sa.text(
                "SELECT count(*) FROM opening_hours h JOIN post p ON p.id = h.post_id"
                " WHERE p.code = 'ABJ' AND h.weekday = 4"
            )
        ).scalar_one()
    assert phone == "+225 00"
    assert fridays == 0
