"""The desk's search box and walk-ins in a real browser (tests/support/browser.py): a
reference typed loosely, a local phone number, a name without its accents; a walk-in booked
among the free seats and its printable receipt; axe-core on the new pages."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from api.domain.search import mask_phone
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

WALK_IN_PHONE = "+2250708091011"


def _search(page: Page, text: str) -> None:
    box = page.get_by_role("searchbox", name="Rechercher un rendez-vous, un dossier")
    box.fill(text)
    box.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Recherche")


def _book_walk_in(page: Page, live_app: LiveApp, shots: Path) -> str:
    page.get_by_role("link", name="Rendez-vous au guichet").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Rendez-vous au guichet")
    page.get_by_label("Service", exact=True).select_option(label="Passeport")
    page.get_by_role("button", name="Voir les heures libres").click()
    times = page.get_by_role("group", name="Heure (heure locale du poste)")
    expect(times.get_by_role("radio").first).to_be_checked()
    page.screenshot(path=str(shots / "console-walk-in.png"), full_page=True)
    assert axe_violations(page) == []
    page.get_by_label("Nom complet").fill("Mariam Ouédraogo")
    page.get_by_label("Téléphone (facultatif)").fill("07 08 09 10 11")
    page.get_by_role("button", name="Réserver et imprimer le reçu").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Votre rendez-vous")
    reference = page.locator(".receipt .reference").inner_text()
    assert re.fullmatch(r"RDV-[0-9A-HJKMNP-TV-Z]{6}", reference)
    return reference


def test_a_walk_in_is_booked_its_receipt_printed_and_the_desk_finds_it(
    live_app: LiveApp, browser: Browser, shots: Path
) -> None:
    context, page = log_in(live_app, browser, AGENT)
    try:
        reference = _book_walk_in(page, live_app, shots)
        receipt = page.locator(".receipt")
        expect(receipt).to_contain_text("Consulat général, Abidjan")
        expect(receipt).to_contain_text("Passeport")
        expect(receipt).to_contain_text("heure locale")
        expect(receipt).to_contain_text("Documents à apporter")
        expect(receipt).to_contain_text("certificat de nationalité")  # the service's facts
        expect(page.locator("#appointment-proof")).to_be_empty()  # no QR proof in this tree
        page.screenshot(path=str(shots / "console-receipt.png"), full_page=True)
        assert axe_violations(page) == []
        page.emulate_media(media="print")  # on paper: the receipt alone
        expect(page.locator("header.topbar")).to_be_hidden()
        expect(page.get_by_role("button", name="Imprimer")).to_be_hidden()
        expect(receipt).to_be_visible()
        page.emulate_media(media="screen")

        # by the local number as the citizen says it: found, and shown masked
        _search(page, "07 08 09 10 11")
        found = page.get_by_role("region", name=re.compile("^Rendez-vous"))
        expect(found.get_by_role("link", name=reference)).to_be_visible()
        expect(found).to_contain_text(mask_phone(WALK_IN_PHONE))
        for table in page.locator("main table").all():  # what the desk typed, never the number
            assert "708091011" not in table.inner_text().replace(" ", "")
        expect(page.get_by_role("region", name=re.compile("^Citoyens"))).to_contain_text("WhatsApp")

        # by a name typed without its accents, in part
        _search(page, "OUEDRAOGO mar")
        expect(page.get_by_role("link", name=reference)).to_be_visible()
        page.screenshot(path=str(shots / "console-search.png"), full_page=True)
        assert axe_violations(page) == []

        # the day's list: channel, language and the masked number of the walk-in
        page.get_by_role("link", name=reference).click()
        row = page.locator(f"#rdv-{reference}")
        expect(row).to_contain_text("WhatsApp")
        expect(row).to_contain_text(mask_phone(WALK_IN_PHONE))
        assert axe_violations(page) == []
    finally:
        context.close()


def test_a_reference_typed_loosely_finds_the_appointment(
    live_app: LiveApp, browser: Browser
) -> None:
    context, page = log_in(live_app, browser, AGENT)
    try:
        code = live_app.reference.removeprefix("RDV-").lower()
        _search(page, f"rdv {code[:3]} {code[3:]}")
        link = page.get_by_role("link", name=live_app.reference)
        expect(link).to_be_visible()
        expect(page.locator("main")).to_contain_text("Salif Compaoré")
        expect(page.locator("main")).to_contain_text("guichet")  # no channel: the desk
        link.click()
        expect(page.locator(f"#rdv-{live_app.reference}")).to_be_visible()

        _search(page, "personne de ce nom")
        expect(page.get_by_role("status")).to_contain_text("Rien trouvé")
        assert axe_violations(page) == []
    finally:
        context.close()
