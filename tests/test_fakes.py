"""The fake provider servers speak the real wire formats: proven with the real SDKs."""

from __future__ import annotations

import asyncio
import datetime as dtm
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar
from urllib.parse import urlsplit

import httpx
import pytest
import telegram
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from tests.fakes import FakeTelegramAPI, FakeTwilioAPI
from tests.fakes.telegram_api import callback_query_update, message_update
from tests.fakes.twilio_api import (
    inbound_whatsapp_form,
    status_callback_form,
    twilio_signature,
)

TOKEN = "123:ABC"
T = TypeVar("T")


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opt in to PTB's timedelta durations (avoids its deprecation warning)."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
def tg() -> Iterator[FakeTelegramAPI]:
    with FakeTelegramAPI(token=TOKEN) as fake:
        yield fake


def with_bot(tg: FakeTelegramAPI, scenario: Callable[[Bot], Awaitable[T]]) -> T:
    """Run `scenario` with an initialized real `telegram.Bot` pointed at the fake."""

    async def run() -> T:
        async with Bot(TOKEN, base_url=tg.base_url) as bot:
            return await scenario(bot)

    return asyncio.run(run())


# -- Telegram ----------------------------------------------------------------------------------


def test_bot_initializes_and_sends_a_keyboard(tg: FakeTelegramAPI) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Oui", callback_data="yes")]])

    async def scenario(bot: Bot) -> tuple[str, telegram.Message, telegram.Message]:
        first = await bot.send_message(chat_id=42, text="Bonjour", reply_markup=keyboard)
        second = await bot.send_message(chat_id=42, text="Ça va ?")
        return bot.username, first, second

    username, first, second = with_bot(tg, scenario)

    assert username == "diaspora_test_bot"
    assert (first.message_id, second.message_id) == (1, 2)
    assert first.text == "Bonjour"
    assert first.chat.id == 42
    assert first.from_user is not None
    assert first.from_user.is_bot
    assert first.reply_markup == keyboard
    sent = tg.sent_messages(chat_id=42)
    assert sent[0]["reply_markup"] == {
        "inline_keyboard": [[{"text": "Oui", "callback_data": "yes"}]]
    }
    assert sent[0]["chat_id"] == 42
    assert sent[1]["text"] == "Ça va ?"
    assert [c.method for c in tg.calls] == ["getMe", "sendMessage", "sendMessage"]


def test_edits_callback_answers_and_chat_actions(tg: FakeTelegramAPI) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("A", callback_data="a")]])

    async def scenario(bot: Bot) -> telegram.Message:
        sent = await bot.send_message(chat_id=7, text="Choisir", reply_markup=keyboard)
        await bot.send_chat_action(chat_id=7, action="typing")
        assert await bot.answer_callback_query("cbq1", text="Merci")
        edited = await bot.edit_message_text("Choisi : A", chat_id=7, message_id=sent.message_id)
        assert isinstance(edited, telegram.Message)
        with pytest.raises(telegram.error.BadRequest, match="not modified"):
            await bot.edit_message_reply_markup(chat_id=7, message_id=sent.message_id)
        return edited

    edited = with_bot(tg, scenario)

    assert edited.text == "Choisi : A"
    assert edited.reply_markup is None
    assert edited.edit_date is not None


def test_retry_after_blocked_chat_and_server_error(tg: FakeTelegramAPI) -> None:
    tg.fail_next(1, status=429, retry_after=2)
    tg.block_chat(99)

    async def scenario(bot: Bot) -> None:
        with pytest.raises(telegram.error.RetryAfter) as retry:
            await bot.send_message(chat_id=1, text="x")
        assert retry.value.retry_after == dtm.timedelta(seconds=2)
        await bot.send_message(chat_id=1, text="x")
        with pytest.raises(telegram.error.Forbidden, match="blocked by the user"):
            await bot.send_message(chat_id=99, text="x")
        tg.fail_next(1, status=500)
        with pytest.raises(telegram.error.NetworkError):
            await bot.send_message(chat_id=1, text="x")

    with_bot(tg, scenario)

    assert [c.status for c in tg.calls] == [200, 429, 200, 403, 500]
    assert tg.count_429 == 1
    assert len(tg.sent_messages()) == 1


def test_wrong_token_and_oversized_callback_data(tg: FakeTelegramAPI) -> None:
    async def wrong_token() -> None:
        async with Bot("999:WRONG", base_url=tg.base_url):
            pass

    with pytest.raises(telegram.error.InvalidToken):
        asyncio.run(wrong_token())

    too_long = InlineKeyboardMarkup([[InlineKeyboardButton("é", callback_data="é" * 33)]])

    async def scenario(bot: Bot) -> None:
        with pytest.raises(telegram.error.BadRequest, match=r"(?i)button_data_invalid"):
            await bot.send_message(chat_id=1, text="x", reply_markup=too_long)

    with_bot(tg, scenario)


def test_rate_limit_answers_429_over_the_sliding_window() -> None:
    with FakeTelegramAPI(token=TOKEN, rate_limit_per_second=5) as tg:

        async def scenario(bot: Bot) -> list[object]:
            retry_afters: list[object] = []
            for i in range(8):
                try:
                    await bot.send_message(chat_id=1, text=str(i))
                except telegram.error.RetryAfter as exc:
                    retry_afters.append(exc.retry_after)
            return retry_afters

        retry_afters = with_bot(tg, scenario)

    assert retry_afters == [dtm.timedelta(seconds=1)] * 3
    assert tg.count_429 == 3
    assert tg.max_per_second("sendMessage") == 5


def test_updates_by_long_polling_and_webhook(tg: FakeTelegramAPI) -> None:
    first = tg.push_update(message_update(chat_id=5, text="salut"))
    tg.push_update(callback_query_update(chat_id=5, data="yes"))

    async def scenario(bot: Bot) -> None:
        updates = await bot.get_updates(timeout=1)
        assert updates[0].update_id == first["update_id"]
        message, query = updates[0].message, updates[1].callback_query
        assert message is not None
        assert message.text == "salut"
        assert query is not None
        assert query.data == "yes"
        assert await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0) == ()

        assert await bot.set_webhook("https://bot.example/tg", secret_token="s3cret")
        assert (await bot.get_webhook_info()).url == "https://bot.example/tg"
        with pytest.raises(telegram.error.Conflict):
            await bot.get_updates()
        assert await bot.delete_webhook()

    with_bot(tg, scenario)

    assert (tg.webhook_url, tg.webhook_secret) == ("", None)
    assert any(c.params.get("secret_token") == "s3cret" for c in tg.calls)


def test_raw_wire_formats_json_multipart_and_unknown_method(tg: FakeTelegramAPI) -> None:
    url = f"{tg.base_url}{TOKEN}"
    markup = {"inline_keyboard": [[{"text": "B", "callback_data": "b"}]]}
    as_json = httpx.post(
        f"{url}/sendMessage", json={"chat_id": 3, "text": "j", "reply_markup": markup}
    )
    multipart = httpx.post(
        f"{url}/sendMessage",
        data={"chat_id": "3", "text": "42", "reply_markup": json.dumps(markup)},
        files={"document": ("a.txt", b"hello", "text/plain")},
    )
    unknown = httpx.post(f"{url}/sendTelepathy", data={"chat_id": "3"})

    assert as_json.json()["result"]["reply_markup"] == markup
    assert multipart.status_code == 200
    params = tg.sent_messages(chat_id=3)[1]
    assert params["text"] == "42"
    assert params["reply_markup"] == markup
    assert params["document"]["content"] == b"hello"
    assert unknown.status_code == 404
    assert unknown.json() == {
        "ok": False,
        "error_code": 404,
        "description": "Not Found: method not found",
    }
    assert tg.wait_for(lambda calls: len(calls) == 3, timeout=1)[-1].method == "sendTelepathy"
    assert not tg.errors


# -- Twilio ------------------------------------------------------------------------------------


class LocalTwilioHttpClient(TwilioHttpClient):  # type: ignore[misc]  # twilio is untyped
    """Sends the SDK's fully qualified `https://api.twilio.com/...` URIs to a local fake."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        parts = urlsplit(url)
        local = self.base_url + parts.path + (f"?{parts.query}" if parts.query else "")
        return super().request(method, local, params, data, headers, auth, timeout, allow_redirects)


@pytest.fixture
def tw() -> Iterator[FakeTwilioAPI]:
    with FakeTwilioAPI() as fake:
        yield fake


def twilio_client(tw: FakeTwilioAPI, token: str | None = None) -> Client:
    return Client(
        tw.account_sid, token or tw.auth_token, http_client=LocalTwilioHttpClient(tw.base_url)
    )


def test_twilio_client_creates_and_fetches_a_message(tw: FakeTwilioAPI) -> None:
    client = twilio_client(tw)

    message = client.messages.create(
        to="whatsapp:+2250700000001", from_="whatsapp:+14155238886", body="Bonjour"
    )
    fetched = client.messages(message.sid).fetch()

    assert message.sid.startswith("SM")
    assert len(message.sid) == 34
    assert message.status == "queued"
    assert message.to == "whatsapp:+2250700000001"
    assert message.account_sid == tw.account_sid
    assert isinstance(message.date_created, dtm.datetime)
    assert fetched.sid == message.sid
    assert fetched.body == "Bonjour"
    assert tw.sent_messages(to="+2250700000001") == [
        {"To": "whatsapp:+2250700000001", "From": "whatsapp:+14155238886", "Body": "Bonjour"}
    ]
    assert [c.method for c in tw.wait_for(2)] == ["messages.create", "messages.fetch"]


def test_twilio_errors_surface_as_rest_exceptions(tw: FakeTwilioAPI) -> None:
    client = twilio_client(tw)
    to, sender = "whatsapp:+2250700000002", "whatsapp:+14155238886"
    tw.opt_out(to)
    with pytest.raises(TwilioRestException) as opted_out:
        client.messages.create(to=to, from_=sender, body="x")
    assert (opted_out.value.status, opted_out.value.code) == (400, 21610)

    late = "whatsapp:+22670000003"
    tw.outside_window(late)
    with pytest.raises(TwilioRestException) as window:
        client.messages.create(to=late, from_=sender, body="x")
    assert window.value.code == 63016
    template = client.messages.create(
        to=late, from_=sender, content_sid="HX" + "0" * 32, content_variables='{"1": "Awa"}'
    )
    assert template.status == "queued"

    tw.fail_next(1, status=429)
    with pytest.raises(TwilioRestException) as throttled:
        client.messages.create(to=late, from_=sender, body="x")
    assert (throttled.value.status, throttled.value.code) == (429, 20429)

    with pytest.raises(TwilioRestException) as unauthorized:
        twilio_client(tw, token="f" * 32).messages.create(to=late, from_=sender, body="x")
    assert (unauthorized.value.status, unauthorized.value.code) == (401, 20003)
    assert tw.count_429 == 1
    assert not tw.errors


def test_twilio_rate_limit_and_asynchronous_window_failure() -> None:
    with FakeTwilioAPI(rate_limit_per_second=2) as tw:
        client = twilio_client(tw)
        tw.outside_window("+22670000004", asynchronous=True)
        sids, codes = [], []
        for _ in range(3):
            try:
                sids.append(
                    client.messages.create(
                        to="whatsapp:+22670000004", from_="whatsapp:+14155238886", body="x"
                    ).sid
                )
            except TwilioRestException as exc:
                codes.append(exc.code)
        assert codes == [20429]
        assert tw.count_429 == 1
        failed = client.messages(sids[0]).fetch()
        assert (failed.status, failed.error_code) == ("failed", 63016)


def test_twilio_lists_messages_newest_first_by_recipient_and_date_sent(tw: FakeTwilioAPI) -> None:
    client = twilio_client(tw)
    sender, awa, ali = "whatsapp:+14155238886", "whatsapp:+2250700000011", "whatsapp:+2250700000012"
    first, second, third = (
        client.messages.create(to=awa, from_=sender, body=body).sid for body in ("1", "2", "3")
    )
    client.messages.create(to=ali, from_=sender, body="autre")
    now = dtm.datetime.now(dtm.UTC)
    tw.backdate(first, now - dtm.timedelta(hours=2))
    tw.backdate(second, now - dtm.timedelta(minutes=5))

    everything = client.messages.list(to=awa, from_=sender, page_size=1)  # three pages
    recent = client.messages.list(to=awa, date_sent_after=now - dtm.timedelta(minutes=10))
    older = client.messages.list(to=awa, date_sent_before=now - dtm.timedelta(minutes=1))

    assert [m.sid for m in everything] == [third, second, first]
    assert [m.sid for m in recent] == [third, second]
    assert [m.sid for m in older] == [second, first]
    assert all(m.status == "sent" and m.date_sent is not None for m in everything)
    assert everything[-1].date_sent.replace(microsecond=0) == (
        now - dtm.timedelta(hours=2)
    ).replace(microsecond=0)
    lists = [c for c in tw.calls if c.method == "messages.list"]
    assert [c.params.get("Page") for c in lists[:3]] == [None, "1", "2"]
    assert lists[3].params["DateSent>"].endswith("Z")


def test_twilio_messages_are_sent_after_the_send_delay() -> None:
    with FakeTwilioAPI(send_delay=30) as tw:
        client = twilio_client(tw)
        to = "whatsapp:+2250700000013"
        created = client.messages.create(to=to, from_="whatsapp:+14155238886", body="x")
        assert (created.status, created.date_sent) == ("queued", None)
        assert client.messages(created.sid).fetch().date_sent is None
        since = dtm.datetime.now(dtm.UTC) - dtm.timedelta(minutes=1)
        assert client.messages.list(to=to, date_sent_after=since) == []  # not sent yet
        assert [m.sid for m in client.messages.list(to=to)] == [created.sid]
        with pytest.raises(TwilioException) as invalid:  # the SDK's error for a list
            client.messages.list(to=to, date_sent_after="tomorrow")
        response = invalid.value.args[1]
        assert (response.status_code, json.loads(response.text)["code"]) == (400, 20001)


def test_webhook_builders_match_twilio_signature_validation() -> None:
    url = "https://bot.example/webhooks/twilio"
    inbound = inbound_whatsapp_form("+22670112233", "Bonjour", profile_name="Awa")
    assert inbound["From"] == "whatsapp:+22670112233"
    assert inbound["WaId"] == "22670112233"
    assert inbound["MessageSid"].startswith("SM")
    assert inbound["MessageType"] == "text"

    photo = inbound_whatsapp_form("+22670112233", media_content_type="image/jpeg")
    assert photo["NumMedia"] == "1"
    assert photo["MediaUrl0"].startswith("https://api.twilio.com/")
    place = inbound_whatsapp_form("+22670112233", latitude=12.37, longitude=-1.52)
    assert (place["Latitude"], place["MessageType"]) == ("12.37", "location")
    tap = inbound_whatsapp_form("+22670112233", button_text="Oui", button_payload="yes")
    assert (tap["ButtonPayload"], tap["MessageType"]) == ("yes", "button")

    status = status_callback_form("SM" + "1" * 32, "failed", "+22670112233", error_code=63016)
    assert status["To"] == "whatsapp:+22670112233"
    assert status["ErrorCode"] == "63016"
    assert status["ChannelPrefix"] == "whatsapp"
    assert status["SmsStatus"] == "failed"

    validator = RequestValidator("tok")
    for form in (inbound, status):
        assert validator.validate(url, form, twilio_signature("tok", url, form))
        assert not validator.validate(url, form, twilio_signature("other", url, form))
