"""The console's care for the desk, through HTTP on both stores: a closure asks to confirm
what it will cancel (and asks again when that changed), hours and seats edited from the post
page with the API's effects (freed seats to the waitlist first), console error pages never
JSON nor a stack trace, and the web simulator's poll of what the bot sends on its own.

The app's clock is Tuesday 1 December 2026, 09:00 in Abidjan (UTC+0).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from api import db
from api.domain import waitlist
from api.domain.tables import table
from api.models import AuditLog, Citizen, WaitlistEntry
from tests.support.staff import agent_token
from tests.test_console import book, console, csrf, login, make_staff, status_of, token

__all__ = ["console"]  # the fixture, shared with tests/test_console.py

audit_t = table(AuditLog)
citizen_t = table(Citizen)
entry_t = table(WaitlistEntry)
NOW_AT = datetime(2026, 12, 1, 9, tzinfo=UTC)
_HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')


def confirmation(page: str) -> dict[str, str]:
    """The hidden fields of the confirmation form (the last form of the page)."""
    form = page[page.rindex('action="/console/posts/ABJ/closures"') :]
    return dict(_HIDDEN.findall(form))


def test_a_closure_says_what_it_will_cancel_and_a_stale_confirmation_asks_again(
    console: tuple[TestClient, Engine],
) -> None:
    client, engine = console
    make_staff(engine, "awa@consulat.bf", "agent", "ABJ")
    first = book(engine, "ABJ", "2026-12-14T09:00", whatsapp="+2250701000031")
    second = book(engine, "ABJ", "2026-12-14T10:00", name="Issa Kaboré")
    login(client, "awa@consulat.bf")

    question = client.post(
        "/console/posts/ABJ/closures",
        data={"csrf": token(client), "day": "14/12/2026", "reason": "Inventaire"},  # jj/mm/aaaa
    )
    assert question.status_code == 200
    assert "Fermer le lundi 14 décembre 2026 ?" in question.text
    assert "Cette fermeture annulera 2 rendez-vous." in question.text
    assert first["reference"] in question.text
    assert "Issa Kaboré" in question.text
    assert "+225 07 •• •• •031" in question.text  # masked on a shared screen
    assert "+2250701000031" not in question.text
    assert status_of(engine, first["id"]) == status_of(engine, second["id"]) == "booked"

    late = book(engine, "ABJ", "2026-12-14T11:00")  # booked while the agent reads
    stale = client.post("/console/posts/ABJ/closures", data=confirmation(question.text))
    assert stale.status_code == 200
    assert "ont changé depuis" in stale.text
    assert "Cette fermeture annulera 3 rendez-vous." in stale.text
    assert status_of(engine, late["id"]) == "booked"
    with db.read(engine) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(audit_t)).scalar_one() == 0

    done = client.post("/console/posts/ABJ/closures", data=confirmation(stale.text))
    assert "Fermeture du lundi 14 décembre 2026 enregistrée." in done.text
    for appointment in (first, second, late):
        assert status_of(engine, appointment["id"]) == "cancelled"


def test_a_day_without_bookings_closes_at_once(console: tuple[TestClient, Engine]) -> None:
    client, engine = console
    make_staff(engine, "awa@consulat.bf", "agent", "ABJ")
    login(client, "awa@consulat.bf")
    done = client.post(
        "/console/posts/ABJ/closures", data={"csrf": token(client), "day": "2026-12-21"}
    )
    assert "Fermeture du lundi 21 décembre 2026 enregistrée." in done.text


def _waiting(engine: Engine, service: str) -> int:
    with db.write(engine) as conn:
        citizen_id = conn.execute(
            sa.insert(citizen_t)
            .values(lang="fr", opted_out=False, created_at=NOW_AT)
            .returning(citizen_t.c.id)
        ).scalar_one()
        waitlist.join(conn, citizen_id, "ABJ", service, "Awa Ouédraogo", NOW_AT)
        return int(
            conn.execute(
                sa.select(entry_t.c.id).where(entry_t.c.citizen_id == citizen_id)
            ).scalar_one()
        )


def _entry_status(engine: Engine, entry_id: int) -> str:
    with db.read(engine) as conn:
        return str(
            conn.execute(sa.select(entry_t.c.status).where(entry_t.c.id == entry_id)).scalar_one()
        )


def _seats(client: TestClient, service: str, seats: int) -> Any:
    return client.post(
        f"/console/posts/ABJ/services/{service}",
        data={
            "csrf": token(client),
            "slot_minutes": "30",
            "seats_per_slot": str(seats),
            "booking_window_days": "30",
            "min_notice_hours": "12",
            "active": "on",
        },
    )


def test_more_seats_from_the_console_go_to_the_waitlist_as_through_the_api(
    console: tuple[TestClient, Engine],
) -> None:
    client, engine = console
    make_staff(engine, "awa@consulat.bf", "agent", "ABJ")
    booked = book(engine, "ABJ", "2026-12-14T09:00")
    login(client, "awa@consulat.bf")
    assert "Service passport enregistré" in _seats(client, "passport", 0).text
    assert status_of(engine, booked["id"]) == "booked"  # fewer seats: bookings stay
    entry = _waiting(engine, "passport")
    assert _entry_status(engine, entry) == "waiting"
    _seats(client, "passport", 2)
    assert _entry_status(engine, entry) == "offered"

    agent = {"Authorization": f"Bearer {agent_token(engine, 'ABJ')}"}
    patch = "/api/v1/posts/ABJ/services/cnib"
    assert client.patch(patch, json={"seats_per_slot": 0}, headers=agent).status_code == 200
    through_api = _waiting(engine, "cnib")
    assert _entry_status(engine, through_api) == "waiting"
    assert client.patch(patch, json={"seats_per_slot": 2}, headers=agent).status_code == 200
    assert _entry_status(engine, through_api) == "offered"
    with db.read(engine) as conn:
        entities = conn.execute(sa.select(audit_t.c.entity)).scalars().all()
    assert entities.count("offer") == 4


def test_hours_are_edited_from_the_post_page_as_through_the_api(
    console: tuple[TestClient, Engine],
) -> None:
    client, engine = console
    make_staff(engine, "awa@consulat.bf", "agent", "ABJ")
    login(client, "awa@consulat.bf")
    week = {f"day{d}": "" for d in range(7)}
    closed = client.post("/console/posts/ABJ/hours", data={"csrf": token(client), **week})
    assert "Horaires d'ouverture enregistrés." in closed.text
    entry = _waiting(engine, "consular_card")
    client.post("/console/posts/ABJ/hours", data={"csrf": token(client), **week})
    assert _entry_status(engine, entry) == "waiting"  # closed all week: no seat to offer
    client.post(
        "/console/posts/ABJ/hours",
        data={
            "csrf": token(client),
            **week,
            "day0": "8h00 – 12h00, 14:00-16:00",
            "day2": "09:00-11:00",
        },
    )
    assert _entry_status(engine, entry) == "offered"  # the seats the hours open: first in line
    agent = {"Authorization": f"Bearer {agent_token(engine, 'ABJ')}"}
    hours = client.get("/api/v1/posts/ABJ/hours", headers=agent).json()
    assert hours == [
        {"weekday": 0, "opens": "08:00:00", "closes": "12:00:00"},
        {"weekday": 0, "opens": "14:00:00", "closes": "16:00:00"},
        {"weekday": 2, "opens": "09:00:00", "closes": "11:00:00"},
    ]
    page = client.get("/console/posts/ABJ").text
    assert 'value="08:00-12:00, 14:00-16:00"' in page

    overlap = client.post(
        "/console/posts/ABJ/hours",
        data={"csrf": token(client), **week, "day1": "08:00-12:00, 11:00-13:00"},
    )
    assert "se chevauchent le mardi" in overlap.text
    nonsense = client.post(
        "/console/posts/ABJ/hours", data={"csrf": token(client), **week, "day1": "midi"}
    )
    assert "Horaires refusés" in nonsense.text
    assert client.get("/api/v1/posts/ABJ/hours", headers=agent).json() == hours
    same = client.put(
        "/api/v1/posts/ABJ/hours",
        json=[
            {"weekday": 1, "opens": "08:00", "closes": "12:00"},
            {"weekday": 1, "opens": "11:00", "closes": "13:00"},
        ],
        headers=agent,
    )
    assert same.status_code == 422
    assert "overlap on weekday 1" in same.json()["detail"]


@pytest.mark.parametrize("logged_in", [True, False])
@pytest.mark.parametrize(
    "path", ["/console/nope", "/console/appointments/999999", "/console/posts/ABJ/hours"]
)
def test_unknown_console_urls_are_console_pages(
    console: tuple[TestClient, Engine], logged_in: bool, path: str
) -> None:
    client, engine = console
    if logged_in:
        make_staff(engine, "awa@consulat.bf", "agent", "ABJ")
        login(client, "awa@consulat.bf")
    page = client.get(path)  # the last is a form's address: GET is not allowed
    assert page.status_code in (404, 405)
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>" in page.text
    assert ("Se déconnecter" in page.text) is logged_in  # the top bar when logged in
    assert client.get("/api/v1/nope").headers["content-type"].startswith("application/json")


def test_an_unexpected_error_is_a_kind_console_page(
    console: tuple[TestClient, Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, engine = console
    make_staff(engine, "awa@consulat.bf", "agent", "ABJ")
    login(client, "awa@consulat.bf")

    def broken(*_args: Any) -> Any:
        raise RuntimeError("secret +2250701000031")

    monkeypatch.setattr("api.domain.offers.offers_of", broken)
    page = client.get("/console/posts/ABJ")
    assert page.status_code == 500
    assert page.headers["content-type"].startswith("text/html")
    assert "Un problème de notre côté" in page.text
    assert "Se déconnecter" in page.text
    assert "secret" not in page.text
    assert "Traceback" not in page.text


def test_the_simulator_polls_an_agents_reply_once(console: tuple[TestClient, Engine]) -> None:
    client, engine = console
    user = "web-care-1"
    for text in ("Bonjour", "1", "7"):
        said = client.post("/api/v1/simulator/messages", json={"user": user, "text": text})
    if "Bouaké" in said.text:
        client.post("/api/v1/simulator/messages", json={"user": user, "text": "1"})
    client.post("/api/v1/simulator/messages", json={"user": user, "text": "Mon passeport ?"})
    assert client.get("/api/v1/simulator/messages", params={"user": user}).json() == {
        "messages": [],
        "cursor": 0,
    }

    make_staff(engine, "awa@consulat.bf", "agent", "ABJ")
    login(client, "awa@consulat.bf")
    inbox = client.get("/console/inbox").text
    (conversation,) = set(re.findall(r'href="/console/inbox/(\d+)"', inbox))
    sent = client.post(
        f"/console/inbox/{conversation}/reply",
        data={"csrf": csrf(inbox), "text": "Venez demain à 9 h avec votre ancien passeport."},
    )
    assert sent.status_code == 200

    polled = client.get("/api/v1/simulator/messages", params={"user": user}).json()
    (message,) = polled["messages"]
    assert "Venez demain à 9 h" in message["text"]
    assert polled["cursor"] == message["id"]
    again = client.get(
        "/api/v1/simulator/messages", params={"user": user, "after": polled["cursor"]}
    )
    assert again.json() == {"messages": [], "cursor": polled["cursor"]}
    other = client.get("/api/v1/simulator/messages", params={"user": "someone-else"})
    assert other.json()["messages"] == []
