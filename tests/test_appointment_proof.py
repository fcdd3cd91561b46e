"""Proof of appointment: the signed token, the files served at its URLs, the check-in on it
through the staff API (on SQLite and PostgreSQL), and the proof reaching each channel with the
confirmation (Twilio's <Media> and MediaUrl, Telegram's sendPhoto and sendDocument)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import icalendar
import pytest
from sqlalchemy.engine import Engine

from api.domain import appointment_proof as proof
from api.domain.appointment_proof import ProofLinks
from api.domain.reminders import send_reminders
from bot.channels import DOCUMENT, IMAGE, VOICE, Media
from bot.channels.telegram import TelegramSender, make_bot
from bot.channels.whatsapp import WhatsAppSender, twiml
from bot.i18n import RenderedReply, Renderer
from bot.outbox import LANE_NOTIFICATION, OutboxItem
from flows.messages import Attachment, proof_of
from tests.fakes import FakeTelegramAPI, FakeTwilioAPI
from tests.fakes.twilio_api import inbound_whatsapp_form
from tests.support.channels import PUBLIC_BASE_URL
from tests.support.offline import offline  # noqa: F401  (fixture)
from tests.support.people import add_appointment, add_citizen, outbox_rows
from tests.support.staff_api import StaffApi, staff_api
from tests.test_staff_api import assert_problem
from tests.test_telegram import TelegramUser
from tests.test_whatsapp import NOW, Phone

pytestmark = pytest.mark.usefixtures("offline")

KEY = proof.proof_key("a proof secret for the tests")
DAY = date(2026, 12, 3)  # a Thursday
AT_THE_DESK = datetime(2026, 12, 3, 7, 0, tzinfo=UTC)  # Abidjan is on UTC


# --- the token ---------------------------------------------------------------------------------


def test_a_token_verifies_under_its_key_only() -> None:
    token = proof.token(KEY, "RDV-7K2M9Q")
    assert token.startswith("RDV-7K2M9Q.")
    assert len(token) == len("RDV-7K2M9Q.") + 24
    assert proof.verified_reference(KEY, token) == "RDV-7K2M9Q"
    # what scanners and hands do: spaces, a newline, lower case
    assert proof.verified_reference(KEY, f"  {token.lower()}\n") == "RDV-7K2M9Q"
    other = proof.proof_key("another secret")
    assert proof.verified_reference(other, token) is None


def test_a_forged_or_altered_token_is_refused() -> None:
    token = proof.token(KEY, "RDV-7K2M9Q")
    reference, mac = token.split(".")
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    forged = [
        "RDV-7K2M9Q",  # a reference alone
        f"RDV-7K2M9R.{mac}",  # another reference under this one's code
        f"{reference}.{flipped}",  # one character changed
        token[:-1],  # cut
        token + "A",  # lengthened
        f"{reference}.{'A' * 24}",  # made up
        "",
        ".",
        "RDV-7K2M9Q.." + mac,
    ]
    for text in forged:
        assert proof.verified_reference(KEY, text) is None, text


def test_the_key_comes_from_proof_secret_else_console_secret() -> None:
    assert proof.proof_key("p", "c") == proof.proof_key("p")
    assert proof.proof_key(None, "c") == proof.proof_key("c")
    assert proof.proof_key(None, "c") != proof.proof_key("p")
    assert proof.proof_key(None, None) == proof.proof_key(None, None)  # this process's own
    assert proof.proof_key(None, None) != proof.proof_key("p")


def test_the_links_name_the_files_of_a_proof_by_its_token() -> None:
    links = ProofLinks(KEY, PUBLIC_BASE_URL + "/")
    token = proof.token(KEY, "RDV-7K2M9Q")
    assert links.media(proof_of("RDV-7K2M9Q")) == (
        Media(f"{PUBLIC_BASE_URL}/proof/{token}/qr.png", IMAGE),
        Media(f"{PUBLIC_BASE_URL}/proof/{token}/rendez-vous.ics", DOCUMENT),
    )
    assert links.media(Attachment("other", "x")) == ()


# --- the files and the check-in through the API -------------------------------------------------


@pytest.fixture
def api(demo_engine: Engine) -> StaffApi:
    return staff_api(demo_engine, now=AT_THE_DESK)


def booked(api: StaffApi, phone: str = "+2250701000001", **kw: Any) -> dict[str, Any]:
    citizen = api.citizen(phone, lang=kw.pop("lang", "fr"))
    appointment = api.book(citizen, day=kw.pop("day", DAY), **kw)
    key = api.client.app.state.proof_key
    return {**appointment, "proof": proof.token(key, appointment["reference"])}


def test_the_qr_code_and_the_calendar_file_are_served_at_the_tokens_url(api: StaffApi) -> None:
    appointment = booked(api)
    token = appointment["proof"]
    png = api.client.get(f"/proof/{token}/qr.png")
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    head = api.client.head(f"/proof/{token}/qr.png")  # how Twilio checks a media's type
    assert (head.status_code, head.headers["content-type"]) == (200, "image/png")

    ics = api.client.get(f"/proof/{token}/rendez-vous.ics")
    assert ics.status_code == 200
    assert ics.headers["content-type"] == "text/calendar; charset=utf-8"
    assert 'filename="rendez-vous.ics"' in ics.headers["content-disposition"]
    [event] = icalendar.Calendar.from_ical(ics.content).walk("VEVENT")
    start = event.decoded("dtstart")
    assert start.tzinfo is not None
    assert start.date() == DAY
    assert event.decoded("dtend") - start == timedelta(minutes=30)
    assert "Abidjan" in str(event["location"])
    assert "Passeport" in str(event["summary"])
    assert appointment["reference"] in str(event["description"])
    assert str(event["status"]) == "CONFIRMED"

    # Paris: the post's own time zone, with its VTIMEZONE (Abidjan's is UTC, written as such)
    paris = booked(api, "+33601000001", post="PAR")
    calendar = icalendar.Calendar.from_ical(
        api.client.get(f"/proof/{paris['proof']}/rendez-vous.ics").content
    )
    [event] = calendar.walk("VEVENT")
    assert str(event["dtstart"].params["TZID"]) == "Europe/Paris"
    assert [str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")] == ["Europe/Paris"]
    starts_at = api.get(f"/appointments/{paris['id']}").json()["starts_at"]
    assert event.decoded("dtstart") == datetime.fromisoformat(starts_at.replace("Z", "+00:00"))

    # in the citizen's language, through the catalogs (Mooré: a draft, used all the same)
    for lang, service, words in (("en", "Passport", "At the desk"), ("mos", "", "QR code")):
        theirs = booked(api, f"+22507010001{len(lang)}", lang=lang, day=DAY + timedelta(days=1))
        ics = api.client.get(f"/proof/{theirs['proof']}/rendez-vous.ics").content
        [event] = icalendar.Calendar.from_ical(ics).walk("VEVENT")
        assert service in str(event["summary"])
        assert "Abidjan" in str(event["summary"])
        assert words in str(event["description"])
        assert theirs["reference"] in str(event["description"])
        assert "À l'accueil" not in str(event["description"])  # not the French

    # lower case (a hand-typed URL) names the same proof
    assert api.client.get(f"/proof/{token.lower()}/qr.png").status_code == 200


def test_forged_altered_and_unknown_tokens_get_a_404(api: StaffApi) -> None:
    token = booked(api)["proof"]
    reference, mac = token.split(".")
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    unknown = proof.token(api.client.app.state.proof_key, "RDV-0000AA")
    for bad in (f"{reference}.{flipped}", f"{reference}.{'A' * 24}", unknown, "RDV-0000AA"):
        for name in ("qr.png", "rendez-vous.ics"):
            response = api.client.get(f"/proof/{bad}/{name}")
            assert response.status_code == 404, (bad, name)
            assert not response.content


def test_checking_in_on_a_genuine_proof_is_the_desks_check_in_audited(api: StaffApi) -> None:
    appointment = booked(api)
    done = api.post("/appointments/check-in", json={"proof": appointment["proof"]}, who="abj")
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "attended"
    assert done.json()["reference"] == appointment["reference"]
    [entry] = [row for row in api.audit() if row["action"] == "attended"]
    assert entry["entity_id"] == str(appointment["id"])

    again = api.post("/appointments/check-in", json={"proof": appointment["proof"]}, who="abj")
    assert "already" in assert_problem(again, 409)["detail"]


def test_a_forged_or_altered_proof_is_refused_and_nothing_written(api: StaffApi) -> None:
    appointment = booked(api)
    reference, mac = appointment["proof"].split(".")
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    for bad in (f"{reference}.{flipped}", reference, f"{reference}.{'B' * 24}"):
        refused = api.post("/appointments/check-in", json={"proof": bad}, who="abj")
        assert "not a valid proof" in assert_problem(refused, 422)["detail"]
    assert_problem(api.post("/appointments/check-in", json={"proof": ""}, who="abj"), 422)
    assert api.get(f"/appointments/{appointment['id']}").json()["status"] == "booked"
    assert api.audit() == []


def test_a_cancelled_another_days_or_another_posts_proof_says_so(api: StaffApi) -> None:
    cancelled = booked(api)
    assert api.post(f"/appointments/{cancelled['id']}/cancel", json={"reason": "x"}).is_success
    ics = api.client.get(f"/proof/{cancelled['proof']}/rendez-vous.ics")
    [event] = icalendar.Calendar.from_ical(ics.content).walk("VEVENT")
    assert str(event["status"]) == "CANCELLED"  # a calendar that imports it again learns so
    later = booked(api, "+2250701000002", day=date(2026, 12, 4))
    for appointment, words in ((cancelled, "cancelled"), (later, "day of the appointment")):
        refused = api.post("/appointments/check-in", json={"proof": appointment["proof"]})
        assert words in assert_problem(refused, 409)["detail"]
    theirs = booked(api, "+2250701000003")
    refused = api.post("/appointments/check-in", json={"proof": theirs["proof"]}, who="acc")
    assert "post you do not serve" in assert_problem(refused, 409)["detail"]
    assert api.get(f"/appointments/{theirs['id']}").json()["status"] == "booked"
    assert [row["action"] for row in api.audit()] == ["cancel"]


# --- on the channels ---------------------------------------------------------------------------


def book_through(send: Any) -> None:
    """Language, menu, then a passport appointment at Abidjan, confirmed."""
    for text in ("Bonjour", "1", "1", "1", "1", "1", "1", "Awa Ouédraogo"):
        send(text)


def test_the_confirmation_on_whatsapp_carries_the_qr_code_as_media(
    demo_engine: Engine, app_factory: Any
) -> None:
    with app_factory(demo_engine, now=NOW.isoformat()) as (client, fakes):
        phone = Phone(client, fakes)
        book_through(phone.send)
        form = inbound_whatsapp_form(phone.phone, "1", account_sid=fakes.twilio.account_sid)
        answer = phone.post(form).text
        assert "RDV-" in answer
        assert "code QR" in answer
        assert f"<Media>{PUBLIC_BASE_URL}/proof/RDV-" in answer
        assert ".ics" not in answer  # WhatsApp takes no text/calendar
        url = answer.split("<Media>")[1].split("</Media>")[0]
        served = client.get(url.removeprefix(PUBLIC_BASE_URL))
        assert served.headers["content-type"] == "image/png"


def test_the_confirmation_on_telegram_is_a_photo_then_the_text(
    demo_engine: Engine, app_factory: Any
) -> None:
    with app_factory(demo_engine, now=NOW.isoformat()) as (client, fakes):
        user = TelegramUser(client, fakes)
        user.say("/start")
        for text in ("1", "1", "1", "1", "1", "1", "Awa Ouédraogo"):
            user.say(text)
        answer = user.say("1")
        assert any("RDV-" in str(m.get("text", "")) for m in answer)
        photos = [c.params for c in fakes.telegram.calls if c.method == "sendPhoto" and c.ok]
        assert len(photos) == 1
        url = str(photos[0]["photo"])
        assert url.startswith(f"{PUBLIC_BASE_URL}/proof/RDV-")
        assert url.endswith("/qr.png")
        assert client.get(url.removeprefix(PUBLIC_BASE_URL)).headers["content-type"] == "image/png"
        # the calendar file, read by the worker from the database and uploaded
        fakes.telegram.wait_for(lambda calls: any(c.method == "sendDocument" for c in calls))
        [upload] = [c.params for c in fakes.telegram.calls if c.method == "sendDocument" and c.ok]
        assert upload["document"]["filename"] == "rendez-vous.ics"
        [event] = icalendar.Calendar.from_ical(upload["document"]["content"]).walk("VEVENT")
        assert "RDV-" in str(event["description"])


def test_the_simulator_shows_the_qr_code(demo_engine: Engine, app_factory: Any) -> None:
    with app_factory(demo_engine, now=NOW.isoformat()) as (client, _fakes):
        replies: list[dict[str, Any]] = []

        def send(text: str) -> None:
            body = {"user": "proof-sim", "text": text, "phone": "+2250701000009"}
            answer = client.post("/api/v1/simulator/messages", json=body)
            assert answer.status_code == 200, answer.text
            replies[:] = answer.json()["replies"]

        book_through(send)
        assert all("image" not in r for r in replies)
        send("1")
        [reply] = replies
        assert reply["image"].startswith(f"{PUBLIC_BASE_URL}/proof/RDV-")
        assert client.get(reply["image"].removeprefix(PUBLIC_BASE_URL)).status_code == 200


def test_twiml_puts_the_image_with_the_text_and_beside_a_voice_prompt() -> None:
    image = f"{PUBLIC_BASE_URL}/proof/RDV-7K2M9Q.{'A' * 24}/qr.png"
    files = (Media(image, IMAGE), Media("x.ics", DOCUMENT))
    alone = twiml([RenderedReply("Rendez-vous confirmé.", media=files)])
    assert alone.count("<Message>") == 1
    assert f"<Media>{image}</Media>" in alone
    assert "x.ics" not in alone
    voice = f"{PUBLIC_BASE_URL}/voice/abc.ogg"
    both = twiml([RenderedReply("Rendez-vous confirmé.", media=(Media(voice), *files))])
    assert both.count("<Message>") == 2  # one media per WhatsApp message
    assert both.index(voice) < both.index(image)


def _item(payload: dict[str, Any], channel: str, address: str) -> OutboxItem:
    return OutboxItem(
        id=1,
        channel=channel,
        address=address,
        lang="fr",
        lane=LANE_NOTIFICATION,
        kind="reminder",
        payload=payload,
        last_inbound_at=datetime.now(UTC),
    )


def test_a_proactive_message_with_a_proof_sends_it_as_mediaurl() -> None:
    image = f"{PUBLIC_BASE_URL}/proof/RDV-7K2M9Q.{'A' * 24}/qr.png"
    media = [{"url": image, "kind": IMAGE}, {"url": "x.ics", "kind": DOCUMENT}]
    payload = {"text": "Rappel : demain", "media": media}

    async def send(tw: FakeTwilioAPI, item: OutboxItem) -> None:
        sender = WhatsAppSender.create(
            tw.account_sid, tw.auth_token, "whatsapp:+14155238886", api_base_url=tw.base_url
        )
        try:
            assert (await sender.send(item, datetime.now(UTC))).outcome.value == "sent"
        finally:
            await sender.close()

    with FakeTwilioAPI() as tw:
        asyncio.run(send(tw, _item(payload, "whatsapp", "+2250701000001")))
        [sent] = tw.sent_messages()
        assert sent["MediaUrl"] in (image, [image])
        assert sent["Body"] == "Rappel : demain"


def test_telegram_sends_the_photo_by_url_and_uploads_the_calendar_file() -> None:
    image = f"{PUBLIC_BASE_URL}/proof/RDV-7K2M9Q.{'A' * 24}/qr.png"
    document = f"{PUBLIC_BASE_URL}/proof/RDV-7K2M9Q.{'A' * 24}/rendez-vous.ics"
    fetched: list[str] = []

    async def download(url: str) -> bytes:
        fetched.append(url)
        return b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"

    async def send(tg: FakeTelegramAPI) -> None:
        bot = make_bot(tg.token, tg.url)
        await bot.initialize()
        sender = TelegramSender(bot, download)
        media = [
            {"url": f"{PUBLIC_BASE_URL}/voice/abc.ogg", "kind": VOICE},  # the same path as voice
            {"url": image, "kind": IMAGE},
            {"url": document, "kind": DOCUMENT},
        ]
        payload = {"text": "Rendez-vous confirmé.", "media": media}
        try:
            result = await sender.send(_item(payload, "telegram", "4242"), datetime.now(UTC))
            assert result.outcome.value == "sent"
        finally:
            await sender.close()

    with FakeTelegramAPI(token="123456:TEST") as tg:
        asyncio.run(send(tg))
        methods = [c.method for c in tg.calls if c.ok and c.method != "getMe"]
        assert methods == ["sendVoice", "sendPhoto", "sendDocument", "sendMessage"]
        [photo] = [c.params for c in tg.calls if c.method == "sendPhoto"]
        assert photo["photo"] == image
        [upload] = [c.params for c in tg.calls if c.method == "sendDocument"]
        assert upload["document"]["filename"] == "rendez-vous.ics"
        assert upload["document"]["content"].startswith(b"BEGIN:VCALENDAR")
        assert fetched == [document]


def test_the_day_before_reminder_brings_the_proof_to_twilio_as_mediaurl(
    demo_engine: Engine,
) -> None:
    moment = datetime(2030, 1, 15, 10, 0, tzinfo=UTC)
    phone = "+2250701000077"
    citizen_id = add_citizen(demo_engine, phone=phone, identities=(("whatsapp", phone, moment),))
    starts = moment + timedelta(hours=20)
    _, reference = add_appointment(demo_engine, citizen_id, starts)
    renderer = Renderer(attachments=ProofLinks(KEY, PUBLIC_BASE_URL))
    assert send_reminders(demo_engine, moment, renderer=renderer) == 1
    (row,) = outbox_rows(demo_engine)
    image = f"{PUBLIC_BASE_URL}/proof/{proof.token(KEY, reference)}/qr.png"
    assert row.payload["media"] == [
        {"url": image, "kind": IMAGE},
        {"url": image.removesuffix("qr.png") + "rendez-vous.ics", "kind": DOCUMENT},
    ]
    assert reference in row.payload["text"]

    async def send(tw: FakeTwilioAPI) -> None:
        sender = WhatsAppSender.create(
            tw.account_sid, tw.auth_token, "whatsapp:+14155238886", api_base_url=tw.base_url
        )
        item = replace(_item(dict(row.payload), "whatsapp", phone), last_inbound_at=moment)
        try:
            assert (await sender.send(item, moment + timedelta(hours=1))).outcome.value == "sent"
        finally:
            await sender.close()

    with FakeTwilioAPI() as tw:
        asyncio.run(send(tw))
        [sent] = tw.sent_messages()
        assert sent["MediaUrl"] in (image, [image])

    # two hours before: the text alone
    assert send_reminders(demo_engine, starts - timedelta(hours=1), renderer=renderer) == 1
    assert "media" not in outbox_rows(demo_engine)[-1].payload


def test_a_calendar_file_that_cannot_be_read_leaves_the_text_to_go() -> None:
    async def broken(url: str) -> bytes:
        raise OSError("the database is away")

    async def send(tg: FakeTelegramAPI) -> str:
        bot = make_bot(tg.token, tg.url)
        await bot.initialize()
        sender = TelegramSender(bot, broken)
        media = [{"url": f"{PUBLIC_BASE_URL}/x.ics", "kind": DOCUMENT}]
        payload = {"text": "Rendez-vous confirmé.", "media": media}
        try:
            result = await sender.send(_item(payload, "telegram", "4242"), datetime.now(UTC))
            return result.outcome.value
        finally:
            await sender.close()

    with FakeTelegramAPI(token="123456:TEST") as tg:
        assert asyncio.run(send(tg)) == "sent"
        assert [c.method for c in tg.calls if c.method != "getMe"] == ["sendMessage"]
