"""The web simulator and the staff console in a real browser: Debian's Chromium driven by
Playwright, against the real app served by uvicorn on 127.0.0.1 (SQLite demo network in a
temporary folder). Screenshots go to the test's temporary folder, or to the folder named by
`SCREENSHOT_DIR` when it is set (to look at them).

The app's clock is Tuesday 1 December 2026, 09:00 in Abidjan.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy.engine import Engine, make_url

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
AGENT = "awa.ouedraogo@consulat.bf"
TRANSLATOR = "rasmata.kabore@asso-bf.org"
PASSWORD = "guichet-abidjan-2026"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian's Chromium is not installed at /usr/bin/chromium (apt-get install chromium)",
    ),
]


@dataclass
class LiveApp:
    url: str
    engine: Engine
    appointment_id: int
    reference: str


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _prepare(engine: Engine) -> tuple[int, str]:
    """The demo network, an agent of ABJ, and one appointment at ABJ today at 10:00."""
    from api import db
    from api.domain.booking import BookingService
    from api.domain.staff import add_staff
    from api.models import Citizen
    from api.seed import seed_demo

    seed_demo(engine)
    citizen = sa.inspect(Citizen).local_table
    with db.write(engine) as conn:
        add_staff(conn, AGENT, "agent", ["ABJ"], PASSWORD)
        add_staff(conn, TRANSLATOR, "translator", [], PASSWORD, languages=["mos"])
        citizen_id = conn.execute(
            sa.insert(citizen)
            .values(phone=None, phone_verified=False, lang="fr", opted_out=False, created_at=NOW)
            .returning(citizen.c.id)
        ).scalar_one()
        result = BookingService(conn).book(
            citizen_id,
            "ABJ",
            "passport",
            datetime(2026, 12, 1, 10, 0, tzinfo=UTC),
            "Salif Compaoré",
            datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
        )
    assert result.appointment is not None, result.outcome
    return result.appointment.id, result.appointment.reference


@pytest.fixture(scope="module")
def live_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    import uvicorn

    from api import migrate
    from api.app import create_app
    from api.db import create_engine
    from api.settings import Settings

    folder = tmp_path_factory.mktemp("live")
    url = f"sqlite:///{folder / 'app.db'}"
    engine = create_engine(make_url(url))
    migrate.upgrade(engine)
    appointment_id, reference = _prepare(engine)

    settings = Settings(
        database_url=url, public_base_url="http://127.0.0.1", simulator_enabled=True
    )
    app = create_app(settings, engine=engine, run_worker=False)
    app.state.clock = lambda: NOW
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", ws="none", access_log=False
        )
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield LiveApp(f"http://127.0.0.1:{port}", engine, appointment_id, reference)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


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
