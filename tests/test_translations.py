"""Translations reviewed by their speakers: the staff API, the checks on save, the bot's use
of a reviewed text at its next turn on every channel and in every process."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from api.db import write
from api.domain.staff import add_staff, issue_token
from api.domain.translations import SqlOverlay
from api.models import utcnow
from bot.i18n import Renderer
from flows.messages import msg
from tests.fakes.twilio_api import inbound_whatsapp_form
from tests.support.channels import PUBLIC_BASE_URL
from tests.support.offline import offline  # noqa: F401  (fixture)
from tests.support.staff_api import StaffApi, staff_api
from tests.test_telegram import TelegramUser
from tests.test_whatsapp import NOW, Phone

pytestmark = pytest.mark.usefixtures("offline")

PROBLEM = "application/problem+json"
KEY = "menu.main.question"


def translator_token(engine: Engine, *langs: str) -> str:
    email = f"translator-{uuid.uuid4().hex[:8]}@test.bf"
    with write(engine) as conn:
        add_staff(conn, email, "translator", [], None, now=utcnow(), languages=langs)
        return issue_token(conn, email, utcnow())


@pytest.fixture
def api(demo_engine: Engine) -> StaffApi:
    result = staff_api(demo_engine)
    result.tokens["mos"] = translator_token(demo_engine, "mos", "en")
    return result


def put(api: StaffApi, lang: str, key: str, who: str = "mos", **body: Any) -> Any:
    return api.call("PUT", f"/translations/{lang}/{key}", who, json=body)


def test_a_translator_reviews_their_languages_only(api: StaffApi) -> None:
    listed = api.get("/translations/mos", who="mos")
    assert listed.status_code == 200, listed.text
    body = listed.json()
    item = next(i for i in body["items"] if i["key"] == KEY)
    assert item["status"] == "draft"
    assert item["source"].startswith("Que souhaitez-vous faire")
    assert {"key", "source", "text", "status"} <= set(item)

    for who, lang in (("mos", "dyu"), ("acc", "mos")):
        refused = api.get(f"/translations/{lang}", who=who)
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith(PROBLEM)
    assert api.get("/translations/dyu", who="admin").status_code == 200


def test_approving_moves_the_entry_to_reviewed_and_is_audited(api: StaffApi) -> None:
    current = next(
        i for i in api.get("/translations/mos", who="mos").json()["items"] if i["key"] == KEY
    )
    saved = put(api, "mos", KEY, text=current["text"], reviewed=True, comment="ok")
    assert saved.status_code == 200, saved.text
    assert saved.json()["status"] == "reviewed"
    reviewed = api.get("/translations/mos?status=reviewed", who="mos").json()["items"]
    assert KEY in {i["key"] for i in reviewed}
    drafts = api.get("/translations/mos?status=draft", who="mos").json()["items"]
    assert KEY not in {i["key"] for i in drafts}
    audit = api.get("/audit?entity=translation").json()["items"]
    assert any(row["action"] == "translation.review" for row in audit)


def test_a_missing_or_extra_placeholder_is_refused_with_the_reason(api: StaffApi) -> None:
    key = "booking.day.question"  # "… {service} …"
    missing = put(api, "en", key, text="Which day?", reviewed=True)
    assert missing.status_code == 422
    assert "{service}" in missing.json()["detail"]
    extra = put(api, "en", key, text="Which day for {service} at {post}?", reviewed=True)
    assert extra.status_code == 422
    assert "{post}" in extra.json()["detail"]
    too_long = put(api, "en", key, text="{service} " + "x" * 1700, reviewed=True)
    assert too_long.status_code == 422
    assert "WhatsApp" in too_long.json()["detail"]
    assert put(api, "fr", key, who="admin", text="{service}", reviewed=True).status_code == 422


def test_a_reviewed_text_is_used_in_another_process_within_its_poll(demo_engine: Engine) -> None:
    other = Renderer(overlay=SqlOverlay(demo_engine), poll_seconds=0)
    before = other.render(msg(KEY), "en")
    api = staff_api(demo_engine)
    assert (
        put(api, "en", KEY, who="admin", text="What now? 1 to 6.", reviewed=True).status_code == 200
    )
    assert other.render(msg(KEY), "en") == "What now? 1 to 6."
    assert before != "What now? 1 to 6."


def test_the_next_turn_uses_the_reviewed_text_on_every_channel(
    demo_engine: Engine, app_factory: Any
) -> None:
    with app_factory(demo_engine, now=NOW.isoformat()) as (client, fakes):
        token = translator_token(demo_engine, "en")
        response = client.put(
            f"/api/v1/translations/en/{KEY}",
            json={"text": "Reviewed: what would you like? Reply 1 to 6.", "reviewed": True},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200, response.text

        whatsapp = Phone(client, fakes)
        assert any("Reviewed: what would you like?" in m for m in whatsapp.send("Hello"))

        telegram = TelegramUser(client, fakes)
        sent = telegram.say("Hello")
        assert any("Reviewed: what would you like?" in m["text"] for m in sent)


# --- the console ------------------------------------------------------------------------------


def test_a_translator_reviews_in_the_console(demo_engine: Engine, app_factory: Any) -> None:
    from tests.test_console import PASSWORD, csrf, login

    email = f"traductrice-{uuid.uuid4().hex[:6]}@test.bf"
    with write(demo_engine) as conn:
        add_staff(conn, email, "translator", [], PASSWORD, now=utcnow(), languages=["mos"])
    with app_factory(demo_engine, now=NOW.isoformat()) as (client, _fakes):
        client.base_url = "https://testserver"
        assert login(client, email).status_code == 303
        home = client.get("/console/appointments")
        assert home.url.path == "/console/translations"
        assert "Mooré" in home.text
        assert "Dioula" not in home.text
        assert client.get("/console/translations/dyu").status_code == 404

        listing = client.get("/console/translations/mos?status=draft")
        assert KEY in listing.text
        page = client.get(f"/console/translations/mos/{KEY}")
        assert page.status_code == 200
        assert "Que souhaitez-vous faire" in page.text  # the French source
        assert "What would you like to do" in page.text  # the English
        assert "flows/menu.py" in page.text  # where it appears
        assert 'class="phone"' in page.text
        passport = client.get("/console/translations/mos/service.passport")
        assert "passeport = " in passport.text  # the glossary term it uses

        refused = client.post(
            "/console/translations/mos/booking.day.question",
            data={"text": "Rasem?", "action": "approve", "csrf": csrf(page.text)},
        )
        assert "Manquantes : {service}" in refused.text
        approved = client.post(
            f"/console/translations/mos/{KEY}",
            data={"text": "Y rat bõe? 1-6.", "comment": "relu", "csrf": csrf(page.text)},
        )
        assert "Traduction approuvée" in approved.text
        reviewed = client.get("/console/translations/mos?status=reviewed")
        assert KEY in reviewed.text
        overview = client.get("/console/translations")
        assert "<progress" in overview.text


# --- export and import ------------------------------------------------------------------------


def test_export_then_import_round_trips(demo_sqlite: Engine, tmp_path: Path) -> None:
    from api.domain.audit import staff_write
    from api.domain.staff import staff_for_token
    from api.domain.translations import catalogs, list_translations, save_translation
    from api.i18n_review import export, import_catalogs
    from api.i18n_tools import _read

    locales = tmp_path / "locales"
    shutil.copytree(Path(__file__).resolve().parent.parent / "locales", locales)
    token = translator_token(demo_sqlite, "mos")
    with write(demo_sqlite) as conn:
        translator = staff_for_token(conn, token, utcnow())
    assert translator is not None
    with staff_write(demo_sqlite, translator, utcnow()) as tx:
        save_translation(tx, "mos", KEY, "Y rat bõe? 1-6.", reviewed=True, root=locales)

    (report,) = [r for r in export(demo_sqlite, locales) if r.lang == "mos"]
    assert (report.written, report.reviewed) == (1, 1)
    po = locales / "mos" / "LC_MESSAGES" / "messages.po"
    exported = _read(po)
    assert exported[KEY].string == "Y rat bõe? 1-6."
    assert not exported[KEY].fuzzy
    assert f"# Reviewed by {translator.email}" in po.read_text(encoding="utf-8")

    # Poedit: one more entry approved, and one reviewed against a French that has changed since
    edited = po.read_text(encoding="utf-8")
    other, stale = "common.yes", "common.no"
    catalog = _read(po)
    catalog[other].string = "Ɛɛ (relu)"
    catalog[other].flags.discard("fuzzy")
    catalog[stale].string = "Ayo (relu)"
    catalog[stale].flags.discard("fuzzy")
    catalog[stale].auto_comments = ["fr: Non, ancien texte"]
    from api.i18n_tools import _dump

    po.write_bytes(_dump(catalog, "mos"))
    assert po.read_text(encoding="utf-8") != edited
    catalogs.cache_clear()
    (loaded,) = import_catalogs(demo_sqlite, locales, [po])
    assert loaded.written >= 2
    with write(demo_sqlite) as conn:
        items = {i.key: i for i in list_translations(conn, "mos", root=locales)}
    assert (items[other].text, items[other].status.value) == ("Ɛɛ (relu)", "reviewed")
    assert (items[stale].text, items[stale].status.value) == ("Ayo (relu)", "changed")
    assert items[KEY].status.value == "reviewed"

    # importing the same file again changes nothing; exporting keeps the changed one fuzzy
    assert import_catalogs(demo_sqlite, locales, [po])[0].written == 0
    export(demo_sqlite, locales)
    again = _read(po)
    assert again[stale].fuzzy
    assert again[stale].string == "Ayo (relu)"
    assert not again[other].fuzzy
    catalogs.cache_clear()


# --- voice prompts ----------------------------------------------------------------------------


def tone(seconds: float = 1.0) -> bytes:
    """A WAV file of a tone, as a browser or a phone would upload something."""
    command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi"]
    command += ["-i", f"sine=frequency=440:duration={seconds}", "-f", "wav", "pipe:1"]
    return subprocess.run(command, check=True, capture_output=True).stdout


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs Debian's ffmpeg")
def test_a_voice_prompt_reaches_whatsapp_and_telegram_as_ogg(
    demo_sqlite: Engine, app_factory: Any
) -> None:
    with app_factory(demo_sqlite, now=NOW.isoformat()) as (client, fakes):
        admin = {"Authorization": f"Bearer {translator_token(demo_sqlite, 'mos')}"}
        refused = client.put(
            f"/api/v1/voice/fr/{KEY}", files={"file": ("a.wav", tone(), "audio/wav")}, headers=admin
        )
        assert refused.status_code == 403
        from tests.support.staff import admin_token

        admin = {"Authorization": f"Bearer {admin_token(demo_sqlite)}"}
        bad = client.put(
            f"/api/v1/voice/fr/{KEY}",
            files={"file": ("a.wav", b"not audio", "audio/wav")},
            headers=admin,
        )
        assert bad.status_code == 422
        uploaded = client.put(
            f"/api/v1/voice/fr/{KEY}", files={"file": ("a.wav", tone(), "audio/wav")}, headers=admin
        )
        assert uploaded.status_code == 200, uploaded.text
        url = uploaded.json()["url"]
        served = client.get(url.removeprefix(PUBLIC_BASE_URL))
        assert served.headers["content-type"] == "audio/ogg"
        assert served.content.startswith(b"OggS")
        assert b"OpusHead" in served.content[:200]
        head = client.head(url.removeprefix(PUBLIC_BASE_URL))  # how Twilio checks a media's type
        assert (head.status_code, head.headers["content-type"]) == (200, "audio/ogg")

        # WhatsApp: a voice note gets the step's voice prompt as <Media>, with its text
        whatsapp = Phone(client, fakes)
        whatsapp.send("Bonjour")
        whatsapp.send("1")
        form = inbound_whatsapp_form(
            whatsapp.phone,
            "",
            account_sid=fakes.twilio.account_sid,
            media_content_type="audio/ogg",
        )
        twiml = whatsapp.post(form).text
        assert f"<Media>{url}</Media>" in twiml
        assert "<Body>" in twiml

        # Telegram: sendVoice, then the text
        telegram = TelegramUser(client, fakes)
        telegram.say("/start")
        telegram.tap("1")
        telegram.exchange(
            telegram.message(voice={"file_id": "v1", "file_unique_id": "u1", "duration": 3})
        )
        voices = [c.params for c in fakes.telegram.calls if c.method == "sendVoice" and c.ok]
        assert [v["voice"] for v in voices] == [url]

        # a citizen who never sent a voice note gets text only; deleting the clip stops it
        reader = Phone(client, fakes, phone="+2250701009999")
        reader.send("Bonjour")
        form = inbound_whatsapp_form(reader.phone, "1", account_sid=fakes.twilio.account_sid)
        assert "<Media>" not in reader.post(form).text
        assert client.delete(f"/api/v1/voice/fr/{KEY}", headers=admin).status_code == 204
        assert client.get(url.removeprefix(PUBLIC_BASE_URL)).status_code == 404
