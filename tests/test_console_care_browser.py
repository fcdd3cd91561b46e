"""The desk's care in a real browser (tests/support/browser.py): a closure that lists what it
will cancel before it does, then reopened; the weekly hours edited; an unknown console URL
answered by a console page; and the whole demo loop — a citizen in the web simulator asks for
a person, the agent answers from the console's inbox, the answer arrives in the simulator.
Every page passes axe-core."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from playwright.sync_api import Browser, expect

from tests.support.browser import (
    AGENT,
    BROWSER_TESTS,
    LiveApp,
    axe_violations,
    browser,
    live_app,
    log_in,
    shots,
)

pytestmark = BROWSER_TESTS
__all__ = ["browser", "live_app", "shots"]  # fixtures, used by name


def _book_on_the_15th(live_app: LiveApp) -> str:
    import sqlalchemy as sa

    from api import db
    from api.domain.booking import BookingService
    from api.domain.tables import table
    from api.models import Citizen

    citizen = table(Citizen)
    moment = datetime(2026, 11, 25, 12, tzinfo=UTC)
    with db.write(live_app.engine) as conn:
        citizen_id = conn.execute(
            sa.insert(citizen)
            .values(phone="+2250701000155", lang="fr", opted_out=False, created_at=moment)
            .returning(citizen.c.id)
        ).scalar_one()
        result = BookingService(conn).book(
            citizen_id,
            "ABJ",
            "passport",
            datetime(2026, 12, 15, 9, 30, tzinfo=UTC),
            "Mariam Zongo",
            moment,
        )
    assert result.appointment is not None, result.outcome
    return result.appointment.reference


def test_a_closure_is_confirmed_then_removed(
    live_app: LiveApp, browser: Browser, shots: Path
) -> None:
    reference = _book_on_the_15th(live_app)
    context, page = log_in(live_app, browser, AGENT)
    try:
        page.goto(live_app.url + "/console/posts/ABJ")
        page.get_by_label("Jour", exact=True).fill("2026-12-15")
        page.get_by_label("Motif").fill("Inventaire")
        page.get_by_role("button", name="Ajouter la fermeture").click()

        expect(page.get_by_role("heading", level=1)).to_have_text(
            "Fermer le mardi 15 décembre 2026 ?"
        )
        expect(page.locator("#closure-count")).to_contain_text("annulera 1 rendez-vous")
        expect(page.locator("#closure-appointments")).to_contain_text(reference)
        expect(page.locator("#closure-appointments")).to_contain_text("+225 07 •• •• •155")
        page.screenshot(path=str(shots / "console-closure-confirm.png"), full_page=True)
        assert axe_violations(page) == []

        page.get_by_role("button", name="Confirmer la fermeture").click()
        expect(page.get_by_role("status")).to_contain_text(
            "Fermeture du mardi 15 décembre 2026 enregistrée."
        )
        page.get_by_role("button", name="Rouvrir le mardi 15 décembre 2026").click()
        expect(page.get_by_role("status")).to_contain_text("de nouveau ouvert")
    finally:
        context.close()


def test_the_weekly_hours_are_edited_and_an_unknown_url_is_a_console_page(
    live_app: LiveApp, browser: Browser, shots: Path
) -> None:
    context, page = log_in(live_app, browser, AGENT)
    try:
        page.goto(live_app.url + "/console/posts/ABJ")
        saturday = page.get_by_label("samedi")
        saturday.fill("09:00-12:00")
        page.get_by_role("button", name="Enregistrer les horaires").click()
        expect(page.get_by_role("status")).to_contain_text("Horaires d'ouverture enregistrés.")
        expect(page.get_by_label("samedi")).to_have_value("09:00-12:00")
        page.screenshot(path=str(shots / "console-post-hours.png"), full_page=True)
        assert axe_violations(page) == []

        page.get_by_label("samedi").fill("")
        page.get_by_role("button", name="Enregistrer les horaires").click()
        expect(page.get_by_label("samedi")).to_have_value("")

        page.goto(live_app.url + "/console/nope")
        expect(page.get_by_role("heading", level=1)).to_have_text("Introuvable")
        expect(page.get_by_role("button", name="Se déconnecter")).to_be_visible()
        page.screenshot(path=str(shots / "console-unknown-url.png"), full_page=True)
        assert axe_violations(page) == []
    finally:
        context.close()


def test_an_agents_reply_arrives_in_the_simulator(
    live_app: LiveApp, browser: Browser, shots: Path
) -> None:
    phone = browser.new_context(viewport={"width": 390, "height": 844}, locale="fr-FR")
    chat = phone.new_page()
    context, desk = log_in(live_app, browser, AGENT)
    try:
        chat.goto(live_app.url + "/simulator")
        expect(chat.get_by_role("link", name="Console du personnel")).to_have_attribute(
            "href", "/console/"
        )
        expect(chat.get_by_role("link", name="Documentation de l'API")).to_be_visible()
        message = chat.get_by_label("Votre message")
        for text in ("Bonjour", "1", "7"):
            message.fill(text)
            message.press("Enter")
            expect(chat.locator(".bubble.user").last).to_contain_text(text)
            expect(chat.locator("#typing")).to_have_count(0)
        if "Bouaké" in chat.locator(".bubble.bot").last.inner_text():
            message.fill("1")
            message.press("Enter")
            expect(chat.locator("#typing")).to_have_count(0)
        message.fill("Mon passeport est-il prêt ?")
        message.press("Enter")
        expect(chat.locator(".bubble.bot").last).to_contain_text("répond")

        desk.goto(live_app.url + "/console/inbox")
        desk.get_by_role("link", name=re.compile(r"^Conversation \d+")).first.click()
        expect(desk.locator("#thread")).to_contain_text("Mon passeport est-il prêt ?")
        desk.get_by_label(re.compile("^Votre réponse")).fill(
            "Oui, il est prêt : venez le retirer demain matin."
        )
        desk.get_by_role("button", name="Envoyer").click()
        expect(desk.get_by_role("status")).to_contain_text("Message envoyé")

        arrived = chat.locator(".bubble.bot.pushed")
        expect(arrived).to_contain_text("venez le retirer demain matin", timeout=15_000)
        expect(arrived).to_have_count(1)
        chat.screenshot(path=str(shots / "simulator-agent-reply.png"), full_page=True)
        assert axe_violations(chat) == []
    finally:
        context.close()
        phone.close()
