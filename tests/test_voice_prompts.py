"""Voice prompts as a citizen's preference (issue 15, item 3): on with the first voice note,
switched by the keyword VOIX (each language's word) or the language menu's last option, and
then sent with every reply and notice that has a clip in the citizen's language — as TwiML
`<Media>` and REST `MediaUrl` on WhatsApp, `sendVoice` on Telegram."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from flows.engine import Kind
from flows.messages import msg
from tests.fakes.twilio_api import inbound_whatsapp_form
from tests.support.channels import PUBLIC_BASE_URL, Fakes
from tests.support.dialog import Dialog, at_menu, renderer
from tests.support.memory_world import MemoryWorld
from tests.support.offline import offline  # noqa: F401  (fixture)
from tests.support.people import citizen_row
from tests.support.sql_world import TxWorld
from tests.support.staff import admin_token
from tests.test_telegram import TelegramUser
from tests.test_translations import tone
from tests.test_whatsapp import Phone

pytestmark = pytest.mark.usefixtures("offline")

LANGUAGES = ["fr", "mos", "dyu", "ff", "en"]
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs Debian's ffmpeg")


@pytest.fixture
def world() -> MemoryWorld:
    return MemoryWorld()


# --- transcripts: the keyword -----------------------------------------------------------------


def test_voix_switches_voice_on_then_off_with_a_short_confirmation(world: MemoryWorld) -> None:
    dialog = at_menu(world)
    turn = dialog.say("voix")
    assert dialog.keys == ["voice.on", "menu.main.question"]
    assert turn.voice
    assert world.voices == {1: True}
    assert "VOIX" in dialog.rendered()[0]  # how to stop, in the confirmation
    turn = dialog.say("VOIX")
    assert dialog.keys == ["voice.off", "menu.main.question"]
    assert not turn.voice
    assert world.voices == {1: False}


def test_the_keyword_works_mid_booking_and_keeps_the_progress(world: MemoryWorld) -> None:
    dialog = at_menu(world)
    for text in ("1", "1", "1"):
        dialog.say(text)
    before = dialog.state
    dialog.say("messages vocaux")
    assert dialog.keys == ["voice.on", "booking.day.question"]
    assert dialog.state == before


@pytest.mark.parametrize(
    ("lang", "word"),
    [("mos", "koɛɛga"), ("dyu", "kumakan"), ("ff", "daande"), ("en", "voice"), ("mos", "VOIX")],
)
def test_each_language_has_its_keyword_and_confirms_in_its_words(
    world: MemoryWorld, lang: str, word: str
) -> None:
    dialog = at_menu(world, lang)
    turn = dialog.say(word)
    assert dialog.keys == ["voice.on", "menu.main.question"]
    assert turn.lang == lang
    assert world.voices == {1: True}
    confirmation = renderer().render(msg("voice.on"), lang)
    assert confirmation != renderer().render(msg("voice.on"), "fr")  # translated, not French
    assert dialog.rendered()[0].startswith(confirmation)
    dialog.say(word)
    assert dialog.keys[0] == "voice.off"
    assert world.voices == {1: False}


# --- transcripts: the language menu -----------------------------------------------------------


@pytest.mark.parametrize("lang", [None, "dyu"])  # French chosen at first contact, or Dioula
def test_the_language_menu_ends_with_the_voice_switch(world: MemoryWorld, lang: str | None) -> None:
    dialog = at_menu(world, lang)
    dialog.say("6")
    assert dialog.values == [*LANGUAGES, "voice"]  # 1 Français … 5 English, as ever
    assert dialog.choice_keys[-1] == "language.voice.on"
    turn = dialog.say("6")
    assert dialog.keys == ["voice.on", "menu.main.question"]
    assert turn.voice
    assert world.voices == {1: True}
    assert turn.lang == (lang or "fr")  # the language stays what it was
    dialog.say("6")
    assert dialog.choice_keys[-1] == "language.voice.off"  # the label says what it will do
    turn = dialog.say("6")
    assert dialog.keys == ["voice.off", "menu.main.question"]
    assert not turn.voice
    assert world.voices == {1: False}


def test_a_first_contact_gets_the_five_languages_alone(world: MemoryWorld) -> None:
    dialog = Dialog(world)
    dialog.say("Bonjour")
    assert dialog.values == LANGUAGES
    dialog.say("6")
    assert dialog.line("common.not_an_option").params == {"count": 5}
    assert world.voices == {}


# --- transcripts: voice notes -----------------------------------------------------------------


def test_the_first_voice_note_turns_voice_on_for_the_replies_after_it(world: MemoryWorld) -> None:
    dialog = at_menu(world)
    assert not dialog.say("1").voice
    assert dialog.send(Kind.voice).voice
    assert world.voices == {1: True}
    assert dialog.say("0").voice  # a text message later: still with voice


def test_a_voice_note_never_overrides_a_citizens_off(world: MemoryWorld) -> None:
    dialog = at_menu(world)
    dialog.say("voix")
    dialog.say("voix")
    assert not dialog.send(Kind.voice).voice
    assert world.voices == {1: False}


def test_the_switch_is_the_citizens_own_column(demo_engine: Engine) -> None:
    world = TxWorld(demo_engine)
    citizen = world.citizen("+2250701000001")
    dialog = at_menu(world, citizen_id=citizen)  # type: ignore[arg-type]
    dialog.send(Kind.voice)
    assert citizen_row(demo_engine, citizen).voice is True
    dialog.say("6")
    dialog.say("6")
    assert citizen_row(demo_engine, citizen).voice is False
    dialog.send(Kind.voice)
    assert citizen_row(demo_engine, citizen).voice is False


# --- through the channels: FakeTwilioAPI and FakeTelegramAPI, the real SDKs --------------------


@contextmanager
def live(app_factory: Any, engine: Engine) -> Iterator[tuple[TestClient, Fakes, dict[str, str]]]:
    """The app on the real clock (WhatsApp's 24-hour window is measured on it), with an
    administrator's token."""
    with app_factory(engine) as (client, fakes):
        yield client, fakes, {"Authorization": f"Bearer {admin_token(engine)}"}


def record(client: TestClient, admin: dict[str, str], lang: str, key: str) -> str:
    """A translator's clip for `key` in `lang`; its URL."""
    upload = {"file": ("clip.wav", tone(0.5), "audio/wav")}
    done = client.put(f"/api/v1/voice/{lang}/{key}", files=upload, headers=admin)
    assert done.status_code == 200, done.text
    url = str(done.json()["url"])
    assert url.startswith(PUBLIC_BASE_URL)
    return url


def voice_note_form(phone: str, fakes: Fakes) -> dict[str, str]:
    sid = fakes.twilio.account_sid
    return inbound_whatsapp_form(phone, "", account_sid=sid, media_content_type="audio/ogg")


def text_form(phone: str, text: str, fakes: Fakes) -> dict[str, str]:
    return inbound_whatsapp_form(phone, text, account_sid=fakes.twilio.account_sid)


def voices(fakes: Fakes, chat_id: int) -> list[str]:
    return [
        str(c.params["voice"])
        for c in fakes.telegram.calls
        if c.method == "sendVoice" and c.ok and str(c.params.get("chat_id")) == str(chat_id)
    ]


@needs_ffmpeg
def test_after_a_voice_note_text_messages_get_the_clip_too(
    demo_engine: Engine, app_factory: Any
) -> None:
    with live(app_factory, demo_engine) as (client, fakes, admin):
        url = record(client, admin, "fr", "menu.main.question")

        whatsapp = Phone(client, fakes)
        whatsapp.send("Bonjour")
        whatsapp.send("1")  # French: the main menu, no voice yet
        assert f"<Media>{url}</Media>" in whatsapp.post(voice_note_form(whatsapp.phone, fakes)).text
        later = whatsapp.post(text_form(whatsapp.phone, "0", fakes)).text
        assert f"<Media>{url}</Media>" in later
        assert "<Body>" in later
        whatsapp.post(text_form(whatsapp.phone, "VOIX", fakes))  # off
        assert "<Media>" not in whatsapp.post(text_form(whatsapp.phone, "0", fakes)).text

        telegram = TelegramUser(client, fakes)
        telegram.say("/start")
        telegram.tap("1")
        assert voices(fakes, telegram.id) == []
        telegram.exchange(
            telegram.message(voice={"file_id": "v1", "file_unique_id": "u1", "duration": 2})
        )
        telegram.say("0")  # a text message: the clip, then the text
        assert voices(fakes, telegram.id) == [url, url]
        assert "1." in telegram.sent()[-1]["text"]


@needs_ffmpeg
def test_a_notice_reaches_whatsapp_with_media_url_and_telegram_with_send_voice(
    demo_engine: Engine, app_factory: Any
) -> None:
    with live(app_factory, demo_engine) as (client, fakes, admin):
        url = record(client, admin, "fr", "notify.request_status")

        whatsapp = Phone(client, fakes, phone="+2250701000042")
        whatsapp.send("Bonjour")
        whatsapp.send("1")
        whatsapp.post(voice_note_form(whatsapp.phone, fakes))  # voice on
        telegram = TelegramUser(client, fakes)
        telegram.say("/start")
        telegram.tap("1")
        telegram.share_contact("+2250701000043")
        telegram.exchange(
            telegram.message(voice={"file_id": "v2", "file_unique_id": "u2", "duration": 2})
        )
        before = len(voices(fakes, telegram.id))

        for phone in (whatsapp.phone, "+2250701000043"):
            request_moves_on(client, admin, phone)

        fakes.twilio.wait_for(lambda _: bool(fakes.twilio.sent_messages(to=whatsapp.phone)))
        (notice,) = fakes.twilio.sent_messages(to=whatsapp.phone)
        assert notice["MediaUrl"] == url
        assert reference_of(notice["Body"])

        fakes.telegram.wait_for(lambda _: len(voices(fakes, telegram.id)) > before)
        assert voices(fakes, telegram.id)[before:] == [url]
        fakes.telegram.wait_for(lambda _: any(reference_of(m["text"]) for m in telegram.sent()))
        chat = [c.method for c in fakes.telegram.calls if c.params.get("chat_id") == telegram.id]
        assert chat[-2:] == ["sendVoice", "sendMessage"]  # the clip, then the notice's text


def reference_of(text: str) -> bool:
    return "ABJ-" in text


def request_moves_on(client: TestClient, admin: dict[str, str], phone: str) -> None:
    """Staff lodge a request for the owner of `phone` and move it on: they are told."""
    body = {
        "post": "ABJ",
        "service": "passport",
        "full_name": "Awa Ouédraogo",
        "birth_date": "1990-03-12",
        "phone": phone,
    }
    lodged = client.post("/api/v1/requests", json=body, headers=admin)
    assert lodged.status_code in (200, 201), lodged.text
    path = f"/api/v1/requests/{lodged.json()['reference']}/status"
    moved = client.post(path, json={"status": "in_progress"}, headers=admin)
    assert moved.status_code == 200, moved.text


@needs_ffmpeg
def test_a_notice_without_voice_on_is_text_alone(demo_engine: Engine, app_factory: Any) -> None:
    with live(app_factory, demo_engine) as (client, fakes, admin):
        record(client, admin, "fr", "notify.request_status")
        whatsapp = Phone(client, fakes, phone="+2250701000044")
        whatsapp.send("Bonjour")
        whatsapp.send("1")
        request_moves_on(client, admin, whatsapp.phone)
        fakes.twilio.wait_for(lambda _: bool(fakes.twilio.sent_messages(to=whatsapp.phone)))
        (notice,) = fakes.twilio.sent_messages(to=whatsapp.phone)
        assert "MediaUrl" not in notice


def test_the_rest_api_carries_every_file_as_media_url_on_both_lanes_not_on_a_template() -> None:
    """Twilio's form takes one `MediaUrl` field per file, on the SDK's path and the bulk
    lane's alike; a template (outside the 24 hours) carries the text alone."""
    import asyncio
    from dataclasses import replace
    from datetime import UTC, datetime

    from bot.channels.whatsapp import WhatsAppSender
    from bot.outbox import LANE_BULK, LANE_NOTIFICATION, OutboxItem
    from tests.fakes import FakeTwilioAPI

    now = datetime.now(UTC)
    files = ["https://diaspora.test/voice/a.ogg", "https://diaspora.test/qr/b.png"]
    media = [{"url": files[0], "kind": "voice"}, {"url": files[1], "kind": "image"}]
    item = OutboxItem(
        id=1,
        channel="whatsapp",
        address="+2250701000001",
        lang="fr",
        lane=LANE_NOTIFICATION,
        kind="notification",
        payload={"text": "Votre demande avance", "media": media},
        last_inbound_at=now,
    )
    with FakeTwilioAPI() as tw:

        async def send_all() -> list[str]:
            sender = WhatsAppSender.create(
                tw.account_sid,
                tw.auth_token,
                "whatsapp:+14155238886",
                api_base_url=tw.base_url,
                templates={"fr": "HX" + "0" * 32},
            )
            try:
                items = [replace(item, lane=LANE_BULK), item, replace(item, last_inbound_at=None)]
                return [str((await sender.send(one, now)).outcome) for one in items]
            finally:
                await sender.close()

        assert asyncio.run(send_all()) == ["sent", "sent", "sent"]
        lean, sdk, templated = tw.sent_messages()
        assert lean["MediaUrl"] == sdk["MediaUrl"] == files
        assert sdk["Body"] == "Votre demande avance"
        assert "MediaUrl" not in templated
        assert "ContentSid" in templated
