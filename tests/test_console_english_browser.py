"""The console in English, and a draft broadcast edited, in a real browser (tests/support/
browser.py): an administrator switches the console to English and walks every page of the
accessibility test — no French word of the console's own shows, axe-core finds nothing serious
in English either; then a draft opens in the composer filled in, is changed, saved and sent."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from tests.support.browser import (
    ADMIN,
    AXE,
    BROWSER_TESTS,
    NOW,
    LiveApp,
    axe_violations,
    browser,
    live_app,
    log_in,
    shots,
)
from tests.test_console_browser import CONSOLE_PAGES

pytestmark = BROWSER_TESTS
__all__ = ["browser", "live_app", "shots"]  # fixtures, used by name

# Words of the console's navigation, headings, buttons and labels; none is in the seeded data.
FRENCH = re.compile(
    r"\b(Tableau de bord|Rendez-vous|Dossiers?|Horaires|Annonces?|Limites|Citoyens|Traductions"
    r"|Comptes|Se déconnecter|Afficher|Enregistrer|Rechercher|Statut|Poste|Destinataires"
    r"|Brouillon|Aujourd'hui|Jour suivant|Nouvelle|Nouveau|Fermetures|Annuler|Envoyer|Rôle"
    r"|Téléphone|décembre|lundi|mardi|Mot de passe|Adresse e-mail|Connexion|Télécharger)\b"
)


def _draft(live_app: LiveApp, title: str) -> int:
    from api import db
    from api.domain import broadcasts

    with db.write(live_app.engine) as conn:
        record = broadcasts.create(
            conn,
            title=title,
            texts={"fr": "Bonjour", "en": "Hello"},
            segment=broadcasts.Segment(posts=["ABJ"], channels=["whatsapp"]),
            created_by=None,
            now=NOW,
        )
    return record.id


@pytest.mark.skipif(not AXE.exists(), reason="axe-core is not installed: npm ci --prefix tests/axe")
def test_the_console_in_english_shows_no_french_and_stays_accessible(
    live_app: LiveApp, browser: Browser, shots: Path
) -> None:
    draft = _draft(live_app, "Mission")
    context, page = log_in(live_app, browser, ADMIN)
    found: dict[str, list[dict[str, Any]]] = {}
    french: dict[str, list[str]] = {}
    try:
        page.get_by_role("button", name="English", exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Appointments")
        expect(page.locator("html")).to_have_attribute("lang", "en")
        for path in (*CONSOLE_PAGES, f"/console/broadcasts/{draft}", "/console/admin/staff/1"):
            page.goto(live_app.url + path)
            page.wait_for_load_state("networkidle")
            expect(page.locator("html")).to_have_attribute("lang", "en")
            if words := FRENCH.findall(page.inner_text("body")):
                french[path] = sorted(set(words))
            if violations := axe_violations(page):
                found[path] = violations
            name = path.strip("/").replace("/", "-")
            page.screenshot(path=str(shots / f"english-{name}.png"), full_page=True)
        page.get_by_role("button", name="Log out").click()
        page.goto(live_app.url + "/console/login")
        expect(page.get_by_role("heading", level=1)).to_have_text("Log in")
        if words := FRENCH.findall(page.inner_text("body")):
            french["/console/login"] = sorted(set(words))
        if violations := axe_violations(page):
            found["/console/login"] = violations
        page.screenshot(path=str(shots / "english-console-login.png"), full_page=True)
    finally:
        context.close()
    assert french == {}
    assert found == {}


def test_an_administrator_edits_a_draft_then_sends_it(
    live_app: LiveApp, browser: Browser, shots: Path
) -> None:
    draft = _draft(live_app, "Mission à corriger")
    context, page = log_in(live_app, browser, ADMIN)
    try:
        page.goto(f"{live_app.url}/console/broadcasts/{draft}")
        page.get_by_role("link", name="Modifier le brouillon").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Modifier le brouillon")
        expect(page.get_by_label("Titre")).to_have_value("Mission à corriger")
        expect(page.get_by_label(re.compile("^Texte — Français"))).to_have_value("Bonjour")
        expect(page.get_by_label(re.compile("^Texte — English"))).to_have_value("Hello")
        expect(page.get_by_role("checkbox", name=re.compile("ABJ —"))).to_be_checked()
        expect(page.get_by_role("checkbox", name="WhatsApp")).to_be_checked()
        expect(page.locator("#preview-en")).to_have_text("Hello")
        expect(page.locator('#audience-count [data-count="total"]')).not_to_have_text("—")
        if AXE.exists():
            assert axe_violations(page) == []
        page.screenshot(path=str(shots / "console-broadcast-edit.png"), full_page=True)

        page.get_by_label("Titre").fill("Mission consulaire à Bouaké")
        page.get_by_label(re.compile("^Texte — Français")).fill("Mission à Bouaké le 14.")
        page.get_by_label(re.compile("^Texte — English")).fill("")
        page.get_by_role("button", name="Enregistrer le brouillon").click()

        expect(page.get_by_role("heading", level=1)).to_have_text("Mission consulaire à Bouaké")
        expect(page.get_by_role("status")).to_contain_text("modifié")
        expect(page.locator(".phone-bubble")).to_have_text(["Mission à Bouaké le 14."])
        page.get_by_role("button", name="Envoyer l'annonce").click()
        expect(page.locator("#progress-percent")).to_have_text("100 %", timeout=60_000)
        expect(page.get_by_role("link", name="Modifier le brouillon")).to_have_count(0)
        page.goto(f"{live_app.url}/console/broadcasts/{draft}/edit")
        expect(page.get_by_role("alert")).to_contain_text("Seul un brouillon se modifie")
        page.screenshot(path=str(shots / "console-broadcast-not-editable.png"), full_page=True)
    finally:
        context.close()
    sent = [m.get("Body") for m in live_app.twilio.sent_messages()]
    assert "Mission à Bouaké le 14." in sent
    assert "Bonjour" not in sent
    assert "Hello" not in sent
