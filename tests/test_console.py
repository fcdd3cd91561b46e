"""The staff console through HTTP, on both stores: login, CSRF, what an agent may see and
change, and the desk's actions (check-in, no-show, cancel, requests, closures). Plus the front
door `/` and the simulator page.

The app's clock is Tuesday 1 December 2026, 09:00 in Abidjan (UTC+0).
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from api import db
from api.domain.booking import BookingService
from api.domain.staff import add_staff, disable_staff
from api.models import (
    Appointment,
    AuditLog,
    ChannelIdentity,
    Citizen,
    Closure,
    ConsularRequest,
    OutboxMessage,
    RequestEvent,
    utcnow,
)
from api.world import SqlWorld
from tests.support.staff_api import letters

NOW = "2026-12-01T09:00:00Z"
PASSWORD = "correct horse battery"
appt_t = sa.inspect(Appointment).local_table
audit_t = sa.inspect(AuditLog).local_table
citizen_t = sa.inspect(Citizen).local_table
closure_t = sa.inspect(Closure).local_table
request_t = sa.inspect(ConsularRequest).local_table
event_t = sa.inspect(RequestEvent).local_table
identity_t = sa.inspect(ChannelIdentity).local_table
outbox_t = sa.inspect(OutboxMessage).local_table

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


# --- helpers ----------------------------------------------------------------------------------


def make_staff(engine: Engine, email: str, role: str, *posts: str) -> str:
    with db.write(engine) as conn:
        add_staff(conn, email, role, list(posts), PASSWORD)
    return email


def book(
    engine: Engine, post: str, when: str, name: str | None = None, whatsapp: str | None = None
) -> dict[str, Any]:
    """A booked passport appointment at `when` (UTC), taken days before; by a citizen who
    wrote from `whatsapp` (E.164) when given."""
    starts_at = datetime.fromisoformat(when).replace(tzinfo=UTC)
    with db.write(engine) as conn:
        citizen_id = conn.execute(
            sa.insert(citizen_t)
            .values(
                phone=whatsapp,
                phone_verified=whatsapp is not None,
                lang="fr",
                opted_out=False,
                created_at=datetime(2026, 11, 1, tzinfo=UTC),
            )
            .returning(citizen_t.c.id)
        ).scalar_one()
        if whatsapp is not None:
            conn.execute(
                sa.insert(identity_t).values(
                    channel="whatsapp",
                    address=whatsapp,
                    citizen_id=citizen_id,
                    last_inbound_at=datetime(2026, 11, 30, 18, tzinfo=UTC),
                )
            )
        full_name = name or f"Awa Ouédraogo {letters(citizen_id)}"  # a person of their own
        result = BookingService(conn).book(
            citizen_id, post, "passport", starts_at, full_name, datetime(2026, 11, 25, tzinfo=UTC)
        )
    assert result.appointment is not None, result.outcome
    return {
        "id": result.appointment.id,
        "reference": result.appointment.reference,
        "citizen_id": citizen_id,
    }


def notifications_to(engine: Engine, citizen_id: int) -> list[str]:
    """The dedupe keys of the notifications queued for a citizen."""
    with db.read(engine) as conn:
        return list(
            conn.execute(
                sa.select(outbox_t.c.dedupe_key)
                .where(outbox_t.c.citizen_id == citizen_id, outbox_t.c.kind == "notification")
                .order_by(outbox_t.c.id)
            ).scalars()
        )


def status_of(engine: Engine, appointment_id: int) -> str:
    with db.read(engine) as conn:
        return str(
            conn.execute(
                sa.select(appt_t.c.status).where(appt_t.c.id == appointment_id)
            ).scalar_one()
        )


def csrf(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def login(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    page = client.get("/console/login")
    return client.post(
        "/console/login",
        data={"email": email, "password": password, "csrf": csrf(page.text)},
        follow_redirects=False,
    )


def token(client: TestClient) -> str:
    return csrf(client.get("/console/appointments").text)


@pytest.fixture
def console(demo_engine: Engine, app_factory: Any) -> Iterator[tuple[TestClient, Engine]]:
    with app_factory(demo_engine, now=NOW) as (client, _fakes):
        # PUBLIC_BASE_URL is https: the session cookie is Secure, as a browser would see it.
        client.base_url = "https://testserver"
        yield client, demo_engine


# --- logging in -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/console/appointments",
        "/console/requests",
        "/console/posts/ABJ",
        "/console/broadcasts",
        "/console/broadcasts/new",
        "/console/broadcasts/1",
        "/console/broadcasts/1/stats",
        "/console/dashboard",
        "/console/dashboard.csv?table=requests",
        "/console/admin/staff",
        "/console/admin/staff/1",
    ],
)
def test_every_page_needs_a_login(console: tuple[TestClient, Engine], path: str) -> None:
    client, _ = console
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/console/login?next=")


def test_a_form_posted_without_a_session_changes_nothing(
    console: tuple[TestClient, Engine],
) -> None:
    client, engine = console
    appointment = book(engine, "ABJ", "2026-12-01T10:00")
    response = client.post(
        f"/console/appointments/{appointment['id']}/attended",
        data={"csrf": "anything"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login?next=%2Fconsole%2Fappointments"
    assert status_of(engine, appointment["id"]) == "booked"


def test_login_leads_to_todays_appointments_and_logout_ends_the_session(
    console: tuple[TestClient, Engine],
) -> None:
    client, engine = console
    make_staff(engine, "awa@consulat.bf", "agent", "ABJ")
    response = login(client, "Awa@Consulat.bf")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/appointments"
    page = client.get("/console/appointments")
    assert page.status_code == 200
    assert "Consulat général, Abidjan" in page.text
    assert "mardi 1 décembre 2026" in page.text
    assert page.headers["cache-control"] == "no-store"

    cookie = client.cookies.get("console_session")
    assert cookie
    out = client.post("/console/logout", data={"csrf": csrf(page.text)}, follow_redirects=False)
    assert out.headers["location"] == "/console/login"
    assert client.get("/console/appointments", follow_redirects=False).status_code == 303
    # the logout ended the login on the server: a copy of the old cookie is worth nothing
    client.cookies.clear()
    client.cookies.set("console_session", cookie, path="/console")
    assert client.get("/console/appointments", follow_redirects=False).status_code == 303


def test_disabling_an_account_ends_its_console_logins(console: tuple[TestClient, Engine]) -> None:
    client, engine = console
    make_staff(engine, "awa@consulat.bf", "agent", "ABJ")
    assert login(client, "awa@consulat.bf").status_code == 303
    with db.write(engine) as conn:
        disable_staff(conn, "awa@consulat.bf", utcnow())
        # even switched back on, the login it had is over: she logs in again
        conn.execute(sa.text("UPDATE staff SET active = true WHERE email = 'awa@consulat.bf'"))
    assert client.get("/console/appointments", follow_redirects=False).status_code == 303


def test_login_returns_to_the_page_asked_for_but_never_to_another_site(
    console: tuple[TestClient, Engine],
) -> None:
    client, engine = console
    make_staff(engine, "awa@consulat.bf", "agent", "ABJ")
    page = client.get("/console/login?next=/console/requests")
    response = client.post(
        "/console/login",
        data={
            "email": "awa@consulat.bf",
            "password": PASSWORD,
            "csrf": csrf(page.text),
            "next": "/console/requests",
        },
        follow_redirects=False,
    )
    assert response.headers["location"] == "/console/requests"
    client.cookies.clear()
    page = client.get("/console/login")
    response = client.post(
        "/console/login",
        data={
            "email": "awa@consulat.bf",
            "password": PASSWORD,
            "csrf": csrf(page.text),
            "next": "https://evil.example/console/",
        },
        follow_redirects=False,
    )
    assert response.headers["location"] == "/console/appointments"


@pytest.mark.parametrize(
    ("email", "password"),
    [("awa@consulat.bf", "wrong password"), ("nobody@consulat.bf", PASSWORD)],
)
def test_a_wrong_password_or_unknown_account_is_refused(
    console: tuple[TestClient, Engine], email: str, password: str
) -> None:
    client, engine = console
    make_staff(engine, "awa@consulat.bf", "agent", "ABJ")
    response = login(client, email, password)
    assert response.status_code == 401
    assert "Adresse e-mail ou mot de passe incorrect." in response.text
    assert client.get("/console/appointments", follow_redirects=False).status_code == 303


def test_a_deactivated_account_is_logged_out_at_once(console: tuple[TestClient, Engine]) -> None:
    client, engine = console
    make_staff(engine, "awa@consulat.bf", "agent", "ABJ")
    assert login(client, "awa@consulat.bf").status_code == 303
    with db.write(engine) as conn:
        conn.execute(sa.text("UPDATE staff SET active = false WHERE email = 'awa@consulat.bf'"))
    assert client.get("/console/appointments", follow_redirects=False).status_code == 303


def test_a_tampered_session_cookie_is_ignored(console: tuple[TestClient, Engine]) -> None:
    client, engine = console
    make_staff(engine, "awa@consulat.bf", "agent", "ABJ")
    make_staff(engine, "admin@mae.bf", "admin")
    login(client, "awa@consulat.bf")
    cookie = client.cookies["console_session"]
    body, _, mac = cookie.partition(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    with db.read(engine) as conn:
        admin_id = conn.execute(
            sa.text("SELECT id FROM staff WHERE email = 'admin@mae.bf'")
        ).scalar_one()
    forged = base64.urlsafe_b64encode(
        json.dumps({**payload, "sid": admin_id}, separators=(",", ":"), sort_keys=True).encode()
    )

    def visit(value: str) -> int:
        client.cookies.clear()
        client.cookies.set("console_session", value, path="/console")
        return client.get("/console/appointments", follow_redirects=False).status_code

    assert visit(cookie) == 200
    assert visit(body + "." + mac[::-1]) == 303
    assert visit(forged.rstrip(b"=").decode() + "." + mac) == 303
    assert visit("garbage") == 303


# --- CSRF -------------------------------------------------------------------------------------


@pytest.mark.parametrize("sent", [None, "", "forged-token"])
def test_a_form_without_the_sessions_csrf_token_is_refused(
    console: tuple[TestClient, Engine], sent: str | None
) -> None:
    client, engine = console
    make_staff(engine, "awa@consulat.bf", "agent", "ABJ")
    appointment = book(engine, "ABJ", "2026-12-01T10:00")
    login(client, "awa@consulat.bf")
    data = {} if sent is None else {"csrf": sent}
    response = client.post(f"/console/appointments/{appointment['id']}/attended", data=data)
    assert response.status_code == 403
    assert "formulaire a expiré" in response.text
    assert status_of(engine, appointment["id"]) == "booked"

    closure = client.post("/console/posts/ABJ/closures", data={**data, "day": "2026-12-14"})
    assert closure.status_code == 403
    with db.read(engine) as conn:
        days = conn.execute(sa.select(closure_t.c.day)).scalars().all()
    assert date(2026, 12, 14) not in days


def test_the_login_form_needs_its_csrf_token_too(console: tuple[TestClient, Engine]) -> None:
    client, engine = console
    make_staff(engine, "awa@consulat.bf", "agent", "ABJ")
    response = client.post(
        "/console/login",
        data={"email": "awa@consulat.bf", "password": PASSWORD, "csrf": "forged"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert client.get("/console/appointments", follow_redirects=False).status_code == 303


# --- appointments -----------------------------------------------------------------------------


def test_check_in_marks_the_appointment_attended_and_is_audited(
    console: tuple[TestClient, Engine],
) -> None:
    client, engine = console
    make_staff(engine, "awa@consulat.bf", "agent", "ABJ")
    appointment = book(engine, "ABJ", "2026-12-01T10:00", name="Moussa Traoré")
    login(client, "awa@consulat.bf")
    page = client.get("/console/appointments")
    assert appointment["reference"] in page.text
    assert "Moussa Traoré" in page.text

    response = client.post(
        f"/console/appointments/{appointment['id']}/attended",
        data={"csrf": csrf(page.text), "back": "/console/appointments?post=ABJ"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/console/appointments?post=ABJ"
    assert status_of(engine, appointment["id"]) == "attended"
    body = response.cookies["console_session"].partition(".")[0]
    decoded = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("utf-8")
    assert "Moussa" not in decoded  # the flash names the appointment, not the person
    after = client.get(response.headers["location"])
    assert "présence notée" in after.text
    assert f'id="rdv-{appointment["reference"]}" data-status="attended"' in after.text
    with db.read(engine) as conn:
        audit = conn.execute(sa.select(audit_t).where(audit_t.c.entity == "appointment")).one()
    assert audit.action == "attended"  # as the staff API records it
    assert audit.entity_id == str(appointment["id"])
    assert audit.staff_id is not None
    assert audit.before["status"] == "booked"
    assert audit.after["status"] == "attended"


def test_a_no_show_is_only_recorded_once_the_time_has_passed(
    console: tuple[TestClient, Engine],
) -> None:
    client, engine = console
    make_staff(engine, "awa@consulat.bf", "agent", "ABJ")
    early = book(engine, "ABJ", "2026-12-01T08:00")
    later = book(engine, "ABJ", "2026-12-01T14:00")
    login(client, "awa@consulat.bf")
    form = {"csrf": token(client)}
    client.post(f"/console/appointments/{early['id']}/no-show", data=form)
    response = client.post(f"/console/appointments/{later['id']}/no-show", data=form)
    assert "une absence ne se note qu'une fois l'heure passée" in html.unescape(response.text)
    assert status_of(engine, early["id"]) == "no_show"
    assert status_of(engine, later["id"]) == "booked"


def test_cancelling_needs_a_reason_keeps_it_and_tells_the_citizen(
    console: tuple[TestClient, Engine],
) -> None:
    client, engine = console
    make_staff(engine, "awa@consulat.bf", "agent", "ABJ")
    appointment = book(engine, "ABJ", "2026-12-01T11:00", whatsapp="+2250701000007")
    login(client, "awa@consulat.bf")
    url = f"/console/appointments/{appointment['id']}/cancel"
    response = client.post(url, data={"csrf": token(client), "reason": "  "})
    assert "Indiquez le motif" in response.text
    assert status_of(engine, appointment["id"]) == "booked"

    client.post(url, data={"csrf": token(client), "reason": "Panne du système\x00 d'enrôlement"})
    with db.read(engine) as conn:
        row = conn.execute(sa.select(appt_t).where(appt_t.c.id == appointment["id"])).one()
        audit = conn.execute(
            sa.select(audit_t.c.action).where(audit_t.c.entity_id == str(appointment["id"]))
        ).scalar_one()
    assert row.status == "cancelled"
    assert row.cancel_reason == "Panne du système d'enrôlement"
    assert audit == "cancel"
    assert notifications_to(engine, appointment["citizen_id"]) == [
        f"appointment:{appointment['id']}:cancelled"
    ]


def test_filters_by_post_day_and_status(console: tuple[TestClient, Engine]) -> None:
    client, engine = console
    make_staff(engine, "admin@mae.bf", "admin")
    abj = book(engine, "ABJ", "2026-12-01T10:00")
    bke = book(engine, "BKE", "2026-12-01T10:00")
    tomorrow = book(engine, "ABJ", "2026-12-02T10:00")
    login(client, "admin@mae.bf")

    page = client.get("/console/appointments").text
    assert abj["reference"] in page
    assert bke["reference"] in page
    assert tomorrow["reference"] not in page
    page = client.get("/console/appointments?post=BKE").text
    assert bke["reference"] in page
    assert abj["reference"] not in page
    page = client.get("/console/appointments?post=ABJ&day=2026-12-02").text
    assert tomorrow["reference"] in page
    assert abj["reference"] not in page
    page = client.get("/console/appointments?status=attended").text
    assert abj["reference"] not in page
    assert client.get("/console/appointments?post=XYZ").status_code == 404
    assert client.get("/console/appointments?day=garbage").status_code == 200
    assert client.get("/console/appointments?day=0001-01-01&post=PAR").status_code == 200
    assert client.get("/console/appointments?day=9999-12-31").status_code == 200
    malformed = client.get("/console/requests?page=0")
    assert malformed.status_code == 400
    assert "La demande est mal formée." in malformed.text


# --- an agent's posts, and only them ----------------------------------------------------------


def test_an_agent_sees_and_changes_only_their_posts(console: tuple[TestClient, Engine]) -> None:
    client, engine = console
    make_staff(engine, "kofi@consulat.bf", "agent", "ACC")
    abidjan = book(engine, "ABJ", "2026-12-01T10:00", name="Awa Ouédraogo")
    accra = book(engine, "ACC", "2026-12-01T10:00", name="Kwame Sawadogo")
    login(client, "kofi@consulat.bf")

    page = client.get("/console/appointments")
    assert accra["reference"] in page.text
    assert abidjan["reference"] not in page.text
    assert "Awa Ouédraogo" not in page.text
    assert 'value="ABJ"' not in page.text
    form = {"csrf": csrf(page.text), "reason": "test"}

    assert client.get("/console/appointments?post=ABJ").status_code == 404
    for action in ("attended", "no-show", "cancel"):
        response = client.post(f"/console/appointments/{abidjan['id']}/{action}", data=form)
        assert response.status_code == 403, action  # it exists: not one of their posts
        assert "pas à l'un de vos postes" in response.text
    assert status_of(engine, abidjan["id"]) == "booked"
    missing = client.post("/console/appointments/999999/cancel", data=form)
    assert missing.status_code == 404
    assert "n'existe pas" in missing.text

    assert client.get("/console/posts/ABJ").status_code == 403
    assert client.get("/console/posts/ZZZ").status_code == 404
    response = client.post("/console/posts/ABJ/closures", data={**form, "day": "2026-12-14"})
    assert response.status_code == 403
    response = client.post(
        "/console/requests",
        data={
            **form,
            "post": "ABJ",
            "service": "passport",
            "full_name": "Awa",
            "birth_date": "1990-01-01",
        },
    )
    assert response.status_code == 422
    with db.read(engine) as conn:
        assert (
            conn.execute(
                sa.select(sa.func.count())
                .select_from(closure_t)
                .where(closure_t.c.day == date(2026, 12, 14))
            ).scalar_one()
            == 0
        )
        assert conn.execute(sa.select(sa.func.count()).select_from(request_t)).scalar_one() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(audit_t)).scalar_one() == 0


def test_an_agent_cannot_read_another_posts_request(console: tuple[TestClient, Engine]) -> None:
    client, engine = console
    make_staff(engine, "awa@consulat.bf", "agent", "ABJ")
    make_staff(engine, "kofi@consulat.bf", "agent", "ACC")
    login(client, "awa@consulat.bf")
    client.post(
        "/console/requests",
        data={
            "csrf": token(client),
            "post": "ABJ",
            "service": "passport",
            "full_name": "Awa Ouédraogo",
            "birth_date": "1990-01-01",
        },
    )
    client.cookies.clear()
    login(client, "kofi@consulat.bf")
    page = client.get("/console/requests/ABJ-2026-000001")
    assert page.status_code == 403
    assert "Pas un de vos postes" in page.text
    assert client.get("/console/requests/ABJ-2026-000999").status_code == 404
    assert "ABJ-2026-000001" not in client.get("/console/requests?q=ABJ").text
    response = client.post(
        "/console/requests/ABJ-2026-000001/status",
        data={"csrf": token(client), "status": "in_progress"},
    )
    assert response.status_code == 403


def test_an_administrator_sees_every_post(console: tuple[TestClient, Engine]) -> None:
    client, engine = console
    make_staff(engine, "admin@mae.bf", "admin")
    accra = book(engine, "ACC", "2026-12-01T10:00")
    login(client, "admin@mae.bf")
    assert accra["reference"] in client.get("/console/appointments").text
    assert client.get("/console/posts/NYC").status_code == 200
    assert "administrateur" in client.get("/console/posts").text


# --- requests ---------------------------------------------------------------------------------


def test_a_request_is_created_found_and_moved_on(console: tuple[TestClient, Engine]) -> None:
    client, engine = console
    make_staff(engine, "awa@consulat.bf", "agent", "ABJ")
    login(client, "awa@consulat.bf")
    form = csrf(client.get("/console/requests/new").text)
    response = client.post(
        "/console/requests",
        data={
            "csrf": form,
            "post": "ABJ",
            "service": "cnib",
            "phone": "+225 07 01 00 00 09",
            "full_name": "  Issa   Kaboré ",
            "birth_date": "1990-03-12",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/console/requests/ABJ-2026-000001"
    detail = client.get(response.headers["location"])
    assert "Dossier ABJ-2026-000001 enregistré" in detail.text
    assert "Issa Kaboré" in detail.text
    assert "12/03/1990" in detail.text

    found = client.get("/console/requests?q=abj 2026 1")
    assert "ABJ-2026-000001" in found.text
    assert "ABJ-2026-000001" in client.get("/console/requests?q=000001").text
    assert "ABJ-2026-000001" not in client.get("/console/requests?status=ready").text

    moved = client.post(
        "/console/requests/ABJ-2026-000001/status",
        data={"csrf": token(client), "status": "in_progress"},
    )
    assert "statut « En cours de traitement » enregistré" in moved.text
    refused = client.post(
        "/console/requests/ABJ-2026-000001/status",
        data={"csrf": token(client), "status": "delivered"},
    )
    assert "ne peut pas passer à « Remis »" in refused.text
    unexplained = client.post(
        "/console/requests/ABJ-2026-000001/status",
        data={"csrf": token(client), "status": "rejected", "reason": ""},
    )
    assert "Un rejet doit être motivé" in unexplained.text
    with db.read(engine) as conn:
        request = conn.execute(sa.select(request_t)).one()
        events = conn.execute(sa.select(event_t.c.status).order_by(event_t.c.id)).scalars().all()
        actions = (
            conn.execute(
                sa.select(audit_t.c.action)
                .where(audit_t.c.entity == "request")
                .order_by(audit_t.c.id)
            )
            .scalars()
            .all()
        )
    assert request.status == "in_progress"
    assert request.phone == "+2250701000009"
    assert events == ["received", "in_progress"]
    assert actions == ["create", "status"]


def test_a_request_form_with_mistakes_is_shown_again(console: tuple[TestClient, Engine]) -> None:
    client, engine = console
    make_staff(engine, "awa@consulat.bf", "agent", "ABJ")
    login(client, "awa@consulat.bf")
    response = client.post(
        "/console/requests",
        data={
            "csrf": token(client),
            "post": "ABJ",
            "service": "passport",
            "phone": "not a phone",
            "full_name": "Issa Kaboré",
            "birth_date": "2030-01-01",
        },
    )
    assert response.status_code == 422
    assert "Indiquez une date de naissance valable." in html.unescape(response.text)
    assert 'value="Issa Kaboré"' in response.text
    response = client.post(
        "/console/requests",
        data={
            "csrf": token(client),
            "post": "ABJ",
            "service": "passport",
            "phone": "12",
            "full_name": "Issa Kaboré",
            "birth_date": "1990-03-12",
        },
    )
    assert response.status_code == 422
    assert "numéro de téléphone n'est pas valable" in html.unescape(response.text)


# --- opening hours and closures ---------------------------------------------------------------


def test_a_closure_is_added_and_that_days_bookings_are_cancelled(
    console: tuple[TestClient, Engine],
) -> None:
    client, engine = console
    make_staff(engine, "awa@consulat.bf", "agent", "ABJ")
    affected = book(engine, "ABJ", "2026-12-14T09:00", whatsapp="+2250701000008")
    untouched = book(engine, "ABJ", "2026-12-15T09:00")
    login(client, "awa@consulat.bf")
    page = client.get("/console/posts/ABJ")
    assert "lundi" in page.text
    assert 'value="08:00-12:00' in page.text
    assert "vendredi 11 décembre 2026" in page.text  # the seeded national holiday

    question = client.post(
        "/console/posts/ABJ/closures",
        data={"csrf": csrf(page.text), "day": "2026-12-14", "reason": "Inventaire"},
        follow_redirects=False,
    )
    assert question.status_code == 200  # asked first: nothing cancelled yet
    assert "Cette fermeture annulera 1 rendez-vous." in question.text
    assert status_of(engine, affected["id"]) == "booked"
    confirmed = dict(re.findall(r'name="(\w+)" value="([^"]*)"', question.text))
    response = client.post("/console/posts/ABJ/closures", data=confirmed, follow_redirects=False)
    assert response.status_code == 303
    after = client.get("/console/posts/ABJ").text
    assert "Fermeture du lundi 14 décembre 2026 enregistrée." in after
    assert "1 rendez-vous annulé(s) ; les citoyens sont prévenus" in after
    assert "Inventaire" in after
    assert status_of(engine, affected["id"]) == "cancelled"
    assert status_of(engine, untouched["id"]) == "booked"
    with db.read(engine) as conn:
        closure = conn.execute(
            sa.select(closure_t).where(closure_t.c.day == date(2026, 12, 14))
        ).one()
        actions = conn.execute(sa.select(audit_t.c.action).order_by(audit_t.c.id)).scalars().all()
    assert closure.reason == "Inventaire"
    assert actions == ["create"]
    assert notifications_to(engine, affected["citizen_id"]) == [
        f"appointment:{affected['id']}:cancelled"
    ]

    again = client.post(
        "/console/posts/ABJ/closures",
        data={"csrf": token(client), "day": "2026-12-14", "reason": "encore"},
    )
    assert "déjà fermé" in again.text
    past = client.post(
        "/console/posts/ABJ/closures", data={"csrf": token(client), "day": "2026-11-30"}
    )
    assert "déjà passé" in past.text


def test_a_check_in_on_the_wrong_line_is_undone_with_a_reason(
    console: tuple[TestClient, Engine],
) -> None:
    client, engine = console
    make_staff(engine, "awa@consulat.bf", "agent", "ABJ")
    today = book(engine, "ABJ", "2026-12-01T10:00", name="Moussa Traoré")
    tomorrow = book(engine, "ABJ", "2026-12-02T10:00")
    login(client, "awa@consulat.bf")
    early = client.post(
        f"/console/appointments/{tomorrow['id']}/attended", data={"csrf": token(client)}
    )
    assert "que le jour du rendez-vous" in early.text
    assert status_of(engine, tomorrow["id"]) == "booked"
    client.post(f"/console/appointments/{today['id']}/attended", data={"csrf": token(client)})
    page = client.get("/console/appointments").text
    assert f'action="/console/appointments/{today["id"]}/undo-attendance"' in page
    refused = client.post(
        f"/console/appointments/{today['id']}/undo-attendance", data={"csrf": token(client)}
    )
    assert "Indiquez pourquoi" in refused.text
    assert status_of(engine, today["id"]) == "attended"
    undone = client.post(
        f"/console/appointments/{today['id']}/undo-attendance",
        data={"csrf": token(client), "reason": "mauvaise ligne"},
    )
    assert "de nouveau « Réservé »" in undone.text
    assert status_of(engine, today["id"]) == "booked"
    with db.read(engine) as conn:
        actions = conn.execute(sa.select(audit_t.c.action).order_by(audit_t.c.id)).scalars()
        assert list(actions)[-2:] == ["attended", "undo_attendance"]


def test_a_request_goes_one_step_back_from_its_page(console: tuple[TestClient, Engine]) -> None:
    client, engine = console
    make_staff(engine, "awa@consulat.bf", "agent", "ABJ")
    login(client, "awa@consulat.bf")
    page = client.get("/console/requests/new")
    created = client.post(
        "/console/requests",
        data={
            "csrf": csrf(page.text),
            "post": "ABJ",
            "service": "passport",
            "full_name": "Awa",
            "birth_date": "1990-03-12",
        },
        follow_redirects=False,
    )
    detail = created.headers["location"]
    reference = detail.rsplit("/", 1)[1]
    for status in ("in_progress", "ready"):
        client.post(f"{detail}/status", data={"csrf": token(client), "status": status})
    page = client.get(detail).text
    assert "revenir à « En cours »" in page or "Revenir à l'étape précédente" in page
    back = client.post(
        f"{detail}/step-back", data={"csrf": token(client), "reason": "passeport absent"}
    )
    assert f"Dossier {reference} : revenu à l'étape" in back.text
    assert "correction: passeport absent" in back.text  # in the history


def test_the_broadcasts_page_lists_the_table(console: tuple[TestClient, Engine]) -> None:
    client, engine = console
    make_staff(engine, "admin@mae.bf", "admin")
    with db.write(engine) as conn:
        conn.execute(
            sa.text(
                "INSERT INTO broadcast (title, texts, segment, status, created_at, cursor, queued)"
                " VALUES ('Mission consulaire à Bouaké', '{}', '{}', 'draft', :at, 0, 0)"
            ),
            {"at": datetime(2026, 11, 30, 8, tzinfo=UTC).replace(tzinfo=None)},
        )
    login(client, "admin@mae.bf")
    page = client.get("/console/broadcasts")
    assert page.status_code == 200
    assert "Mission consulaire à Bouaké" in page.text
    assert "Brouillon" in page.text


def test_an_agent_sees_the_broadcasts_the_api_lets_them_see(
    console: tuple[TestClient, Engine],
) -> None:
    """One rule for both (api.domain.broadcasts.within): the whole segment within their posts."""
    client, engine = console
    make_staff(engine, "awa@consulat.bf", "agent", "ABJ")
    at = datetime(2026, 11, 30, 8, tzinfo=UTC).replace(tzinfo=None)
    with db.write(engine) as conn:
        for title, segment in (
            ("Pour Abidjan", '{"posts": ["ABJ"]}'),
            ("Pour Abidjan et Accra", '{"posts": ["ABJ", "ACC"]}'),
            ("Pour tout le monde", "{}"),
        ):
            conn.execute(
                sa.text(
                    "INSERT INTO broadcast (title, texts, segment, status, created_at, cursor,"
                    " queued) VALUES (:title, '{}', :segment, 'draft', :at, 0, 0)"
                ),
                {"title": title, "segment": segment, "at": at},
            )
    login(client, "awa@consulat.bf")
    page = client.get("/console/broadcasts").text
    assert "Pour Abidjan<" in page
    assert "Pour Abidjan et Accra" not in page
    assert "Pour tout le monde" not in page


# --- the front door and the simulator page -----------------------------------------------------


def test_the_front_door_leads_to_the_simulator_when_it_is_on(
    console: tuple[TestClient, Engine],
) -> None:
    client, _ = console
    response = client.get("/", follow_redirects=False)
    assert response.headers["location"] == "/simulator"
    page = client.get("/simulator")
    assert page.status_code == 200
    assert 'id="messages"' in page.text
    assert 'aria-live="polite"' in page.text
    assert 'value="+2250701000001"' in page.text
    script = client.get("/static/simulator.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert client.get("/static/console.css").headers["content-type"].startswith("text/css")
    assert client.get("/static/..%2Fapp.py").status_code == 404
    assert client.get("/static/nothing.js").status_code == 404


def test_without_the_simulator_the_front_door_leads_to_the_console(
    sqlite_engine: Engine,
) -> None:
    from api.app import create_app
    from api.settings import Settings

    settings = Settings(
        database_url=sqlite_engine.url.render_as_string(hide_password=False),
        simulator_enabled=False,
    )
    with TestClient(create_app(settings, engine=sqlite_engine, run_worker=False)) as client:
        assert client.get("/", follow_redirects=False).headers["location"] == "/console/"
        assert client.get("/simulator").status_code == 404


def test_with_console_secret_a_session_outlives_the_process(
    demo_sqlite: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.app import create_app
    from api.settings import Settings

    settings = Settings(database_url=demo_sqlite.url.render_as_string(hide_password=False))
    make_staff(demo_sqlite, "awa@consulat.bf", "agent", "ABJ")

    def fresh_app() -> TestClient:
        return TestClient(create_app(settings, engine=demo_sqlite, run_worker=False))

    monkeypatch.setenv("CONSOLE_SECRET", "a long random string shared by every serve process")
    with fresh_app() as first:
        assert login(first, "awa@consulat.bf").status_code == 303
        cookie = first.cookies["console_session"]
    with fresh_app() as second:  # a restart, or another process behind the load balancer
        second.cookies.set("console_session", cookie, path="/console")
        assert second.get("/console/appointments", follow_redirects=False).status_code == 200
    monkeypatch.delenv("CONSOLE_SECRET")
    with fresh_app() as unkeyed:  # a random key of its own: the session is unknown there
        unkeyed.cookies.set("console_session", cookie, path="/console")
        assert unkeyed.get("/console/appointments", follow_redirects=False).status_code == 303


# --- citizens: export and erasure; the audit log ------------------------------------------------


def test_an_administrator_exports_and_erases_a_citizen_from_the_console(
    console: tuple[TestClient, Engine],
) -> None:
    client, engine = console
    booked = book(engine, "ABJ", "2026-12-02T09:00:00", whatsapp="+2250701000009")
    login(client, make_staff(engine, "admin@mae.bf", "admin"))

    page = client.get("/console/citizens", params={"phone": "+225 07 01 00 00 09"})
    assert page.status_code == 200
    assert "+2250701000009" in page.text
    exported = client.get(f"/console/citizens/{booked['citizen_id']}/export")
    assert exported.status_code == 200
    assert "attachment" in exported.headers["Content-Disposition"]
    held = exported.json()
    assert held["citizen"]["phone"] == "+2250701000009"
    assert [a["reference"] for a in held["appointments"]] == [booked["reference"]]

    url = f"/console/citizens/{booked['citizen_id']}/erase"
    refused = client.post(url, data={"csrf": csrf(page.text), "confirm": "oui"})
    assert "tapez EFFACER" in refused.text
    erased = client.post(url, data={"csrf": csrf(page.text), "confirm": "effacer"})
    assert "Citoyen effacé" in erased.text
    with db.read(engine) as conn:
        phone, erased_at = conn.execute(
            sa.select(citizen_t.c.phone, citizen_t.c.erased_at).where(
                citizen_t.c.id == booked["citizen_id"]
            )
        ).one()
        actions = list(conn.execute(sa.select(audit_t.c.action)).scalars())
    assert (phone, erased_at is not None) == (None, True)
    assert "erase" in actions

    audit = client.get("/console/audit.csv")
    assert audit.status_code == 200
    lines = audit.text.splitlines()
    assert lines[0] == "id,at,staff_email,action,entity,entity_id,before,after"
    assert any(",erase,citizen," in line and "admin@mae.bf" in line for line in lines[1:])


def test_agents_have_no_citizens_page(console: tuple[TestClient, Engine]) -> None:
    client, engine = console
    login(client, make_staff(engine, "awa@consulat.bf", "agent", "ABJ"))
    assert client.get("/console/citizens").status_code == 404
    assert client.get("/console/audit.csv").status_code == 404
    assert "/console/citizens" not in client.get("/console/appointments").text


# --- booking limits -----------------------------------------------------------------------------


def test_the_limits_page_shows_a_citizens_standing_and_lifts_a_limit(
    console: tuple[TestClient, Engine],
) -> None:
    client, engine = console
    make_staff(engine, "awa@consulat.bf", "agent", "ABJ")
    first = book(engine, "ABJ", "2026-12-02T09:00", name="Moussa Traoré", whatsapp="+2250701000009")
    with db.write(engine) as conn:  # three more from the same number, for the children
        for day, child in zip(
            (3, 4, 7), ("Issa Traoré", "Awa Traoré", "Fatim Traoré"), strict=True
        ):
            starts_at = datetime(2026, 12, day, 9, tzinfo=UTC)
            result = BookingService(conn).book(
                first["citizen_id"],
                "ABJ",
                "passport",
                starts_at,
                child,
                datetime(2026, 11, 25, tzinfo=UTC),
            )
            assert result.appointment is not None, result.outcome
    login(client, "awa@consulat.bf")
    page = client.get("/console/limits", params={"phone": "+225 07 01 00 00 09"})
    assert page.status_code == 200
    assert "4 / 4 sur 30 jours" in page.text
    assert "Nom « Fatim Traoré »" in page.text
    response = client.post(
        f"/console/limits/{first['citizen_id']}/lift",
        data={"csrf": csrf(page.text), "post": "ABJ", "kind": "phone", "phone": "+2250701000009"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    after = client.get(response.headers["location"])
    assert "Limite levée au poste ABJ" in after.text
    assert "0 / 4 sur 30 jours" in after.text


def test_a_posts_page_shows_its_waitlist(console: tuple[TestClient, Engine]) -> None:
    client, engine = console
    make_staff(engine, "awa@consulat.bf", "agent", "ABJ")
    citizen = book(engine, "ABJ", "2026-12-02T09:00", name="Moussa Traoré")["citizen_id"]
    with db.write(engine) as conn:
        SqlWorld(conn).join_waitlist(
            citizen, "ABJ", "cnib", "Issa Traoré", datetime(2026, 12, 1, tzinfo=UTC)
        )
    login(client, "awa@consulat.bf")
    page = client.get("/console/posts/ABJ")
    assert "Liste d'attente" in page.text
    assert 'data-status="waiting"' in page.text
    assert "Issa Traoré" in page.text


# --- broadcasts: compose, count, send, follow, cancel, duplicate -------------------------------


def _compose(client: TestClient, **fields: Any) -> Any:
    data: dict[str, Any] = {
        "csrf": csrf(client.get("/console/broadcasts/new").text),
        "title": "Mission <b>consulaire</b>",
        "text_fr": "Mission à Bouaké le 12 <script>alert(1)</script>",
        "text_en": "Consular mission in Bouaké on the 12th",
        "posts": ["ABJ"],
    }
    data.update(fields)
    return client.post("/console/broadcasts", data=data, follow_redirects=False)


def test_a_broadcast_is_composed_counted_sent_and_followed(
    console: tuple[TestClient, Engine],
) -> None:
    from api.domain.broadcast_delivery import due_broadcasts_job

    client, engine = console
    make_staff(engine, "admin@mae.bf", "admin")
    first = book(engine, "ABJ", "2026-12-03T10:00", whatsapp="+2250701000011")
    book(engine, "ABJ", "2026-12-03T11:00", whatsapp="+2250701000012")
    login(client, "admin@mae.bf")

    new = client.get("/console/broadcasts/new")
    assert new.status_code == 200
    assert "/static/console-broadcasts.js" in new.text
    counted = client.post(
        "/console/broadcasts/count",
        data={"csrf": csrf(new.text), "posts": ["ABJ"], "channels": ["whatsapp"]},
    )
    assert counted.json() == {"total": 2, "reachable": 2, "opted_out": 0, "unreachable": 0}
    refused = client.post("/console/broadcasts/count", data={"csrf": "nope", "posts": ["ABJ"]})
    assert refused.status_code == 403

    created = _compose(client)
    assert created.status_code == 303
    detail_url = created.headers["location"]
    page = client.get(detail_url).text
    assert "Mission &lt;b&gt;consulaire&lt;/b&gt;" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert" not in page
    assert "Brouillon" in page

    sent = client.post(
        detail_url + "/send", data={"csrf": csrf(page), "when": "now"}, follow_redirects=False
    )
    assert sent.status_code == 303
    due_broadcasts_job(engine, datetime(2026, 12, 1, 9, 0, 1, tzinfo=UTC))
    stats = client.get(detail_url + "/stats").json()
    assert stats["status"] == "sent"
    assert stats["audience"] == 2  # the app's own worker may already be sending them
    assert stats["percent"] == round(100 * (2 - stats["pending"]) / 2)
    with db.read(engine) as conn:
        keys = conn.execute(
            sa.select(outbox_t.c.dedupe_key).where(outbox_t.c.kind == "broadcast")
        ).scalars()
        assert any(k.endswith(f":citizen:{first['citizen_id']}") for k in keys)
        actions = conn.execute(
            sa.select(audit_t.c.action).where(audit_t.c.entity == "broadcast")
        ).scalars()
        assert sorted(actions) == ["create", "schedule"]

    copied = client.post(
        detail_url + "/duplicate", data={"csrf": csrf(page)}, follow_redirects=False
    )
    assert copied.status_code == 303
    copy_url = copied.headers["location"]
    assert copy_url != detail_url
    # The copy is a draft (the original may already be out: the app's worker sends it).
    cancelled = client.post(copy_url + "/cancel", data={"csrf": csrf(page)})
    assert "Annonce annulée" in cancelled.text
    after = client.get(copy_url + "/stats").json()
    assert after["status"] == "cancelled"
    assert after["percent"] == 0


def test_the_compose_form_says_what_is_missing(console: tuple[TestClient, Engine]) -> None:
    client, engine = console
    make_staff(engine, "admin@mae.bf", "admin")
    login(client, "admin@mae.bf")
    page = _compose(client, text_fr="  ")
    assert page.status_code == 200
    assert "Le texte en français est obligatoire" in page.text
    assert "Mission &lt;b&gt;consulaire&lt;/b&gt;" in page.text  # kept, escaped
    late = _compose(client, appointment_start="2026-13-40", countries="CIV")
    assert "Ces critères ne sont pas valables" in late.text


def test_an_agent_composes_for_their_posts_only_and_cannot_open_anothers(
    console: tuple[TestClient, Engine],
) -> None:
    client, engine = console
    make_staff(engine, "admin@mae.bf", "admin")
    make_staff(engine, "awa@consulat.bf", "agent", "ABJ")
    login(client, "admin@mae.bf")
    other = _compose(client, posts=["ACC"]).headers["location"]
    client.post("/console/logout", data={"csrf": token(client)})

    login(client, "awa@consulat.bf")
    assert client.get(other).status_code == 403  # it exists: not one of her posts
    assert client.get(other + "/stats").status_code == 404  # the page script's JSON
    assert client.post(other + "/cancel", data={"csrf": token(client)}).status_code == 403
    assert client.get("/console/broadcasts/999999").status_code == 404
    refused = _compose(client, posts=["ACC"])
    assert "doit viser ses postes" in refused.text
    mine = _compose(client, posts=["ABJ"])
    assert mine.status_code == 303
    assert client.get(mine.headers["location"]).status_code == 200


# --- the dashboard -----------------------------------------------------------------------------


def test_the_dashboard_draws_a_posts_figures_and_none_of_anothers(
    console: tuple[TestClient, Engine],
) -> None:
    client, engine = console
    make_staff(engine, "awa@consulat.bf", "agent", "ABJ")
    mine = book(engine, "ABJ", "2026-12-03T10:00", whatsapp="+2250701000021")
    book(engine, "ACC", "2026-12-02T10:00", name="Kofi <i>Mensah</i>")
    with db.write(engine) as conn:
        conn.execute(
            sa.text(
                "INSERT INTO conversation_start (channel, lang, citizen_id, started_at)"
                " VALUES ('whatsapp', 'fr', :cid, :at)"
            ),
            {"cid": mine["citizen_id"], "at": datetime(2026, 11, 30, 18)},
        )
    login(client, "awa@consulat.bf")
    page = client.get("/console/dashboard")
    assert page.status_code == 200
    assert page.text.count("<svg") >= 3
    assert '<th scope="row">2026-12-03</th><td>1</td>' in page.text
    assert "2026-12-02</th><td>1</td>" not in page.text  # Accra's is not hers
    assert "whatsapp/fr" in page.text
    assert client.get("/console/dashboard?post=ACC").status_code == 404

    csv_file = client.get("/console/dashboard.csv?table=appointments&post=ABJ")
    assert csv_file.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv_file.headers["content-disposition"]
    lines = csv_file.text.splitlines()
    assert lines[0] == "day,passport"
    assert "2026-12-03,1" in lines
    assert client.get("/console/dashboard.csv?table=nope").status_code == 404


def test_a_conversation_is_counted_once_when_it_starts(console: tuple[TestClient, Engine]) -> None:
    client, engine = console
    for text in ("Bonjour", "1"):
        client.post("/api/v1/simulator/messages", json={"user": "dash-1", "text": text})
    with db.read(engine) as conn:
        rows = conn.execute(sa.text("SELECT channel, lang FROM conversation_start")).all()
    assert [tuple(r) for r in rows] == [("simulator", "fr")]


# --- administration -----------------------------------------------------------------------------


def test_an_administrator_creates_changes_resets_and_deactivates_an_account(
    console: tuple[TestClient, Engine],
) -> None:
    client, engine = console
    make_staff(engine, "admin@mae.bf", "admin")
    login(client, "admin@mae.bf")
    page = client.get("/console/admin/staff")
    assert page.status_code == 200
    created = client.post(
        "/console/admin/staff",
        data={
            "csrf": csrf(page.text),
            "email": "Fati@Consulat.bf",
            "role": "agent",
            "posts": ["ABJ"],
            "password": "nouveau-guichet-1",
        },
        follow_redirects=False,
    )
    assert created.status_code == 303
    account_url = created.headers["location"]
    detail = client.get(account_url).text
    assert "fati@consulat.bf" in detail
    assert "Compte fati@consulat.bf créé" in detail
    token_ = csrf(detail)
    client.post(account_url, data={"csrf": token_, "role": "agent", "posts": ["ABJ", "BKE"]})
    short = client.post(account_url + "/password", data={"csrf": token_, "password": "court"})
    assert "au moins 8" in short.text
    client.post(account_url + "/password", data={"csrf": token_, "password": "encore-un-autre"})
    gone = client.post(account_url + "/disable", data={"csrf": token_})
    assert "désactivé" in gone.text
    with db.read(engine) as conn:
        actions = list(
            conn.execute(
                sa.select(audit_t.c.action)
                .where(audit_t.c.entity == "staff")
                .order_by(audit_t.c.id)
            ).scalars()
        )
        snapshots = conn.execute(
            sa.select(audit_t.c.after).where(audit_t.c.entity == "staff")
        ).scalars()
        assert all("password" not in json.dumps(s) for s in snapshots)
    assert actions == ["create", "update", "reset_password", "disable"]
    assert login(client, "fati@consulat.bf", "encore-un-autre").status_code != 303


def test_administration_is_not_there_for_an_agent(console: tuple[TestClient, Engine]) -> None:
    client, engine = console
    make_staff(engine, "awa@consulat.bf", "agent", "ABJ")
    make_staff(engine, "admin@mae.bf", "admin")
    login(client, "admin@mae.bf")
    forged = client.post(
        "/console/admin/staff",
        data={"email": "x@consulat.bf", "role": "admin", "password": "longenough"},
    )
    assert forged.status_code == 403  # no CSRF token: refused
    client.post("/console/logout", data={"csrf": token(client)})
    login(client, "awa@consulat.bf")
    assert client.get("/console/admin/staff").status_code == 404
    response = client.post(
        "/console/posts/ABJ/services/passport",
        data={
            "csrf": token(client),
            "slot_minutes": "15",
            "seats_per_slot": "3",
            "booking_window_days": "30",
            "min_notice_hours": "12",
        },
    )
    assert "Service passport enregistré" in response.text  # her post's: as through the API
    other = client.post(
        "/console/posts/ACC/services/passport",
        data={"csrf": token(client), "slot_minutes": "15", "seats_per_slot": "3"},
    )
    assert other.status_code == 403


def test_a_posts_service_is_changed_and_a_closure_removed(
    console: tuple[TestClient, Engine],
) -> None:
    client, engine = console
    make_staff(engine, "admin@mae.bf", "admin")
    login(client, "admin@mae.bf")
    page = client.get("/console/posts/ABJ").text
    saved = client.post(
        "/console/posts/ABJ/services/passport",
        data={
            "csrf": csrf(page),
            "slot_minutes": "20",
            "seats_per_slot": "3",
            "booking_window_days": "45",
            "min_notice_hours": "6",
            "fee_note": "50 000 <b>FCFA</b>",
            "active": "on",
        },
    )
    assert "Service passport enregistré" in saved.text
    assert 'value="50 000 &lt;b&gt;FCFA&lt;/b&gt;"' in saved.text
    client.post("/console/posts/ABJ/closures", data={"csrf": csrf(page), "day": "2026-12-24"})
    reopened = client.post(
        "/console/posts/ABJ/closures/2026-12-24/delete", data={"csrf": csrf(page)}
    )
    assert "de nouveau ouvert" in reopened.text
    again = client.post("/console/posts/ABJ/closures/2026-12-24/delete", data={"csrf": csrf(page)})
    assert "pas de fermeture" in again.text
    with db.read(engine) as conn:
        audited = conn.execute(
            sa.select(audit_t.c.action, audit_t.c.entity).order_by(audit_t.c.id)
        ).all()
    assert [tuple(a) for a in audited] == [
        ("update", "offer"),
        ("create", "closure"),
        ("delete", "closure"),
    ]


def test_the_dashboard_shows_the_desk_numbers_of_ones_posts(
    console: tuple[TestClient, Engine],
) -> None:
    from api.domain import desk_conversations as desk

    client, engine = console
    make_staff(engine, "awa@consulat.bf", "agent", "ABJ")
    now = datetime(2026, 12, 1, 8, tzinfo=UTC)
    with db.write(engine) as conn:
        for phone, post in (("+2250701000051", "ABJ"), ("+2250701000052", "PAR")):
            citizen_id = conn.execute(
                sa.insert(citizen_t)
                .values(
                    phone=phone, phone_verified=True, lang="fr", opted_out=False, created_at=now
                )
                .returning(citizen_t.c.id)
            ).scalar_one()
            desk.open_conversation(conn, citizen_id, "whatsapp", post, "fr", now)
            desk.citizen_wrote(
                conn, citizen_id, "whatsapp", "Bonjour, une question", "text", "", now
            )
    login(client, "awa@consulat.bf")
    page = client.get("/console/dashboard").text
    assert "Parler à un agent" in page
    table = page[page.index('id="desk-numbers"') :]
    assert '<th scope="row">ABJ</th><td>1</td>' in table
    assert ">PAR<" not in table  # another post's desk is not shown
