"""The web simulator and the staff console in a real browser (tests/support/browser.py: the
real app on uvicorn with its worker against the fake providers, Debian's Chromium driven by
Playwright, axe-core): booking in the simulator, check-in, translation review, the inbox,
broadcasts, the dashboard, accounts, and accessibility on every page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, Page, expect
from sqlalchemy.engine import Engine

from tests.support.browser import (
    ADMIN,
    AGENT,
    AXE,
    BROWSER_TESTS,
    NOW,
    PASSWORD,
    TRANSLATOR,
    LiveApp,
    axe_violations,
    browser,
    live_app,
    log_in,
    shots,
)

pytestmark = BROWSER_TESTS
__all__ = ["browser", "live_app", "shots"]  # fixtures, used by name


def _last_choices(page: Page, count: int) -> list[str]:
    """Wait for the newest bot reply to offer `count` choices; their labels."""
    buttons = page.locator(".bubble.bot").last.locator(".choices button")
    expect(buttons).to_have_count(count)
    return [str(b.get_attribute("aria-label")) for b in buttons.all()]


def test_the_simulator_books_through_numbered_choices(
    live_app: LiveApp, browser: Browser, shots: Path
) -> None:
    from bot.locales import catalog_path

    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="fr-FR")
    page = context.new_page()
    try:
        page.goto(live_app.url + "/")
        expect(page).to_have_url(live_app.url + "/simulator")
        expect(page.get_by_label("Numéro de téléphone")).to_have_value("+2250701000001")
        expect(page.get_by_label("Votre message")).to_be_focused()

        page.get_by_label("Votre message").fill("Bonjour")
        page.keyboard.press("Enter")
        expect(page.locator(".bubble.user").last).to_contain_text("Bonjour")
        languages = _last_choices(page, 5)  # 1 Français, 2 Mooré, 3 Dioula, 4 Fulfulde, 5 English
        if catalog_path("fr").exists():
            assert languages[0] == "1. Français"
        page.locator(".bubble.bot").last.locator(".choices button").first.click()
        expect(page.locator(".bubble.user").last).to_have_text(re.compile(r"^Vous :\s*1"))

        menu = _last_choices(page, 7)  # the main menu
        if catalog_path("fr").exists():
            assert menu[0] == "1. Prendre rendez-vous"
        # The choices of an answered question are retired: their numbers mean something else.
        expect(page.locator(".bubble.bot").first.locator(".choices button").first).to_be_disabled()
        page.locator(".bubble.bot").last.locator(".choices button").first.click()

        posts = _last_choices(page, 7)  # the seven posts of the demo network
        assert all(label.startswith(f"{i}. ") for i, label in enumerate(posts, start=1))
        if catalog_path("fr").exists():
            assert any("Abidjan" in label for label in posts[:2]), posts  # CI posts first
        page.screenshot(path=str(shots / "simulator.png"), full_page=True)

        page.get_by_role("button", name="Nouvelle conversation").click()
        expect(page.locator(".bubble")).to_have_count(0)
        expect(page.get_by_label("Votre message")).to_be_focused()
    finally:
        context.close()


def test_an_agent_checks_a_citizen_in_from_the_console(
    live_app: LiveApp, browser: Browser, shots: Path
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="fr-FR")
    page = context.new_page()
    try:
        page.goto(live_app.url + "/console/")
        expect(page).to_have_url(re.compile(r"/console/login"))
        page.screenshot(path=str(shots / "console-login.png"))
        page.get_by_label("Adresse e-mail").fill(AGENT)
        page.get_by_label("Mot de passe").fill(PASSWORD)
        page.get_by_role("button", name="Se connecter").click()

        expect(page.get_by_role("heading", level=1)).to_have_text("Rendez-vous")
        row = page.locator(f"#rdv-{live_app.reference}")
        expect(row).to_contain_text("Salif Compaoré")
        expect(row).to_have_attribute("data-status", "booked")
        expect(page.get_by_role("heading", name=re.compile("Abidjan"))).to_contain_text(
            "mardi 1 décembre 2026"
        )
        page.screenshot(path=str(shots / "console-appointments.png"), full_page=True)

        row.get_by_role("button", name=re.compile("^Enregistrer la présence")).click()
        expect(page.get_by_role("status")).to_contain_text("présence notée")
        row = page.locator(f"#rdv-{live_app.reference}")
        expect(row).to_have_attribute("data-status", "attended")
        expect(row).to_contain_text("Présent")
        page.screenshot(path=str(shots / "console-checked-in.png"), full_page=True)

        with live_app.engine.connect() as conn:
            status = conn.execute(
                sa.text("SELECT status FROM appointment WHERE id = :id"),
                {"id": live_app.appointment_id},
            ).scalar_one()
        assert status == "attended"

        page.get_by_role("link", name="Horaires et fermetures").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Consulat général, Abidjan")
        page.screenshot(path=str(shots / "console-post.png"), full_page=True)
        page.get_by_role("link", name="Dossiers").click()
        page.get_by_role("link", name="Nouveau dossier").click()
        page.screenshot(path=str(shots / "console-request-new.png"), full_page=True)
    finally:
        context.close()


def test_a_translator_reviews_a_message_from_the_console(
    live_app: LiveApp, browser: Browser, shots: Path
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR")
    page = context.new_page()
    try:
        page.goto(live_app.url + "/console/")
        page.get_by_label("Adresse e-mail").fill(TRANSLATOR)
        page.get_by_label("Mot de passe").fill(PASSWORD)
        page.get_by_role("button", name="Se connecter").click()

        expect(page.get_by_role("heading", level=1)).to_have_text("Traductions")
        page.get_by_role("link", name="Mooré").click()
        page.get_by_role("link", name="menu.main.question").click()
        expect(page.locator(".phone .bubble")).not_to_be_empty()
        expect(page.locator("dl.sources")).to_contain_text("Que souhaitez-vous faire")
        page.screenshot(path=str(shots / "console-translation.png"), full_page=True)

        page.get_by_label("Texte en Mooré").fill("Y rat n maan bõe? Sõs-y 1 n tãag 6.")
        page.get_by_role("button", name="Approuver", exact=True).click()
        expect(page.locator(".flash-ok")).to_contain_text("Traduction approuvée")
        with live_app.engine.connect() as conn:
            reviewed = conn.execute(
                sa.text("SELECT reviewed FROM translation WHERE lang = 'mos' AND key = :key"),
                {"key": "menu.main.question"},
            ).scalar_one()
        assert reviewed
    finally:
        context.close()


def _citizen_at_the_desk(engine: Engine, phone: str, text: str) -> int:
    """A WhatsApp citizen who asked for a person at ABJ (as the chat does); the conversation."""
    from api import db
    from api.domain import desk_conversations as desk
    from api.models import ChannelIdentity, Citizen

    citizen = sa.inspect(Citizen).local_table
    identity = sa.inspect(ChannelIdentity).local_table
    with db.write(engine) as conn:
        citizen_id = conn.execute(
            sa.insert(citizen)
            .values(phone=phone, phone_verified=True, lang="fr", opted_out=False, created_at=NOW)
            .returning(citizen.c.id)
        ).scalar_one()
        conn.execute(
            sa.insert(identity).values(
                channel="whatsapp", address=phone, citizen_id=citizen_id, last_inbound_at=NOW
            )
        )
        opened = desk.open_conversation(conn, citizen_id, "whatsapp", "ABJ", "fr", NOW)
        desk.citizen_wrote(conn, citizen_id, "whatsapp", text, "text", "", NOW)
    return int(opened.id)


def test_an_agent_answers_a_citizen_from_the_inbox(
    live_app: LiveApp, browser: Browser, shots: Path
) -> None:
    from api import db
    from api.domain import desk_conversations as desk

    conversation_id = _citizen_at_the_desk(
        live_app.engine, "+2250701000099", "Mon enfant est né à Abidjan, que faire ?"
    )
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="fr-FR")
    page = context.new_page()
    try:
        page.goto(live_app.url + "/console/inbox")
        if "/console/login" in page.url:
            page.get_by_label("Adresse e-mail").fill(AGENT)
            page.get_by_label("Mot de passe").fill(PASSWORD)
            page.get_by_role("button", name="Se connecter").click()
            page.goto(live_app.url + "/console/inbox")
        expect(page.get_by_role("heading", level=1)).to_have_text("Messages des citoyens")
        link = page.get_by_role("link", name=f"Conversation {conversation_id}")
        expect(link).to_be_visible()
        page.screenshot(path=str(shots / "console-inbox.png"), full_page=True)
        link.click()
        expect(page.locator("#thread")).to_contain_text("Mon enfant est né à Abidjan")

        with db.write(live_app.engine) as conn:  # the citizen writes again: no reload needed
            citizen_id = conn.execute(
                sa.text("SELECT citizen_id FROM desk_conversation WHERE id = :id"),
                {"id": conversation_id},
            ).scalar_one()
            desk.citizen_wrote(conn, citizen_id, "whatsapp", "C'était hier soir.", "text", "", NOW)
        expect(page.locator("#thread")).to_contain_text("C'était hier soir.", timeout=15_000)

        page.get_by_label(re.compile("^Votre réponse")).fill(
            "Venez déclarer la naissance avec le certificat de l'hôpital."
        )
        page.get_by_role("button", name="Envoyer").click()
        expect(page.get_by_role("status")).to_contain_text("Message envoyé")
        expect(page.locator("#thread .msg-out")).to_contain_text("certificat de l'hôpital")
        page.screenshot(path=str(shots / "console-inbox-conversation.png"), full_page=True)

        page.get_by_role("button", name="Clore la conversation").click()
        expect(page.get_by_role("status")).to_contain_text("Conversation close")
    finally:
        context.close()


# --- the desk's whole day: broadcasts, dashboard, accounts, accessibility ----------------------


def test_an_administrator_sends_a_broadcast_in_two_languages_and_watches_it_leave(
    live_app: LiveApp, browser: Browser, shots: Path
) -> None:
    context, page = log_in(live_app, browser, ADMIN)
    try:
        page.get_by_role("link", name="Annonces").click()
        page.get_by_role("link", name="Nouvelle annonce").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Nouvelle annonce")
        page.get_by_label("Titre").fill("Mission <b>Bouaké</b>")
        french = "Mission consulaire à Bouaké le 12 décembre. <i>Venez tôt</i>."
        english = "Consular mission in Bouaké on 12 December."
        page.get_by_label(re.compile("^Texte — Français")).fill(french)
        page.get_by_label(re.compile("^Texte — English")).fill(english)
        expect(page.locator("#preview-fr")).to_have_text(french)  # as text, not as HTML
        expect(page.locator("#preview-fr i")).to_have_count(0)
        expect(page.locator("#count-fr [data-length]")).to_have_text(str(len(french)))

        page.get_by_role("checkbox", name=re.compile("ABJ —")).check()
        count = page.locator("#audience-count")
        expect(count.locator('[data-count="total"]')).to_have_text("4")
        expect(count.locator('[data-count="reachable"]')).to_have_text("3")
        expect(count.locator('[data-count="opted_out"]')).to_have_text("1")
        page.get_by_role("checkbox", name="Telegram").check()
        expect(count.locator('[data-count="total"]')).to_have_text("1")
        page.get_by_role("checkbox", name="Telegram").uncheck()
        expect(count.locator('[data-count="total"]')).to_have_text("4")
        page.screenshot(path=str(shots / "console-broadcast-compose.png"), full_page=True)

        page.get_by_role("button", name="Enregistrer le brouillon").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Mission <b>Bouaké</b>")
        page.get_by_role("button", name="Envoyer l'annonce").click()
        expect(page.locator("#progress-percent")).to_have_text("100 %", timeout=60_000)
        expect(page.locator('[data-stat="sent"]')).to_have_text("3")
        expect(page.locator("[data-status-label]")).to_have_text("Envoyée")
        page.screenshot(path=str(shots / "console-broadcast-sent.png"), full_page=True)
    finally:
        context.close()

    bodies = {m["To"]: m.get("Body") for m in live_app.twilio.sent_messages()}
    assert len(live_app.twilio.sent_messages("+2250701000101")) == 1
    assert len(live_app.twilio.sent_messages("+2250701000102")) == 1
    assert live_app.twilio.sent_messages("+2250701000104") == []  # STOP
    assert bodies["whatsapp:+2250701000101"] == french
    assert bodies["whatsapp:+2250701000102"] == english
    telegram = live_app.telegram.sent_messages("700100103")
    assert [m["text"] for m in telegram] == [french]


def test_an_agent_cannot_open_another_posts_broadcast(
    live_app: LiveApp, browser: Browser, shots: Path
) -> None:
    from api import db
    from api.domain import broadcasts

    with db.write(live_app.engine) as conn:
        other = broadcasts.create(
            conn,
            title="Pour Accra",
            texts={"fr": "Bonjour Accra"},
            segment=broadcasts.Segment(posts=["ACC"]),
            created_by=None,
            now=NOW,
        )
    context, page = log_in(live_app, browser, AGENT)
    try:
        page.get_by_role("link", name="Annonces").click()
        expect(page.get_by_role("link", name="Pour Accra")).to_have_count(0)
        response = page.goto(f"{live_app.url}/console/broadcasts/{other.id}")
        assert response is not None
        assert response.status == 403  # it exists: not one of her posts
        expect(page.get_by_role("heading", level=1)).to_have_text("Pas un de vos postes")
        expect(page.get_by_text("Cette annonce n'est pas à l'un de vos postes")).to_be_visible()
        page.screenshot(path=str(shots / "console-broadcast-not-found.png"))
    finally:
        context.close()


def test_the_agents_dashboard_draws_their_posts_activity(
    live_app: LiveApp, browser: Browser, shots: Path
) -> None:
    context, page = log_in(live_app, browser, AGENT)
    try:
        page.get_by_role("link", name="Tableau de bord").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Tableau de bord")
        chart = page.locator("#chart-appointments")
        expect(chart.locator("svg rect").first).to_be_visible()
        expect(chart.get_by_role("row", name=re.compile("^2026-12-01 1"))).to_have_count(1)
        expect(page.locator("#chart-requests svg")).to_be_visible()
        page.screenshot(path=str(shots / "console-dashboard.png"), full_page=True)
        response = page.goto(live_app.url + "/console/dashboard?post=ACC")
        assert response is not None
        assert response.status == 404
    finally:
        context.close()


def test_an_administrator_creates_and_deactivates_an_account(
    live_app: LiveApp, browser: Browser, shots: Path
) -> None:
    context, page = log_in(live_app, browser, ADMIN)
    try:
        page.get_by_role("link", name="Comptes").click()
        page.get_by_label("Adresse e-mail").fill("nouvel.agent@consulat.bf")
        page.get_by_role("radio", name=re.compile("Agent")).check()
        page.get_by_role("checkbox", name=re.compile("BKE —")).check()
        page.get_by_label(re.compile("^Mot de passe initial")).fill("premier-jour-2026")
        page.get_by_role("button", name="Créer le compte").click()
        expect(page.get_by_role("status")).to_contain_text("nouvel.agent@consulat.bf créé")
        page.screenshot(path=str(shots / "console-account.png"), full_page=True)
        page.get_by_role("button", name="Désactiver le compte").click()
        expect(page.locator("#account-state")).to_have_text("désactivé")
    finally:
        context.close()


CONSOLE_PAGES = (
    "/console/appointments",
    "/console/requests",
    "/console/requests/new",
    "/console/posts/ABJ",
    "/console/broadcasts",
    "/console/broadcasts/new",
    "/console/dashboard",
    "/console/admin/staff",
)


@pytest.mark.skipif(not AXE.exists(), reason="axe-core is not installed: npm ci --prefix tests/axe")
def test_every_console_page_has_no_serious_accessibility_violation(
    live_app: LiveApp, browser: Browser, shots: Path
) -> None:
    from api import db
    from api.domain import broadcasts

    with db.write(live_app.engine) as conn:
        draft = broadcasts.create(
            conn,
            title="Brouillon",
            texts={"fr": "Bonjour"},
            segment=broadcasts.Segment(posts=["ABJ"]),
            created_by=None,
            now=NOW,
        )
    context, page = log_in(live_app, browser, ADMIN)
    found: dict[str, list[dict[str, Any]]] = {}
    try:
        for path in (*CONSOLE_PAGES, f"/console/broadcasts/{draft.id}", "/console/admin/staff/1"):
            page.goto(live_app.url + path)
            page.wait_for_load_state("networkidle")
            violations = axe_violations(page)
            if violations:
                found[path] = violations
            name = path.strip("/").replace("/", "-")
            page.screenshot(path=str(shots / f"axe-{name}.png"), full_page=True)
        page.get_by_role("button", name="Se déconnecter").click()
        page.goto(live_app.url + "/console/login")
        if violations := axe_violations(page):
            found["/console/login"] = violations
    finally:
        context.close()
    assert found == {}
