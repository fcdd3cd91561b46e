"""Fair access through the chat on the real store (SQLite and PostgreSQL): one person one
procedure, the phone's and the name's allowance told before the questions, a parent booking
for a child. The same rules are tested with MemoryWorld in test_flows.py, and at the store
in test_booking.py."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from api import db
from tests.support.dialog import NAME, NOW, Dialog
from tests.support.sql_world import TxWorld
from tests.support.staff_api import staff_api

PHONE = "+2250701000001"


@pytest.fixture
def world(demo_engine: Engine) -> TxWorld:
    return TxWorld(demo_engine)


def talk(world: TxWorld, citizen: int, *texts: str, phone: str = PHONE) -> Dialog:
    dialog = Dialog(world, phone=phone, citizen_id=citizen)  # type: ignore[arg-type]
    dialog.say("Hello")
    for text in texts:
        dialog.say(text)
    return dialog


BOOK_ABJ_PASSPORT = ("1", "ABJ", "1")  # book, Abidjan (by code), passport


def test_one_person_one_procedure_then_a_child_from_the_same_phone(world: TxWorld) -> None:
    parent = world.citizen(PHONE)
    dialog = talk(world, parent, *BOOK_ABJ_PASSPORT, "1", "1", NAME, "1")
    assert dialog.keys == ["booking.confirmed", "booking.proof", "menu.main.question"]
    reference = dialog.line("booking.confirmed").params["reference"]

    dialog = talk(world, parent, *BOOK_ABJ_PASSPORT)
    assert dialog.keys == ["booking.held.question"]
    assert dialog.line("booking.held.question").params["item"].params["reference"] == reference
    dialog.say("2")  # for another person
    dialog.say("1")
    dialog.say("2")
    dialog.say(NAME.upper())  # the parent again, in capitals: one person
    assert dialog.keys == ["booking.limit.name_held", "booking.name.question"]
    dialog.say("Issa Ouédraogo")
    dialog.say("1")
    assert dialog.keys == ["booking.confirmed", "booking.proof", "menu.main.question"]
    assert len(world.upcoming(parent, NOW)) == 2


def test_the_same_name_from_another_phone_is_told_at_the_name(world: TxWorld) -> None:
    first, second = world.citizen(PHONE), world.citizen("+2250701000002")
    talk(world, first, *BOOK_ABJ_PASSPORT, "1", "1", NAME, "1")
    dialog = talk(world, second, *BOOK_ABJ_PASSPORT, "1", "1", NAME, phone="+2250701000002")
    assert dialog.keys == ["booking.limit.name_held", "booking.name.question"]


def test_the_phone_allowance_is_told_before_the_service_with_when_it_lifts(
    world: TxWorld,
) -> None:
    citizen = world.citizen(PHONE)
    children = ("Awa Kaboré", "Issa Kaboré", "Rasmané Kaboré", "Fatim Kaboré")
    for service, name in enumerate(children, start=1):
        dialog = talk(world, citizen, "1", "ABJ", str(service), str(service), "1", name, "1")
        assert dialog.keys[0] == "booking.confirmed"
    for appointment in world.upcoming(citizen, NOW):  # cancelling gives nothing back
        assert world.cancel(citizen, appointment.id, NOW)
    dialog = talk(world, citizen, "1", "ABJ")
    assert dialog.keys == ["booking.limit.phone", "menu.main.question"]
    assert dialog.line("booking.limit.phone").params == {
        "limit": 4,
        "days": 30,
        "day": (NOW + timedelta(days=30)).date(),
    }
    assert (NOW + timedelta(days=30)).date() == date(2026, 12, 31)
    dialog = talk(world, citizen, "1", "PAR")  # another post: its own allowance
    assert dialog.step == "booking.service"


# -- staff see and lift a citizen's limits ----------------------------------------------------


def test_staff_see_and_lift_a_limit_for_one_citizen(demo_engine: Engine) -> None:
    api = staff_api(demo_engine)
    citizen = api.citizen(PHONE)
    children = ("Awa Kaboré", "Issa Kaboré", "Rasmané Kaboré", "Fatim Kaboré")
    for n, name in enumerate(children):
        api.book(citizen, day=date(2026, 12, 3 + n % 2), index=n, name=name)
    limits = api.get(f"/citizens/{citizen}/limits").json()
    phone = next(x for x in limits if x["kind"] == "phone")
    assert phone == {
        "post": "ABJ",
        "kind": "phone",
        "subject": PHONE,
        "used": 4,
        "limit": 4,
        "days": 30,
        "reached": True,
        "lifts_at": "2026-12-31T08:00:00Z",
    }
    assert {x["subject"] for x in limits if x["kind"] == "name"} == set(children)
    # Another post's agent does not see them; Abidjan's agent lifts the phone's limit.
    assert api.get(f"/citizens/{citizen}/limits", who="acc").status_code == 404
    body = {"post": "ABJ", "kind": "phone"}
    lifted = api.post(f"/citizens/{citizen}/limits/lift", who="abj", json=body)
    assert lifted.status_code == 200, lifted.text
    phone = next(x for x in lifted.json() if x["kind"] == "phone")
    assert (phone["used"], phone["reached"], phone["lifts_at"]) == (0, False, None)
    assert api.audit()[-1]["action"] == "lift_limit"
    refused = api.post(f"/citizens/{citizen}/limits/lift", json={"post": "ABJ", "kind": "name"})
    assert refused.status_code == 409


# -- the waitlist through the chat, on the real store ------------------------------------------


def test_join_the_waitlist_then_take_the_offer_through_the_chat(world: TxWorld) -> None:
    holder, citizen = world.citizen("+2250701000021"), world.citizen(PHONE)
    dialog = talk(world, holder, *BOOK_ABJ_PASSPORT, "1", "1", "Moussa Traoré", "1")
    assert dialog.keys[0] == "booking.confirmed"
    with db.write(world.engine) as conn:  # every other seat of the window is gone
        conn.execute(sa.text("UPDATE post_service SET seats_per_slot = 0"))
        conn.execute(sa.text("UPDATE slot SET capacity = booked"))
    dialog = talk(world, citizen, *BOOK_ABJ_PASSPORT)
    assert dialog.keys == ["booking.waitlist.question"]
    dialog.say("1")
    dialog.say(NAME)
    assert dialog.keys == ["booking.waitlist.joined", "menu.main.question"]
    assert dialog.line("booking.waitlist.joined").params["place"] == 1
    [held] = world.upcoming(holder, NOW)
    assert world.cancel(holder, held.id, NOW)  # the seat is offered at once
    [entry] = world.entries()
    assert entry.status == "offered"
    dialog.stored = {  # the conversation as the back office left it on its channel
        "lang": "en", "flow": "waitlist", "step": "offer", "options": [],
        "data": {"entry": entry.id, "until": entry.offer_expires_at.isoformat()},
        "updated_at": NOW.isoformat(),
    }  # fmt: skip
    dialog.wait(minutes=45)
    dialog.say("1")
    assert dialog.keys == ["booking.confirmed", "booking.proof", "menu.main.question"]
    [mine] = world.upcoming(citizen, NOW)
    assert (mine.starts_at, mine.full_name) == (held.starts_at, NAME)
