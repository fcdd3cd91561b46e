"""The desk's search box and walk-ins (issue 11, items 1 and 2), on both stores: what the box
reads, what it finds and for whom, the API's filters, and booking for the citizen at the
desk under the chat's own rules — down to the last seat wanted by the chat and the desk at
once."""

from __future__ import annotations

import re
import threading
from datetime import date, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from api.conversations import SqlConversationStore
from api.db import read, write
from api.domain import search, walk_ins
from api.domain.audit import staff_write
from api.domain.booking import BookingService
from api.domain.errors import NotVisible, Refused
from api.domain.staff import StaffPrincipal, add_staff, staff_for_token
from api.domain.tables import table
from api.models import Appointment, ChannelIdentity, Citizen
from api.world import SqlWorld
from bot.runtime import Inbound
from flows.engine import Incoming
from flows.world import BookingOutcome
from tests.support.staff_api import NOW, StaffApi, staff_api

PHONE = "+2250701000123"
LOCAL = "07 01 00 01 23"
DAY = date(2026, 12, 3)

_citizen = table(Citizen)
_identity = table(ChannelIdentity)
_appt = table(Appointment)


@pytest.fixture
def api(demo_engine: Engine) -> StaffApi:
    return staff_api(demo_engine)


def principal(api: StaffApi, who: str) -> StaffPrincipal:
    with write(api.engine) as conn:
        found = staff_for_token(conn, api.tokens[who], NOW)
    assert found is not None
    return found


def find(api: StaffApi, who: str, text: str) -> search.Found:
    with read(api.engine) as conn:
        return search.find(conn, principal(api, who), text)


def free_times(api: StaffApi, post: str = "ABJ", service: str = "passport") -> list[datetime]:
    with read(api.engine) as conn:
        return [t.starts_at for t in BookingService(conn).open_times(post, service, DAY, NOW)]


def walk_in(api: StaffApi, who: str = "abj", **given: Any) -> Any:
    values: dict[str, Any] = {
        "post_code": "ABJ",
        "service_code": "passport",
        "starts_at": free_times(api)[0],
        "full_name": "Fatimata Sawadogo",
        "phone": "",
        "lang": "fr",
    } | given
    with staff_write(api.engine, principal(api, who), NOW) as tx:
        return walk_ins.book(tx, **values)


def count(api: StaffApi, table_: sa.Table) -> int:
    with read(api.engine) as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table_)).scalar_one())


# --- what the box reads (no database) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "booking"),
    [
        ("RDV-7K2M9Q", "RDV-7K2M9Q"),
        ("rdv 7k2 m9q", "RDV-7K2M9Q"),
        ("rdv7k2m9q", "RDV-7K2M9Q"),
        ("RDV-7K2M9O", "RDV-7K2M90"),  # O read as 0
        ("rdv-ik2m9l", "RDV-1K2M91"),  # I and L read as 1
        ("7k2m9q", "RDV-7K2M9Q"),
        ("kabore", None),
    ],
)
def test_an_appointment_reference_is_read_whatever_its_case_spaces_or_confusables(
    text: str, booking: str | None
) -> None:
    assert search.understand(text, ["CI"]).booking == booking


def test_a_request_reference_a_phone_and_a_name_are_read() -> None:
    assert search.understand("abj 2026 123", ["CI"]).request == "ABJ-2026-000123"
    assert search.understand("ABJ/2026/123", ["CI"]).request == "ABJ-2026-000123"
    assert search.understand(LOCAL, ["CI"]).phones == (PHONE,)
    assert search.understand("+225 07 01 00 01 23", ["GH"]).phones == (PHONE,)
    assert search.understand("00225 0701000123", []).phones == (PHONE,)
    # an agent of two posts: the number is tried in each post's country
    assert set(search.understand(LOCAL, ["CI", "GH"]).phones) == {PHONE, "+233701000123"}
    terms = search.understand("OUÉDR  Awa", ["CI"])
    assert terms.words == ("awa", "ouedr")
    assert (terms.booking, terms.request, terms.phones) == (None, None, ())
    assert search.understand("!!", ["CI"]).empty
    assert search.understand("ABJ-2026-000123", ["CI"]).words == ()  # no name in a reference


def test_a_phone_number_is_masked_on_a_shared_screen() -> None:
    masked = search.mask_phone(PHONE)
    assert masked.startswith("+225 07")
    assert masked.endswith("123")
    assert "01 00" not in masked
    assert masked.count(search.MASK) == 5
    assert search.mask_phone(None) == ""


# --- what it finds, and for whom -----------------------------------------------------------------


def test_the_desk_finds_appointments_requests_and_citizens_of_its_posts_only(
    api: StaffApi,
) -> None:
    citizen = api.citizen(PHONE)
    booked = api.book(citizen, name="Awa Ouédraogo")
    other = api.book(api.citizen("+2250701000999"), name="Moussa Traoré")
    request = api.lodge(phone=PHONE)
    serial = int(request.rsplit("-", 1)[1])

    reference = booked["reference"]
    loose = "rdv " + reference[4:].lower()[:3] + " " + reference[7:].lower()
    for who in ("abj", "admin"):
        assert [a.reference for a in find(api, who, loose).appointments] == [reference]
        by_phone = find(api, who, LOCAL)
        assert [a.reference for a in by_phone.appointments] == [reference]
        assert [r.reference for r in by_phone.requests] == [request]
        assert [c.id for c in by_phone.citizens] == [citizen]
        assert by_phone.citizens[0].channel == "whatsapp"
        assert by_phone.citizens[0].phone == search.mask_phone(PHONE)
        assert by_phone.appointments[0].phone == search.mask_phone(PHONE)
        assert by_phone.appointments[0].lang == "fr"
        assert [a.reference for a in find(api, who, "OUEDRAOGO awa").appointments] == [reference]
        assert [a.reference for a in find(api, who, "ouédr").appointments] == [reference]
        assert [a.reference for a in find(api, who, "traor").appointments] == [other["reference"]]
        assert [r.reference for r in find(api, who, f"abj 2026 {serial}").requests] == [request]
        assert [r.reference for r in find(api, who, "awa ouedraogo").requests] == [request]

    # Accra's agent: Abidjan's data is not found, by any kind of input.
    for text in (loose, LOCAL, "+225 07 01 00 01 23", "ouedraogo", f"abj 2026 {serial}"):
        assert find(api, "acc", text).count == 0, text


def test_a_name_matches_on_both_stores_without_accents_or_case(api: StaffApi) -> None:
    api.book(api.citizen(PHONE), name="Éloïse KABORÉ-Zongo")
    for text in ("eloise", "ÉLOÏSE", "kabore zon", "zongo Élo"):
        assert [a.full_name for a in find(api, "abj", text).appointments] == [
            "Éloïse KABORÉ-Zongo"
        ], text
    assert find(api, "abj", "kaboree").count == 0


def test_an_erased_citizen_is_no_longer_found_by_name(api: StaffApi) -> None:
    citizen = api.citizen(PHONE)
    api.book(citizen, name="Awa Ouédraogo")
    api.lodge(phone=PHONE)
    assert api.call("DELETE", f"/citizens/{citizen}").status_code == 200
    for text in ("ouedraogo", "awa", LOCAL):
        assert find(api, "admin", text).count == 0, text


# --- the API's filters ----------------------------------------------------------------------------


def test_the_appointments_api_filters_by_phone_and_by_search_text(api: StaffApi) -> None:
    booked = api.book(api.citizen(PHONE))
    api.book(api.citizen("+2250701000999"), name="Moussa Traoré")

    def references(who: str, **params: str) -> list[str]:
        response = api.get("/appointments", who=who, params=params)
        assert response.status_code == 200, response.text
        return [item["reference"] for item in response.json()["items"]]

    assert references("abj", phone=LOCAL) == [booked["reference"]]
    assert references("admin", phone=PHONE, post="ABJ") == [booked["reference"]]
    assert references("abj", q=booked["reference"].lower().replace("-", " ")) == [
        booked["reference"]
    ]
    assert references("abj", q="awa ouedraogo") == [booked["reference"]]
    assert references("abj", q="personne") == []
    assert references("acc", phone=PHONE) == []  # another post's: as if absent
    assert references("acc", q="ouedraogo") == []

    refused = api.get("/appointments", who="abj", params={"phone": "not a number"})
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "phone" in refused.json()["detail"]


def test_the_requests_api_takes_the_same_search_text(api: StaffApi) -> None:
    reference = api.lodge(phone=PHONE)
    serial = int(reference.rsplit("-", 1)[1])
    for q in (f"abj 2026 {serial}", "OUÉDRAOGO", LOCAL):
        items = api.get("/requests", who="abj", params={"q": q}).json()["items"]
        assert [i["reference"] for i in items] == [reference], q
        assert api.get("/requests", who="acc", params={"q": q}).json()["items"] == []


def test_the_filters_are_in_the_openapi_document(api: StaffApi) -> None:
    spec = api.client.get("/openapi.json", headers=api.auth("admin")).json()
    params = {p["name"] for p in spec["paths"]["/api/v1/appointments"]["get"]["parameters"]}
    assert {"phone", "q"} <= params
    params = {p["name"] for p in spec["paths"]["/api/v1/requests"]["get"]["parameters"]}
    assert "q" in params


# --- walk-ins -------------------------------------------------------------------------------------


def test_a_walk_in_with_a_local_phone_gets_a_whatsapp_identity_never_verified(
    api: StaffApi,
) -> None:
    record = walk_in(api, phone=LOCAL, lang="mos")
    assert (record.post_code, record.full_name) == ("ABJ", "Fatimata Sawadogo")
    with read(api.engine) as conn:
        person = conn.execute(sa.select(_citizen).where(_citizen.c.id == record.citizen_id)).one()
        identities = conn.execute(
            sa.select(_identity.c.channel, _identity.c.address).where(
                _identity.c.citizen_id == record.citizen_id
            )
        ).all()
    assert (person.phone, person.phone_verified, person.lang) == (PHONE, False, "mos")
    assert [tuple(i) for i in identities] == [("whatsapp", PHONE)]
    audited = [a for a in api.audit() if a["action"] == "walk_in"]
    assert [a["entity_id"] for a in audited] == [str(record.id)]
    assert "Fatimata" not in str(audited[0]["after"])  # the log keeps no name
    # found by the desk's search, by the number as typed
    assert [a.reference for a in find(api, "abj", LOCAL).appointments] == [record.reference]


def test_the_first_whatsapp_message_from_that_number_verifies_it(api: StaffApi) -> None:
    record = walk_in(api, phone=LOCAL)
    store = SqlConversationStore(api.engine)
    inbound = Inbound(
        channel="whatsapp",
        address=PHONE,
        incoming=Incoming("Bonjour"),
        now=NOW,
        provider_id="SM" + "1" * 32,
        phone=PHONE,
        phone_verified=True,
    )
    with store.open_turn(inbound) as session:
        assert session is not None
        assert session.who.citizen_id == record.citizen_id
        assert session.who.phone_verified


def test_a_walk_in_whose_number_leads_to_a_citizen_of_the_post_is_theirs(api: StaffApi) -> None:
    known = api.citizen(PHONE)  # wrote on WhatsApp, belongs to Abidjan by their country
    record = walk_in(api, phone="+225 07 01 00 01 23")
    assert record.citizen_id == known
    assert count(api, _citizen) == 1


def test_a_number_typed_at_the_desk_pulls_no_citizen_of_another_post(api: StaffApi) -> None:
    elsewhere = api.citizen(PHONE)
    api.book(elsewhere, post="ACC")  # belongs to Accra now, not to Abidjan
    record = walk_in(api, phone=LOCAL)
    assert record.citizen_id != elsewhere
    with read(api.engine) as conn:
        owner = conn.execute(
            sa.select(_identity.c.citizen_id).where(_identity.c.address == PHONE)
        ).scalar_one()
    assert owner == elsewhere  # their WhatsApp stays theirs
    assert find(api, "abj", LOCAL).citizens[0].id == record.citizen_id


def test_a_walk_in_keeps_the_chats_limits_and_leaves_nothing_when_refused(api: StaffApi) -> None:
    times = free_times(api)
    walk_in(api, starts_at=times[0], phone=LOCAL)
    citizens = count(api, _citizen)
    with pytest.raises(Refused) as refused:  # one person, one upcoming passport appointment
        walk_in(api, starts_at=times[1], full_name="fatimata SAWADOGO")
    assert refused.value.code == "limit_reached"
    assert count(api, _citizen) == citizens  # the citizen it would have made: rolled back
    for given, code in (
        ({"full_name": "Fatimata"}, "name_invalid"),
        ({"full_name": "Agent 007 Bond"}, "name_invalid"),
        ({"phone": "12"}, "phone_invalid"),
        ({"starts_at": times[0].replace(minute=7)}, "unavailable"),
    ):
        with pytest.raises(Refused) as refused:
            walk_in(api, **{"starts_at": times[2], "full_name": "Issa Kaboré"} | given)
        assert refused.value.code == code, given
    with pytest.raises(NotVisible):
        walk_in(api, who="acc")  # Abidjan is not one of Accra's posts


def test_a_full_time_is_refused_at_the_desk(api: StaffApi) -> None:
    nine = free_times(api)[0]
    api.book(api.citizen("+2250701000901"), index=0)
    api.book(api.citizen("+2250701000902"), index=0)  # passport: 2 seats, both sold
    assert nine not in free_times(api)
    with pytest.raises(Refused) as refused:
        walk_in(api, starts_at=nine)
    assert refused.value.code in ("full", "unavailable")


def _race_for_the_last_seat(api: StaffApi, round_: int) -> tuple[datetime, dict[str, str]]:
    """The chat (as the booking flow books) and the desk want the last seat of a time."""
    seat = free_times(api)[0]
    api.book(api.citizen(f"+22507010009{round_}1"), index=0)  # one of two seats left
    chat_citizen = api.citizen(f"+22507010009{round_}2")
    barrier = threading.Barrier(2, timeout=30)
    outcomes: dict[str, str] = {}
    letter = "abc"[round_]

    def chat() -> None:
        barrier.wait()
        with write(api.engine) as conn:
            result = SqlWorld(conn).book(
                chat_citizen, "ABJ", "passport", seat, f"Rasmané Zongo {letter}b", NOW
            )
        outcomes["chat"] = result.outcome.value

    def desk() -> None:
        barrier.wait()
        try:
            walk_in(api, starts_at=seat, full_name=f"Salif Ilboudo {letter}a")
        except Refused as refused:
            outcomes["desk"] = refused.code
        else:
            outcomes["desk"] = BookingOutcome.booked.value

    threads = [threading.Thread(target=chat), threading.Thread(target=desk)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return seat, outcomes


def test_the_last_seat_wanted_by_the_chat_and_the_desk_at_once_goes_to_one(
    api: StaffApi,
) -> None:
    for round_ in range(3):
        seat, outcomes = _race_for_the_last_seat(api, round_)
        assert sorted(outcomes.values()) == ["booked", "full"], outcomes
        with read(api.engine) as conn:
            held = conn.execute(
                sa.select(sa.func.count())
                .select_from(_appt)
                .where(_appt.c.starts_at == seat, _appt.c.status == "booked")
            ).scalar_one()
        assert held == 2


# --- the console's pages, over HTTP ---------------------------------------------------------

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_PASSWORD = "correct horse battery"


def _console_login(client: Any, engine: Engine, email: str, *posts: str) -> str:
    with write(engine) as conn:
        add_staff(conn, email, "agent", list(posts), _PASSWORD)
    page = client.get("/console/login")
    csrf = _CSRF.search(page.text)
    assert csrf is not None
    client.post(
        "/console/login",
        data={"email": email, "password": _PASSWORD, "csrf": csrf.group(1)},
        follow_redirects=False,
    )
    form = _CSRF.search(client.get("/console/walk-in").text)
    assert form is not None
    return form.group(1)


def test_the_console_books_a_walk_in_and_says_why_when_it_cannot(
    demo_engine: Engine, app_factory: Any
) -> None:
    with app_factory(demo_engine, now="2026-12-01T08:00:00Z") as (client, _fakes):
        client.base_url = "https://testserver"
        csrf = _console_login(client, demo_engine, "awa@consulat.bf", "ABJ")
        page = client.get("/console/walk-in", params={"service": "passport"})
        times = re.findall(r'name="starts_at" value="([^"]+)"', page.text)
        assert len(times) > 1
        form = {
            "csrf": csrf,
            "post": "ABJ",
            "service": "passport",
            "starts_at": times[0],
            "full_name": "Fatimata Sawadogo",
            "phone": LOCAL,
            "lang": "fr",
        }
        booked = client.post("/console/walk-in", data=form, follow_redirects=False)
        assert booked.status_code == 303
        receipt = client.get(booked.headers["location"])
        assert receipt.status_code == 200
        reference = re.search(r"RDV-[0-9A-Z]{6}", receipt.text)
        assert reference is not None
        assert "Documents à apporter" in receipt.text
        assert "@media print" in client.get("/static/console.css").text

        # one person, one procedure: at another time too
        again = client.post("/console/walk-in", data=form | {"starts_at": times[1]})
        assert again.status_code == 409
        assert "limites du poste" in again.text
        assert 'value="Fatimata Sawadogo"' in again.text  # what was typed stays
        bad = client.post("/console/walk-in", data=form | {"phone": "12", "full_name": "Issa K"})
        assert bad.status_code == 422
        assert "numéro de téléphone n'est pas valable" in bad.text

        found = client.get("/console/search", params={"q": LOCAL})
        assert reference.group(0) in found.text
        assert PHONE not in found.text  # masked on the shared screen
        assert search.mask_phone(PHONE) in found.text
        # the first free time at the desk is today's: the citizen is at the counter
        assert times[0].startswith("2026-12-01")
        day = client.get("/console/appointments", params={"post": "ABJ", "day": "2026-12-01"})
        assert search.mask_phone(PHONE) in day.text
        assert PHONE not in day.text
        assert client.get("/console/walk-in", params={"post": "ACC"}).status_code == 404


def test_a_walk_in_is_booked_for_today_which_the_chats_notice_keeps_from_the_phone(
    api: StaffApi,
) -> None:
    """The citizen is at the counter: the service's notice (time to prepare an appointment
    booked from afar) does not hold them back; seats, hours and limits still do."""
    today = NOW.date()
    with read(api.engine) as conn:
        by_phone = BookingService(conn).open_times("ABJ", "passport", today, NOW)
        at_desk = BookingService(conn, at_desk=True).open_times("ABJ", "passport", today, NOW)
    assert by_phone == []
    assert at_desk, "Abidjan's passport desk has seats later today"
    assert all(t.starts_at >= NOW for t in at_desk)
    record = walk_in(api, starts_at=at_desk[0].starts_at)
    assert record.starts_at == at_desk[0].starts_at
