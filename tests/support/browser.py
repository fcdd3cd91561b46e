"""What the browser tests stand on: the real app served by uvicorn on 127.0.0.1 (SQLite demo
network in a temporary folder) with its worker against the fake Telegram and Twilio servers,
Debian's Chromium driven by Playwright, screenshots, logging in to the console, and axe-core.

A test module uses them by importing the fixtures (`from tests.support.browser import browser,
live_app, shots`) and marking itself with `pytestmark = BROWSER_TESTS`. Each module gets its own
live app (module scope), so modules do not see each other's data.

The app's clock is Tuesday 1 December 2026, 09:00 in Abidjan. Screenshots go to the test's
temporary folder, or to the folder named by `SCREENSHOT_DIR` when it is set (to look at them).
Accessibility is checked with axe-core (`tests/axe`: `npm ci --prefix tests/axe`), read from
disk and evaluated in the page: no CDN.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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
ADMIN = "admin@mae.gov.bf"
PASSWORD = "guichet-abidjan-2026"
AXE = Path(__file__).parent.parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
# Citizens of Abidjan's community: (channel, address, language, opted out)
COMMUNITY = (
    ("whatsapp", "+2250701000101", "fr", False),
    ("whatsapp", "+2250701000102", "en", False),
    ("telegram", "700100103", "fr", False),
    ("whatsapp", "+2250701000104", "fr", True),
)


@dataclass
class LiveApp:
    url: str
    engine: Engine
    appointment_id: int
    reference: str
    telegram: Any
    twilio: Any


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _prepare(engine: Engine) -> tuple[int, str]:
    """The demo network, an agent of ABJ, and one appointment at ABJ today at 10:00."""
    from api import db
    from api.domain.booking import BookingService
    from api.domain.staff import add_staff
    from api.models import ChannelIdentity, Citizen, utcnow
    from api.seed import seed_demo

    seed_demo(engine)
    citizen = sa.inspect(Citizen).local_table
    identity = sa.inspect(ChannelIdentity).local_table
    recently = utcnow() - timedelta(hours=1)  # the sender's clock: inside WhatsApp's window
    with db.write(engine) as conn:
        add_staff(conn, AGENT, "agent", ["ABJ"], PASSWORD)
        add_staff(conn, TRANSLATOR, "translator", [], PASSWORD, languages=["mos"])
        add_staff(conn, ADMIN, "admin", [], PASSWORD)
        for channel, address, lang, opted_out in COMMUNITY:
            member = conn.execute(
                sa.insert(citizen)
                .values(
                    phone=address if channel == "whatsapp" else None,
                    phone_verified=channel == "whatsapp",
                    country="CI",
                    lang=lang,
                    opted_out=opted_out,
                    created_at=NOW,
                )
                .returning(citizen.c.id)
            ).scalar_one()
            conn.execute(
                sa.insert(identity).values(
                    channel=channel, address=address, citizen_id=member, last_inbound_at=recently
                )
            )
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

    from tests.fakes import FakeTelegramAPI, FakeTwilioAPI

    telegram = FakeTelegramAPI(token="123456:TEST")
    twilio = FakeTwilioAPI()
    telegram.__enter__()
    twilio.__enter__()
    settings = Settings(
        database_url=url,
        public_base_url="http://127.0.0.1",
        simulator_enabled=True,
        telegram_bot_token=telegram.token,
        telegram_webhook_secret="s3cret-telegram",
        telegram_api_base_url=telegram.url,
        twilio_account_sid=twilio.account_sid,
        twilio_auth_token=twilio.auth_token,
        twilio_whatsapp_from="whatsapp:+14155238886",
        twilio_api_base_url=twilio.base_url,
    )
    app = create_app(settings, engine=engine)  # with its worker: broadcasts really leave
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
        yield LiveApp(
            f"http://127.0.0.1:{port}", engine, appointment_id, reference, telegram, twilio
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        twilio.__exit__(None, None, None)
        telegram.__exit__(None, None, None)
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


BROWSER_TESTS = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian's Chromium is not installed at /usr/bin/chromium (apt-get install chromium)",
    ),
]


def log_in(live_app: LiveApp, browser: Browser, email: str) -> tuple[Any, Page]:
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, locale="fr-FR", bypass_csp=True
    )
    page = context.new_page()
    page.goto(live_app.url + "/console/login")
    page.get_by_label("Adresse e-mail").fill(email)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Rendez-vous")
    return context, page


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """The serious and critical violations axe-core finds on the page."""
    page.evaluate(AXE.read_text(encoding="utf-8"))
    run = page.evaluate(
        "async () => { const r = await axe.run(document);"
        " return {passes: r.passes.length, violations: r.violations}; }"
    )
    assert run["passes"] > 10, "axe-core did not run"
    result = run["violations"]
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
        for v in result
        if v["impact"] in ("serious", "critical")
    ]
