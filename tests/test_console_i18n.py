"""The console in French first, English second: its words through a gettext catalog
(api.console_i18n), chosen with the switch in its top bar or by the browser, and checked by
`diaspora-bot i18n check` like the citizens' catalogs."""

from __future__ import annotations

import shutil
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from api import console_i18n
from api.i18n_tools import project_root
from tests.test_console import console, csrf, login, make_staff

__all__ = ["console"]  # the fixture, used by name
ADMIN = "admin@mae.gov.bf"


def _switch(client: TestClient, lang: str, page: str) -> None:
    form = client.get(page)
    client.post(
        "/console/language",
        data={"lang": lang, "csrf": csrf(form.text), "next": page},
        follow_redirects=False,
    )


def test_the_console_speaks_french_until_english_is_chosen(
    console: tuple[TestClient, Engine],
) -> None:
    client, engine = console
    assert login(client, make_staff(engine, ADMIN, "admin")).status_code == 303
    page = client.get("/console/appointments").text
    assert '<html lang="fr">' in page
    assert "Tableau de bord" in page

    _switch(client, "en", "/console/appointments")
    page = client.get("/console/appointments").text
    assert '<html lang="en">' in page
    assert "Dashboard" in page
    assert "Log out" in page
    assert "Tableau de bord" not in page

    _switch(client, "fr", "/console/appointments")
    assert "Tableau de bord" in client.get("/console/appointments").text


def test_the_browsers_language_is_the_default_and_the_login_page_follows_it(
    console: tuple[TestClient, Engine],
) -> None:
    client, _ = console
    english = client.get("/console/login", headers={"Accept-Language": "en-GB,en;q=0.8"})
    assert '<html lang="en">' in english.text
    other = client.get("/console/login", headers={"Accept-Language": "de-DE,de;q=0.9"})
    assert '<html lang="fr">' in other.text


def test_a_switch_without_its_csrf_token_or_to_an_unknown_language_changes_nothing(
    console: tuple[TestClient, Engine],
) -> None:
    client, engine = console
    login(client, make_staff(engine, ADMIN, "admin"))
    client.post("/console/language", data={"lang": "en", "csrf": "forged"})
    assert '<html lang="fr">' in client.get("/console/appointments").text
    page = client.get("/console/appointments")
    client.post("/console/language", data={"lang": "xx", "csrf": csrf(page.text)})
    assert '<html lang="fr">' in client.get("/console/appointments").text


def test_the_switch_never_leads_to_another_site(console: tuple[TestClient, Engine]) -> None:
    client, _ = console
    page = client.get("/console/login")
    answer = client.post(
        "/console/language",
        data={"lang": "en", "csrf": csrf(page.text), "next": "https://evil.example/"},
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/console/appointments"


def _copy(tmp_path: Path) -> Path:
    root = project_root()
    shutil.copytree(root / "locales", tmp_path / "locales")
    shutil.copytree(root / console_i18n.TEMPLATES, tmp_path / console_i18n.TEMPLATES)
    return tmp_path


def test_the_check_reports_an_untranslated_or_mistranslated_console_text(
    tmp_path: Path,
) -> None:
    root = _copy(tmp_path)
    locales = root / "locales"
    assert console_i18n.check(root, locales) == []

    base = root / console_i18n.TEMPLATES / "base.html"
    base.write_text(
        base.read_text(encoding="utf-8").replace(
            "</main>", '{{ _("%(count)s rendez-vous aujourd\'hui", count=1) }}</main>'
        ),
        encoding="utf-8",
    )
    assert any("out of date" in p for p in console_i18n.check(root, locales))
    console_i18n.update(root, locales)
    problems = console_i18n.check(root, locales)
    assert problems == [
        'locales/en/LC_MESSAGES/console.po: "%(count)s rendez-vous aujourd\'hui": empty'
    ]

    catalog = console_i18n.catalog_file("en", locales)
    catalog.write_text(
        catalog.read_text(encoding="utf-8").replace(
            'msgid "%(count)s rendez-vous aujourd\'hui"\nmsgstr ""',
            'msgid "%(count)s rendez-vous aujourd\'hui"\nmsgstr "%(n)s appointments today"',
        ),
        encoding="utf-8",
    )
    assert any("placeholders differ" in p for p in console_i18n.check(root, locales))
