"""A post's draws in a real browser (tests/support/browser.py): Abidjan's agent opens a draw
for a mission day, a refused one says why, citizens register, the draw runs at the close and
the page shows its seed and who is offered a seat; another draw is cancelled; another post's
draws are not found; the page passes axe-core."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.browser import (
    AGENT,
    AXE,
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

CLOSE = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)  # Abidjan is on UTC
REGISTERED_AT = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def _open(page: Page, service: str, closes: str, first: str, last: str) -> None:
    page.get_by_label("Service").select_option(service)
    page.get_by_label("Inscriptions : ouverture (heure locale)").fill("2026-12-01T09:00")
    page.get_by_label("Inscriptions : clôture et tirage (heure locale)").fill(closes)
    page.get_by_label("Période tirée : premier jour").fill(first)
    page.get_by_label("Période tirée : dernier jour").fill(last)
    page.get_by_role("button", name="Ouvrir le tirage").click()


def _register(live_app: LiveApp, draw_id: int) -> None:
    """Two citizens of the community register (as the chat would)."""
    import sqlalchemy as sa

    from api import db
    from api.models import ChannelIdentity
    from api.world import SqlWorld
    from flows.world import DrawOutcome

    identity = sa.inspect(ChannelIdentity).local_table
    with db.write(live_app.engine) as conn:
        citizens = conn.execute(
            sa.select(identity.c.citizen_id)
            .where(identity.c.channel == "whatsapp")
            .order_by(identity.c.citizen_id)
            .limit(2)
        ).scalars()
        for citizen, name in zip(citizens, ("Awa Ouédraogo", "Issa Sawadogo"), strict=True):
            world = SqlWorld(conn)
            assert world.register_for_draw(citizen, draw_id, name, REGISTERED_AT) is (
                DrawOutcome.registered
            )


def _seed(live_app: LiveApp, draw_id: int) -> str:
    import sqlalchemy as sa

    from api import db
    from api.models import Draw

    draw = sa.inspect(Draw).local_table
    with db.read(live_app.engine) as conn:
        seed = conn.execute(sa.select(draw.c.seed).where(draw.c.id == draw_id)).scalar_one()
    assert seed
    return str(seed)


@pytest.mark.skipif(not AXE.exists(), reason="axe-core missing: npm ci --prefix tests/axe")
def test_open_a_draw_see_its_result_and_cancel_another(
    live_app: LiveApp, browser: Browser, shots: Path
) -> None:
    from api.domain import draws

    context, page = log_in(live_app, browser, AGENT)
    try:
        page.goto(live_app.url + "/console/posts/ABJ")
        page.get_by_role("link", name="Tirages au sort").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Tirages au sort")
        expect(page.get_by_text("Aucun tirage au sort pour ce poste.")).to_be_visible()

        # A period that starts before the registration closes is refused, and says why.
        _open(page, "passport", "2026-12-04T18:00", "2026-12-03", "2026-12-03")
        expect(page.get_by_role("alert")).to_contain_text("commencer après la clôture")

        _open(page, "passport", "2026-12-04T18:00", "2026-12-14", "2026-12-14")
        expect(page.get_by_role("status")).to_contain_text("Tirage au sort ouvert pour passport")
        expect(page.locator("section.draw h2").first).to_contain_text("Passeport : du 14/12/2026")
        card = page.locator("section.draw").first
        expect(card).to_have_attribute("data-status", "open")
        expect(card).to_contain_text("du 01/12/2026 09:00 au 04/12/2026 18:00")
        draw_id = int(str(card.get_attribute("id")).removeprefix("draw-"))

        _register(live_app, draw_id)
        assert draws.run(live_app.engine, CLOSE) == 1  # the scheduler's job, at the close
        page.reload()
        card = page.locator(f"#draw-{draw_id}")
        expect(card).to_have_attribute("data-status", "drawn")
        expect(card.locator("code")).to_have_text(_seed(live_app, draw_id))
        expect(card.locator("tbody tr")).to_have_count(2)
        expect(card.locator("tbody tr[data-result='offered']")).to_have_count(2)  # seats enough
        expect(card.get_by_role("button", name="Annuler ce tirage")).to_have_count(0)
        if violations := axe_violations(page):
            pytest.fail(f"axe: {violations}")
        page.screenshot(path=str(shots / "console-draws.png"), full_page=True)

        # Another draw, for cnib, cancelled before it runs.
        _open(page, "cnib", "2026-12-05T12:00", "2026-12-16", "2026-12-17")
        other = page.locator("section.draw[data-status='open']")
        expect(other).to_have_count(1)
        other.get_by_role("button", name="Annuler ce tirage").click()
        expect(page.get_by_role("status")).to_contain_text("Tirage annulé")
        expect(page.locator("section.draw[data-status='cancelled']")).to_have_count(1)

        # Another post's draws do not exist for Abidjan's agent.
        response = page.goto(live_app.url + "/console/posts/ACC/draws")
        assert response is not None
        assert response.status == 404
    finally:
        context.close()
