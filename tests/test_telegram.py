"""Telegram through python-telegram-bot: Update JSON in, Bot API calls out (through the outbox
and the in-process worker), against the fake Bot API with its real wire format."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from api import db
from api.domain.identities import link_verified_phone
from api.models import InboundMessage
from api.settings import Settings
from api.worker import Worker
from bot.channels.telegram import keyboard, parse_update
from bot.i18n import Renderer
from flows.engine import Kind
from flows.messages import msg
from tests.fakes import FakeTelegramAPI
from tests.fakes.telegram_api import callback_query_update, message_update
from tests.support.channels import PUBLIC_BASE_URL, TELEGRAM_SECRET, Fakes
from tests.support.offline import offline  # noqa: F401  (fixture)
from tests.support.people import (
    add_appointment,
    add_citizen,
    appointment,
    citizen,
    citizen_row,
    count,
    identity,
    identity_row,
    outbox,
)

pytestmark = pytest.mark.usefixtures("offline")

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
PHONE = "+2250701000009"
inbound_message = InboundMessage.__table__  # type: ignore[attr-defined]
_ids = itertools.count(1)


def render(key: str, lang: str = "fr") -> str:
    return Renderer().render(msg(key), lang)


class TelegramUser:
    """A private chat with the bot: updates posted to the webhook, answers read from the fake."""

    def __init__(self, client: TestClient, fakes: Fakes, user_id: int = 0) -> None:
        self.client = client
        self.telegram: FakeTelegramAPI = fakes.telegram
        self.id = user_id or 800_000 + next(_ids)

    def post(self, update: dict[str, Any], secret: str | None = TELEGRAM_SECRET) -> Any:
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
        return self.client.post("/webhooks/telegram", json=update, headers=headers)

    def sent(self) -> list[dict[str, Any]]:
        return self.telegram.sent_messages(chat_id=self.id)

    def exchange(self, update: dict[str, Any]) -> list[dict[str, Any]]:
        """Post an update and return the messages the bot sent in answer."""
        before = len(self.sent())
        response = self.post(update)
        assert response.status_code == 200, response.text
        assert response.json() == {}
        self.telegram.wait_for(lambda _: len(self.sent()) > before, timeout=5)
        time.sleep(0.05)  # a long answer may come as several messages
        return self.sent()[before:]

    def message(self, **content: Any) -> dict[str, Any]:
        return {
            "update_id": 50_000 + next(_ids),
            "message": {
                "message_id": next(_ids),
                "date": int(time.time()),
                "chat": {"id": self.id, "type": "private", "first_name": "Awa"},
                "from": {"id": self.id, "is_bot": False, "first_name": "Awa"},
                **content,
            },
        }

    def say(self, text: str) -> list[dict[str, Any]]:
        return self.exchange(self.message(text=text))

    def tap(self, data: str) -> list[dict[str, Any]]:
        return self.exchange(callback_query_update(self.id, data, update_id=60_000 + next(_ids)))

    def share_contact(self, phone: str, *, user_id: int | None = None) -> list[dict[str, Any]]:
        contact = {"phone_number": phone, "first_name": "Awa", "user_id": user_id or self.id}
        return self.exchange(self.message(contact=contact))


@contextmanager
def app(app_factory: Any, engine: Engine) -> Iterator[tuple[TestClient, Fakes]]:
    with app_factory(engine, now=NOW.isoformat()) as (client, fakes):
        yield client, fakes


def buttons(sent: dict[str, Any]) -> list[tuple[str, str]]:
    markup = sent.get("reply_markup") or {}
    return [(b["text"], b["callback_data"]) for row in markup["inline_keyboard"] for b in row]


# -- the conversation -----------------------------------------------------------------------------


def test_start_shows_the_language_menu_with_numbered_buttons(
    demo_engine: Engine, app_factory: Any
) -> None:
    with app(app_factory, demo_engine) as (client, fakes):
        (menu,) = TelegramUser(client, fakes).say("/start")
    assert "\n1. Fran" in menu["text"]
    labels = buttons(menu)
    assert [data for _, data in labels] == ["1", "2", "3", "4", "5"]
    assert labels[0][0].startswith("1. Fran")
    assert labels[4][0] == "5. English"


def test_a_button_tap_is_answered_and_counts_as_its_number(
    demo_engine: Engine, app_factory: Any
) -> None:
    with app(app_factory, demo_engine) as (client, fakes):
        user = TelegramUser(client, fakes)
        user.say("/start")
        (main,) = user.tap("1")  # Français
        answered = [c for c in fakes.telegram.calls if c.method == "answerCallbackQuery"]
    assert len(answered) == 1
    assert answered[0].ok
    assert [data for _, data in buttons(main)] == ["1", "2", "3", "4", "5", "6", "7"]
    state = identity_row(demo_engine, "telegram", str(user.id)).state
    assert (state["lang"], state["flow"]) == ("fr", "menu")
    assert count(demo_engine, outbox) == 3  # two replies and one callback answer, all sent
    with demo_engine.connect() as conn:
        statuses = set(conn.execute(sa.select(outbox.c.status)).scalars())
    assert statuses == {"sent"}


def test_a_replayed_update_is_processed_once(demo_engine: Engine, app_factory: Any) -> None:
    with app(app_factory, demo_engine) as (client, fakes):
        user = TelegramUser(client, fakes)
        update = user.message(text="/start")
        user.exchange(update)
        again = user.post(update)
        time.sleep(0.3)
        sent = len(user.sent())
    assert (again.status_code, again.json()) == (200, {})
    assert sent == 1
    assert count(demo_engine, inbound_message) == 1


def test_voice_notes_and_photos_get_a_kind_answer(demo_sqlite: Engine, app_factory: Any) -> None:
    with app(app_factory, demo_sqlite) as (client, fakes):
        user = TelegramUser(client, fakes)
        user.say("/start")
        user.tap("1")
        voice = user.exchange(
            user.message(voice={"file_id": "v1", "file_unique_id": "u1", "duration": 3})
        )
        photo = user.exchange(
            user.message(photo=[{"file_id": "p1", "file_unique_id": "u2", "width": 9, "height": 9}])
        )
    for answer in (voice, photo):
        whole = "\n".join(m["text"] for m in answer)
        assert render("common.cannot_read") in whole
        assert [data for _, data in buttons(answer[-1])] == ["1", "2", "3", "4", "5", "6", "7"]


def test_a_failing_turn_apologises_in_the_webhook_answer(
    demo_sqlite: Engine, app_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with app(app_factory, demo_sqlite) as (client, fakes):
        engine = client.app.state.messaging.runtime.engine  # type: ignore[attr-defined]

        def broken(*_args: Any) -> Any:
            raise RuntimeError("boom")

        monkeypatch.setattr(engine, "turn", broken)
        user = TelegramUser(client, fakes)
        response = user.post(user.message(text="Bonjour"))
    assert response.status_code == 200
    assert response.json() == {
        "method": "sendMessage",
        "chat_id": user.id,
        "text": render("common.error"),
    }
    assert count(demo_sqlite, outbox) == 0


# -- attacks and accidents ----------------------------------------------------------------------


def test_missing_or_wrong_secret_is_refused_with_nothing_done(
    engine: Engine, app_factory: Any
) -> None:
    with app(app_factory, engine) as (client, fakes):
        user = TelegramUser(client, fakes)
        update = user.message(text="Bonjour")
        responses = [
            user.post(update, secret=None),
            user.post(update, secret=""),
            user.post(update, secret=TELEGRAM_SECRET + "x"),
            user.post(update, secret=TELEGRAM_SECRET.upper()),
        ]
        time.sleep(0.2)
        calls = [c.method for c in fakes.telegram.calls if c.method != "getMe"]
    assert [r.status_code for r in responses] == [403] * 4
    assert responses[0].headers["content-type"] == "application/problem+json"
    assert calls == []
    for table in (citizen, identity, inbound_message, outbox):
        assert count(engine, table) == 0


@pytest.mark.parametrize(
    "update",
    [
        {
            "channel_post": {
                "message_id": 1,
                "date": 0,
                "chat": {"id": -1001, "type": "channel"},
                "text": "x",
            }
        },
        {
            "poll": {
                "id": "1",
                "question": "?",
                "options": [],
                "total_voter_count": 0,
                "is_closed": False,
                "is_anonymous": True,
                "type": "regular",
                "allows_multiple_answers": False,
            }
        },
        {
            "edited_message": {
                "message_id": 1,
                "date": 0,
                "edit_date": 1,
                "chat": {"id": 5, "type": "private"},
                "from": {"id": 5, "is_bot": False, "first_name": "A"},
                "text": "edited",
            }
        },
        {
            "my_chat_member": {
                "chat": {"id": 5, "type": "private"},
                "from": {"id": 5, "is_bot": False, "first_name": "A"},
                "date": 0,
                "old_chat_member": {
                    "status": "member",
                    "user": {"id": 1, "is_bot": True, "first_name": "B"},
                },
                "new_chat_member": {
                    "status": "kicked",
                    "user": {"id": 1, "is_bot": True, "first_name": "B"},
                    "until_date": 0,
                },
            }
        },
        {
            "message": {
                "message_id": 1,
                "date": 0,
                "chat": {"id": -42, "type": "group", "title": "G"},
                "from": {"id": 5, "is_bot": False, "first_name": "A"},
                "text": "hi",
            }
        },
        {"some_future_kind": {"id": 1}},
    ],
    ids=["channel_post", "poll", "edited_message", "my_chat_member", "group", "unknown"],
)
def test_updates_the_bot_does_not_handle_get_200_and_nothing_done(
    engine: Engine, app_factory: Any, update: dict[str, Any]
) -> None:
    with app(app_factory, engine) as (client, fakes):
        response = TelegramUser(client, fakes).post({"update_id": 77, **update})
        time.sleep(0.1)
        calls = [c.method for c in fakes.telegram.calls if c.method != "getMe"]
    assert (response.status_code, response.json()) == (200, {})
    assert calls == []
    for table in (citizen, identity, inbound_message, outbox):
        assert count(engine, table) == 0


def test_a_body_that_is_not_an_update_is_a_bad_request(
    sqlite_engine: Engine, app_factory: Any
) -> None:
    with app(app_factory, sqlite_engine) as (client, fakes):
        user = TelegramUser(client, fakes)
        headers = {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
        not_json = client.post("/webhooks/telegram", content=b"{nope", headers=headers)
        a_list = user.post([1, 2])  # type: ignore[arg-type]
        no_id = user.post({"message": {"text": "x"}})
    # An update without its update_id could never be told from a replay: refused outright.
    assert [not_json.status_code, a_list.status_code, no_id.status_code] == [400, 400, 400]


# -- one citizen, one history ---------------------------------------------------------------------


def test_sharing_ones_own_number_links_telegram_to_the_whatsapp_citizen(
    demo_engine: Engine, app_factory: Any
) -> None:
    owner = add_citizen(
        demo_engine,
        phone=PHONE,
        verified=True,
        lang="en",
        identities=(("whatsapp", PHONE, NOW - timedelta(days=2)),),
    )
    _, reference = add_appointment(demo_engine, owner, NOW + timedelta(days=3))
    with app(app_factory, demo_engine) as (client, fakes):
        user = TelegramUser(client, fakes)
        user.say("/start")  # a Telegram citizen of its own, for now
        user.tap("1")  # Français: the main menu
        stranger = identity_row(demo_engine, "telegram", str(user.id)).citizen_id
        assert stranger != owner
        user.share_contact(PHONE.removeprefix("+"))  # Telegram sends it without the +
        mine = "\n".join(m["text"] for m in user.say("3"))  # my appointments
    linked = identity_row(demo_engine, "telegram", str(user.id))
    assert linked.citizen_id == owner
    assert reference in mine
    assert citizen_row(demo_engine, stranger) is None  # nothing of their own: merged away


def test_someone_elses_contact_links_nothing(demo_sqlite: Engine, app_factory: Any) -> None:
    owner = add_citizen(
        demo_sqlite, phone=PHONE, verified=True, identities=(("whatsapp", PHONE, NOW),)
    )
    with app(app_factory, demo_sqlite) as (client, fakes):
        user = TelegramUser(client, fakes)
        user.say("/start")
        answer = user.share_contact(PHONE, user_id=424242)
    assert identity_row(demo_sqlite, "telegram", str(user.id)).citizen_id != owner
    assert render("common.cannot_read") in answer[0]["text"]


def test_linking_moves_the_history_of_a_telegram_only_citizen(engine: Engine) -> None:
    from api.seed import seed_demo

    seed_demo(engine)
    owner = add_citizen(engine, phone=PHONE, verified=True, identities=(("whatsapp", PHONE, NOW),))
    alone = add_citizen(engine, lang="mos", identities=(("telegram", "77", NOW),))
    kept = add_citizen(engine, identities=(("telegram", "78", NOW), ("simulator", "sim-78", NOW)))
    appointment_id, _ = add_appointment(engine, alone, NOW + timedelta(days=2))
    with db.write(engine) as conn:
        assert link_verified_phone(conn, "telegram", "77", PHONE, NOW) == owner
        assert link_verified_phone(conn, "telegram", "77", PHONE, NOW) == owner  # idempotent
        assert link_verified_phone(conn, "telegram", "unknown", PHONE, NOW) is None
        assert link_verified_phone(conn, "telegram", "78", "+2250701000077", NOW) == kept
        assert link_verified_phone(conn, "telegram", "78", "not a phone", NOW) is None
    with engine.connect() as conn:
        moved = conn.execute(
            sa.select(appointment.c.citizen_id).where(appointment.c.id == appointment_id)
        ).scalar_one()
    assert moved == owner
    assert citizen_row(engine, alone) is None
    assert citizen_row(engine, owner).lang == "fr"  # theirs was set: kept
    unowned = citizen_row(engine, kept)  # an unowned number: now theirs, verified
    assert (unowned.phone, unowned.phone_verified, unowned.country) == (
        "+2250701000077",
        True,
        "CI",
    )


# -- parsing and rendering, without the app ---------------------------------------------------


def test_parse_update_kinds_and_commands() -> None:
    def parsed(update: dict[str, Any]) -> tuple[Kind, str, str | None]:
        result = parse_update(update, NOW)
        assert result is not None
        assert result.inbound is not None
        incoming = result.inbound.incoming
        return incoming.kind, incoming.text, result.inbound.phone

    def message(**content: Any) -> dict[str, Any]:
        update = message_update(9, "x", update_id=next(_ids))
        del update["message"]["text"]
        update["message"].update(content)
        return update

    assert parsed(message_update(9, "/start", update_id=1)) == (Kind.text, "0", None)
    assert parsed(message_update(9, "/start@diaspora_bot ref42", update_id=2))[1] == "0"
    assert parsed(message_update(9, "/help", update_id=3))[1] == "?"
    assert parsed(message_update(9, "/unknown", update_id=4))[1] == "/unknown"
    sticker = {
        "file_id": "s",
        "file_unique_id": "s",
        "width": 1,
        "height": 1,
        "is_animated": False,
        "is_video": False,
        "type": "regular",
    }
    assert parsed(message(sticker=sticker))[0] is Kind.sticker
    assert parsed(message(location={"latitude": 5.3, "longitude": -4.0}))[0] is Kind.location
    assert parsed(message(document={"file_id": "d", "file_unique_id": "d"}))[0] is Kind.document
    own = {"phone_number": "+225 07 01 00 00 09", "first_name": "A", "user_id": 9}
    assert parsed(message(contact=own)) == (Kind.contact, "", PHONE)
    other = {"phone_number": "2250701000009", "first_name": "B", "user_id": 10}
    assert parsed(message(contact=other)) == (Kind.other, "", None)
    tap = parse_update(callback_query_update(9, "2", update_id=99, query_id="q1"), NOW)
    assert tap is not None
    assert tap.inbound is not None
    assert (tap.callback_query_id, tap.chat_id, tap.inbound.incoming.text) == ("q1", 9, "2")
    assert tap.inbound.provider_id == "99"
    assert parse_update({"no": "update_id"}, NOW) is None


def test_keyboard_buttons_carry_numbers_and_short_labels() -> None:
    markup = keyboard(
        ["Consulat général de Côte d'Ivoire à Abidjan, Plateau, guichet des passeports", "Non"]
    )
    assert markup is not None
    rows = markup.inline_keyboard
    assert [row[0].callback_data for row in rows] == ["1", "2"]
    assert all(len(row[0].text) <= 48 for row in rows)
    assert rows[0][0].text.endswith("…")
    assert rows[1][0].text == "2. Non"
    assert keyboard([]) is None


# -- polling and set-webhook ------------------------------------------------------------------


def _settings(engine: Engine, telegram: FakeTelegramAPI, **extra: Any) -> Settings:
    return Settings(
        database_url=engine.url.render_as_string(hide_password=False),
        public_base_url=PUBLIC_BASE_URL,
        telegram_bot_token=telegram.token,
        telegram_webhook_secret=TELEGRAM_SECRET,
        telegram_api_base_url=telegram.url,
        **extra,
    )


def test_polling_deletes_the_webhook_and_feeds_the_same_handler(
    demo_sqlite: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    with FakeTelegramAPI(token="123456:TEST", long_poll_cap=0.2) as telegram:
        telegram.webhook_url = "https://old.example/hook"
        settings = _settings(demo_sqlite, telegram, telegram_mode="polling")
        telegram.push_update(message_update(4242, "/start"))

        async def scenario() -> None:
            worker = Worker(settings, demo_sqlite, scheduler=False, poll_interval=0.05)
            await worker.start()
            try:
                await asyncio.to_thread(
                    telegram.wait_for, lambda _: bool(telegram.sent_messages(4242)), 5
                )
            finally:
                await worker.stop()

        asyncio.run(scenario())
        methods = [c.method for c in telegram.calls]
    assert methods.index("deleteWebhook") < methods.index("getUpdates")
    assert telegram.webhook_url == ""
    (menu,) = telegram.sent_messages(4242)
    assert [data for _, data in buttons(menu)] == ["1", "2", "3", "4", "5"]


def test_set_webhook_command_registers_url_secret_and_updates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from api.cli import app as cli

    with FakeTelegramAPI(token="123456:TEST") as telegram:
        for name, value in {
            "PTB_TIMEDELTA": "true",
            "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            "TELEGRAM_BOT_TOKEN": telegram.token,
            "TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET,
            "TELEGRAM_API_BASE_URL": telegram.url,
        }.items():
            monkeypatch.setenv(name, value)
        result = CliRunner().invoke(cli, ["telegram", "set-webhook"])
    assert result.exit_code == 0, result.output
    assert telegram.webhook_url == f"{PUBLIC_BASE_URL}/webhooks/telegram"
    assert telegram.webhook_secret == TELEGRAM_SECRET
    assert telegram.webhook_allowed_updates == ["message", "callback_query"]
    assert "/webhooks/telegram" in result.output


# -- the bulk lane's lean request -----------------------------------------------------------------


def test_the_bulk_lane_sends_and_is_refused_exactly_as_the_default_request() -> None:
    """Announcements go through a second Bot over `BulkRequest` (the lean pooled client), their
    texts posted as forms of ours (`BulkRequest.post_form`): the same call reaches Telegram,
    and every answer maps to the same outcome; a bot that cannot connect retries, on either
    request."""
    import socket
    from dataclasses import replace

    from bot.channels.telegram import TelegramSender, make_bot, make_bulk_bot
    from bot.outbox import LANE_BULK, LANE_NOTIFICATION, OutboxItem, SendResult

    token = "123456:BULK"
    item = OutboxItem(
        id=1,
        channel="telegram",
        address="4242",
        lang="fr",
        lane=LANE_NOTIFICATION,
        kind="broadcast",
        payload={"text": "Mission consulaire à Bouaké le 12", "choices": ["Oui", "Non"]},
    )
    faults: list[tuple[str, Any]] = [
        ("none", None),
        ("429", lambda tg: tg.fail_next(1, 429, retry_after=3)),
        ("blocked", lambda tg: tg.block_chat(4242)),
        ("500", lambda tg: tg.fail_next(1, 500)),
        ("400", lambda tg: tg.fail_next(1, 400)),
        (
            "chat not found",
            lambda tg: tg.fail_next(1, 400, description="Bad Request: chat not found"),
        ),
        ("403", lambda tg: tg.fail_next(1, 403, description="Forbidden: user is deactivated")),
        ("502", lambda tg: tg.fail_next(1, 502)),
        ("409", lambda tg: tg.fail_next(1, 409, description="Conflict: terminated by other")),
    ]

    async def outcome(lane: int, fault: Any) -> tuple[SendResult, list[Any]]:
        with FakeTelegramAPI(token=token) as tg:
            sender = TelegramSender(make_bot(token, tg.url), make_bulk_bot(token, tg.url))
            if fault is not None:
                fault(tg)
            try:
                result = await sender.send(replace(item, lane=lane), datetime.now(UTC))
            finally:
                await sender.close()
            calls = [(c.method, c.params, c.status) for c in tg.calls]
            return replace(result, provider_id=None), calls

    for name, fault in faults:
        default = asyncio.run(outcome(LANE_NOTIFICATION, fault))
        lean = asyncio.run(outcome(LANE_BULK, fault))
        assert lean == default, name
        assert lean[1], name  # the call did reach the fake
    # without choices, no reply_markup at all, on either lane
    item = replace(item, payload={"text": "Fermeture le 11 décembre"})
    default, lean = (asyncio.run(outcome(lane, None)) for lane in (LANE_NOTIFICATION, LANE_BULK))
    assert lean == default
    assert "reply_markup" not in lean[1][-1][1]
    assert lean[0].outcome == "sent"

    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{unused.getsockname()[1]}"

    async def unreachable(lane: int) -> SendResult:
        sender = TelegramSender(make_bot(token, nowhere), make_bulk_bot(token, nowhere))
        try:
            return await sender.send(replace(item, lane=lane), datetime.now(UTC))
        finally:
            await sender.close()

    results = [asyncio.run(unreachable(lane)) for lane in (LANE_NOTIFICATION, LANE_BULK)]
    assert [r.outcome for r in results] == ["retry", "retry"]
