"""The proof of appointment in a real browser (tests/support/browser.py): the agent at the
desk checks a citizen in by the QR code's content (typed, or typed by a scanner that ends with
Enter), a forged code is refused and changes nothing, another day's and another post's say
so; and the web simulator shows the QR code in the confirmation's bubble."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from playwright.sync_api import Browser, Page, expect

from api import db
from api.domain import appointment_proof as proof
from api.domain.booking import BookingService
from api.models import Citizen
from tests.support.browser import (
    AGENT,
    BROWSER_TESTS,
    NOW,
    LiveApp,
    axe_violations,
    browser,
    live_app,
    log_in,
    shots,
)

pytestmark = BROWSER_TESTS
__all__ = ["browser", "live_app", "shots"]  # fixtures, used by name

# The live app signs with its process's own key (no PROOF_SECRET nor CONSOLE_SECRET set), and
# runs in this process: the same key.
KEY = proof.proof_key(None, None)


def _status(live_app: LiveApp, reference: str) -> str:
    with live_app.engine.connect() as conn:
        return str(
            conn.execute(
                sa.text("SELECT status FROM appointment WHERE reference = :r"), {"r": reference}
            ).scalar_one()
        )


def _book(live_app: LiveApp, post: str, starts_at: datetime) -> str:
    """Another appointment (a CNIB) at `post`; its reference."""
    citizen = sa.inspect(Citizen).local_table
    with db.write(live_app.engine) as conn:
        citizen_id = conn.execute(
            sa.insert(citizen)
            .values(phone=None, phone_verified=False, lang="fr", opted_out=False, created_at=NOW)
            .returning(citizen.c.id)
        ).scalar_one()
        result = BookingService(conn).book(
            citizen_id,
            post,
            "cnib",
            starts_at,
            "Mariam Sawadogo",
            datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
        )
    assert result.appointment is not None, result.outcome
    return result.appointment.reference


def _scan(page: Page, code: str) -> None:
    """What a USB scanner does: type the code into the focused field, then Enter."""
    field = page.get_by_label("Code QR du rendez-vous (scanné ou tapé)")
    field.click()
    field.fill("")
    page.keyboard.type(code)
    page.keyboard.press("Enter")


def test_the_desk_checks_in_by_the_qr_code_and_refuses_a_forged_one(
    live_app: LiveApp, browser: Browser, shots: Path
) -> None:
    context, page = log_in(live_app, browser, AGENT)
    try:
        row = page.locator(f"#rdv-{live_app.reference}")
        expect(row).to_have_attribute("data-status", "booked")
        token = proof.token(KEY, live_app.reference)
        reference, mac = token.split(".")

        # altered by one character: refused, nothing noted
        altered = f"{reference}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}"
        _scan(page, altered)
        expect(page.get_by_role("alert")).to_contain_text("Code non valide")
        expect(page.locator(f"#rdv-{live_app.reference}")).to_have_attribute(
            "data-status", "booked"
        )
        assert _status(live_app, live_app.reference) == "booked"
        # ready for the next code
        expect(page.get_by_label("Code QR du rendez-vous (scanné ou tapé)")).to_be_focused()
        page.screenshot(path=str(shots / "console-proof-refused.png"), full_page=True)

        # another day's genuine proof says which day
        thursday = _book(live_app, "ABJ", datetime(2026, 12, 3, 9, 0, tzinfo=UTC))
        _scan(page, proof.token(KEY, thursday))
        expect(page.get_by_role("alert")).to_contain_text(
            f"{thursday} : il est prévu le jeudi 3 décembre 2026, pas aujourd'hui"
        )
        assert _status(live_app, thursday) == "booked"

        # Accra's, today: not this agent's to check in
        accra = _book(live_app, "ACC", datetime(2026, 12, 1, 14, 0, tzinfo=UTC))
        _scan(page, proof.token(KEY, accra))
        expect(page.get_by_role("alert")).to_contain_text(
            f"{accra} : ce n'est pas un rendez-vous de vos postes"
        )
        assert _status(live_app, accra) == "booked"

        # the genuine one, typed by hand in lower case: checked in, the row shows it
        _scan(page, token.lower())
        expect(page.get_by_role("status")).to_contain_text(
            f"Code valide : rendez-vous {live_app.reference} de 10:00, présence notée"
        )
        row = page.locator(f"#rdv-{live_app.reference}")
        expect(row).to_have_attribute("data-status", "attended")
        assert _status(live_app, live_app.reference) == "attended"
        page.screenshot(path=str(shots / "console-proof-checked-in.png"), full_page=True)
        assert axe_violations(page) == []

        # a second scan of the same code
        _scan(page, token)
        expect(page.get_by_role("alert")).to_contain_text("la présence est déjà notée")
        with live_app.engine.connect() as conn:
            audited = conn.execute(
                sa.text(
                    "SELECT count(*) FROM audit_log WHERE action = 'attended' AND entity_id = :id"
                ),
                {"id": str(live_app.appointment_id)},
            ).scalar_one()
        assert audited == 1
    finally:
        context.close()


def test_the_web_simulator_shows_the_qr_code_of_a_booking(
    live_app: LiveApp, browser: Browser, shots: Path
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="fr-FR")
    page = context.new_page()
    try:
        page.goto(live_app.url + "/simulator")
        page.get_by_label("Numéro de téléphone").fill("+2250701000222")
        answers = page.locator(".bubble.bot:not(.typing)")
        for text in ("Bonjour", "1", "1", "1", "1", "1", "1", "Awa Ouédraogo", "1"):
            count = answers.count()
            page.get_by_label("Votre message").fill(text)
            page.keyboard.press("Enter")
            expect(answers).to_have_count(count + 1)
        bubble = answers.last
        expect(bubble).to_contain_text("RDV-")
        image = bubble.locator("img.media")
        expect(image).to_have_attribute("alt", "Code QR du rendez-vous")
        expect(image).to_have_attribute("src", re.compile(r"^/proof/RDV-[^/]+/qr\.png$"))
        page.wait_for_function(
            "() => { const i = document.querySelector('.bubble.bot img.media');"
            " return i && i.complete && i.naturalWidth > 100; }"
        )
        page.screenshot(path=str(shots / "simulator-proof.png"), full_page=True)
    finally:
        context.close()
