"""WhatsApp through Twilio: signed form posts in, TwiML out, delivery callbacks recorded.

Real signatures (twilio's RequestValidator), the real app, the fake Twilio API behind it.
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from api.messaging import build_messaging
from api.models import InboundMessage
from bot.channels import split_text
from bot.channels.whatsapp import parse_form, parse_status, twiml
from bot.i18n import RenderedReply, Renderer
from bot.runtime import Inbound
from flows.engine import Incoming, Kind
from flows.messages import msg
from tests.fakes.twilio_api import inbound_whatsapp_form, status_callback_form, twilio_signature
from tests.support.channels import PUBLIC_BASE_URL, Fakes
from tests.support.offline import offline  # noqa: F401  (fixture)
from tests.support.people import (
    add_citizen,
    add_outbox,
    citizen,
    citizen_row,
    count,
    identity,
    identity_row,
    outbox_rows,
)

pytestmark = pytest.mark.usefixtures("offline")

PHONE = "+2250701000001"
URL = f"{PUBLIC_BASE_URL}/webhooks/whatsapp"
STATUS_URL = f"{PUBLIC_BASE_URL}/webhooks/whatsapp/status"
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
inbound_message = InboundMessage.__table__  # type: ignore[attr-defined]


def render(key: str, lang: str = "fr") -> str:
    return Renderer().render(msg(key), lang)


class Phone:
    """A WhatsApp user writing to the bot through the app's webhook, as Twilio would."""

    def __init__(self, client: TestClient, fakes: Fakes, phone: str = PHONE) -> None:
        self.client = client
        self.fakes = fakes
        self.phone = phone

    def post(self, form: dict[str, str], *, url: str = URL, signature: str | None = None) -> Any:
        sign = twilio_signature(self.fakes.twilio.auth_token, url, form)
        headers = {"X-Twilio-Signature": signature if signature is not None else sign}
        path = url.removeprefix(PUBLIC_BASE_URL)
        return self.client.post(path, data=form, headers=headers)

    def send(self, body: str = "", **fields: Any) -> list[str]:
        form = inbound_whatsapp_form(
            self.phone, body, account_sid=self.fakes.twilio.account_sid, **fields
        )
        response = self.post(form)
        assert response.status_code == 200, response.text
        return messages(response.text)


def messages(xml: str) -> list[str]:
    root = ET.fromstring(xml)
    assert root.tag == "Response"
    return [m.findtext("Body") or (m.text or "") for m in root.iter("Message")]


@contextmanager
def app(app_factory: Any, engine: Engine) -> Iterator[tuple[TestClient, Fakes]]:
    with app_factory(engine, now=NOW.isoformat()) as (client, fakes):
        yield client, fakes


# -- the conversation -----------------------------------------------------------------------------


def test_a_signed_message_is_answered_in_twiml(demo_engine: Engine, app_factory: Any) -> None:
    with app(app_factory, demo_engine) as (client, fakes):
        phone = Phone(client, fakes)
        form = inbound_whatsapp_form(PHONE, "Bonjour", account_sid=fakes.twilio.account_sid)
        response = phone.post(form)

        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/xml")
        (first,) = messages(response.text)
        assert "\n1. Fran" in first  # the language menu, numbered
        assert "5. English" in first
        # The answer is the TwiML body: nothing went to the provider on the request path.
        assert fakes.twilio.calls == []
    row = identity_row(demo_engine, "whatsapp", PHONE)
    owner = citizen_row(demo_engine, row.citizen_id)
    assert (owner.phone, owner.phone_verified, owner.country) == (PHONE, True, "CI")


def test_a_replayed_message_is_processed_once(demo_engine: Engine, app_factory: Any) -> None:
    with app(app_factory, demo_engine) as (client, fakes):
        phone = Phone(client, fakes)
        phone.send("Bonjour")
        choose = inbound_whatsapp_form(PHONE, "1", account_sid=fakes.twilio.account_sid)
        first = phone.post(choose)
        again = phone.post(choose)

    assert messages(first.text)  # French chosen: the main menu
    assert again.status_code == 200
    assert messages(again.text) == []
    assert again.text.strip().endswith("<Response />")
    assert count(demo_engine, inbound_message) == 2
    state = identity_row(demo_engine, "whatsapp", PHONE).state
    assert (state["flow"], state["step"], state["lang"]) == ("menu", "main", "fr")


def test_unknown_extra_fields_are_fine(demo_engine: Engine, app_factory: Any) -> None:
    with app(app_factory, demo_engine) as (client, fakes):
        phone = Phone(client, fakes)
        form = inbound_whatsapp_form(PHONE, "Bonjour", account_sid=fakes.twilio.account_sid)
        form.update(
            ReferralNumMedia="0",
            ChannelMetadata='{"type":"whatsapp","data":{"context":{}}}',
            SomethingTwilioAddsNextYear="x" * 300,
        )
        response = phone.post(form)
    assert response.status_code == 200
    assert messages(response.text)


@pytest.mark.parametrize(
    ("fields", "kind"),
    [
        ({"media_content_type": "audio/ogg"}, "voice note"),
        ({"media_content_type": "image/jpeg"}, "photo"),
        ({"media_content_type": "image/webp"}, "sticker"),
        ({"media_content_type": "application/pdf"}, "document"),
        ({"latitude": 5.35, "longitude": -4.0}, "location"),
    ],
)
def test_what_cannot_be_read_gets_a_kind_answer_and_the_step_again(
    demo_sqlite: Engine, app_factory: Any, fields: dict[str, Any], kind: str
) -> None:
    with app(app_factory, demo_sqlite) as (client, fakes):
        phone = Phone(client, fakes)
        phone.send("Bonjour")
        (menu,) = phone.send("1")
        answer = "\n".join(phone.send(**fields))
    assert render("common.cannot_read") in answer, kind
    menu_choices = [line for line in menu.splitlines() if line[:2] in {"1.", "2.", "6."}]
    assert all(line in answer for line in menu_choices), answer


def test_a_failing_turn_answers_a_kind_apology(
    demo_sqlite: Engine, app_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with app(app_factory, demo_sqlite) as (client, fakes):
        engine = client.app.state.messaging.runtime.engine  # type: ignore[attr-defined]

        def broken(*_args: Any) -> Any:
            raise RuntimeError("boom with +2250701000001 inside")

        monkeypatch.setattr(engine, "turn", broken)
        answer = Phone(client, fakes).send("Bonjour")
    assert answer == [render("common.error")]
    assert "Traceback" not in answer[0]
    assert "boom" not in answer[0]


# -- authentication ---------------------------------------------------------------------------


def test_missing_or_wrong_signature_is_refused_with_nothing_done(
    engine: Engine, app_factory: Any
) -> None:
    with app(app_factory, engine) as (client, fakes):
        phone = Phone(client, fakes)
        form = inbound_whatsapp_form(PHONE, "Bonjour", account_sid=fakes.twilio.account_sid)
        good = twilio_signature(fakes.twilio.auth_token, URL, form)
        tampered = {**form, "Body": "Bonjour!"}
        attempts = [
            client.post("/webhooks/whatsapp", data=form),  # no signature
            phone.post(form, signature=""),
            phone.post(form, signature=twilio_signature("f" * 32, URL, form)),  # wrong token
            phone.post(
                form,
                signature=twilio_signature(
                    fakes.twilio.auth_token, "https://evil.example/webhooks/whatsapp", form
                ),
            ),
            phone.post(tampered, signature=good),
            client.post(
                "/webhooks/whatsapp/status",
                data=status_callback_form("SM" + "1" * 32, "delivered", PHONE),
            ),
        ]
    assert [r.status_code for r in attempts] == [403] * len(attempts)
    assert all(r.headers["content-type"] == "application/problem+json" for r in attempts)
    assert count(engine, citizen) == count(engine, identity) == count(engine, inbound_message) == 0


def test_without_an_auth_token_everything_is_refused(
    sqlite_engine: Engine, app_factory: Any
) -> None:
    with app(app_factory, sqlite_engine) as (client, fakes):
        client.app.state.settings.twilio_auth_token = None  # type: ignore[attr-defined]
        response = Phone(client, fakes).post(
            inbound_whatsapp_form(PHONE, "Bonjour", account_sid=fakes.twilio.account_sid)
        )
    assert response.status_code == 403
    assert count(sqlite_engine, citizen) == 0


# -- delivery callbacks -----------------------------------------------------------------------


def test_status_callbacks_move_forward_only(engine: Engine, app_factory: Any) -> None:
    sid = "SM" + "a" * 32
    row_id = add_outbox(engine, "whatsapp", PHONE, status="sent", provider_message_id=sid)
    with app(app_factory, engine) as (client, fakes):
        phone = Phone(client, fakes)

        def status(value: str, **kw: Any) -> str:
            response = phone.post(status_callback_form(sid, value, PHONE, **kw), url=STATUS_URL)
            assert response.status_code == 200
            (row,) = outbox_rows(engine, id=row_id)
            return str(row.status)

        assert status("sent") == "sent"
        assert status("delivered") == "delivered"
        assert status("read") == "read"
        assert status("delivered") == "read"  # late, out of order: ignored
        assert status("failed", error_code=30008) == "read"
        assert status("queued") == "read"
    (row,) = outbox_rows(engine, id=row_id)
    assert row.delivered_at is not None
    assert row.read_at is not None


def test_failed_delivery_keeps_the_error_and_21610_makes_the_number_unreachable(
    engine: Engine, app_factory: Any
) -> None:
    citizen_id = add_citizen(engine, phone=PHONE, identities=(("whatsapp", PHONE, NOW),))
    failed, opted_out = "SM" + "b" * 32, "SM" + "c" * 32
    add_outbox(engine, "whatsapp", PHONE, status="sent", provider_message_id=failed)
    add_outbox(engine, "whatsapp", PHONE, status="sent", provider_message_id=opted_out)
    with app(app_factory, engine) as (client, fakes):
        phone = Phone(client, fakes)
        one = phone.post(status_callback_form(failed, "undelivered", PHONE, 30003), url=STATUS_URL)
        two = phone.post(status_callback_form(opted_out, "failed", PHONE, 21610), url=STATUS_URL)
        unknown = phone.post(status_callback_form("SM" + "d" * 32, "read", PHONE), url=STATUS_URL)
    assert [one.status_code, two.status_code, unknown.status_code] == [200, 200, 200]
    first, second = outbox_rows(engine, channel="whatsapp")
    assert (first.status, first.error) == ("failed", "30003")
    assert second.status == "failed"
    assert second.error.startswith("21610")
    assert identity_row(engine, "whatsapp", PHONE).unreachable_at is not None
    assert citizen_row(engine, citizen_id).opted_out is True


def test_writing_again_makes_an_unreachable_number_reachable(
    demo_sqlite: Engine, app_factory: Any
) -> None:
    add_citizen(demo_sqlite, phone=PHONE, verified=True, identities=(("whatsapp", PHONE, NOW),))
    with demo_sqlite.begin() as conn:
        conn.execute(sa.update(identity).values(unreachable_at=NOW))
    with app(app_factory, demo_sqlite) as (client, fakes):
        Phone(client, fakes).send("Bonjour")
    assert identity_row(demo_sqlite, "whatsapp", PHONE).unreachable_at is None


# -- wire format, without the app ---------------------------------------------------------------


def test_long_replies_are_cut_within_1600_characters_on_line_boundaries() -> None:
    lines = [f"{i}. Consulat général de la République, guichet {i}" for i in range(1, 120)]
    reply = RenderedReply("Choisissez un guichet :\n" + "\n".join(lines))
    bodies = messages(twiml([reply, RenderedReply("Merci")]))
    assert len(bodies) > 2
    assert all(len(body) <= 1600 for body in bodies)
    assert "\n".join(bodies[:-1]) == reply.text  # nothing lost, cut between lines
    assert bodies[-1] == "Merci"
    one_line = "x" * 4000
    parts = split_text(one_line, 1600)
    assert [len(p) for p in parts] == [1600, 1600, 800]


def test_parse_form_reads_buttons_media_and_refuses_what_is_not_whatsapp() -> None:
    def kind_of(**fields: Any) -> tuple[Kind, str]:
        form = inbound_whatsapp_form(PHONE, **fields)
        inbound = parse_form(form, NOW)
        assert inbound is not None
        return inbound.incoming.kind, inbound.incoming.text

    assert kind_of(body="Bonjour") == (Kind.text, "Bonjour")
    assert kind_of(button_text="Oui", button_payload="1") == (Kind.text, "1")
    assert kind_of(button_text="Oui") == (Kind.text, "Oui")
    assert kind_of(media_content_type="audio/ogg; codecs=opus")[0] is Kind.voice
    assert kind_of(media_content_type="audio/mpeg")[0] is Kind.audio
    assert kind_of(media_content_type="video/mp4")[0] is Kind.video
    assert kind_of(body="caption", media_content_type="image/png")[0] is Kind.photo
    inbound = parse_form(inbound_whatsapp_form(PHONE, "x", message_sid="SM1"), NOW)
    assert inbound is not None
    assert (inbound.address, inbound.phone, inbound.phone_verified) == (PHONE, PHONE, True)
    assert inbound.provider_id == "SM1"
    sms = {**inbound_whatsapp_form(PHONE, "x"), "From": PHONE}
    assert parse_form(sms, NOW) is None
    assert parse_form({**sms, "From": "whatsapp:not-a-number"}, NOW) is None
    status = parse_status(status_callback_form("SM9", "undelivered", PHONE, 30003))
    assert status is not None
    assert (status.status, status.error_code, status.address) == ("undelivered", 30003, PHONE)


# -- the bulk lane's lean path --------------------------------------------------------------------


def test_the_bulk_lane_sends_and_is_refused_exactly_as_the_sdk_path() -> None:
    """Announcements skip the SDK's layers (`WhatsAppSender._create_bulk`): the same form,
    auth and URI reach Twilio, and every refusal maps to the same outcome."""
    import asyncio
    from dataclasses import replace

    from bot.channels.whatsapp import WhatsAppSender
    from bot.outbox import LANE_BULK, LANE_NOTIFICATION, OutboxItem
    from tests.fakes import FakeTwilioAPI

    now = datetime.now(UTC)
    item = OutboxItem(
        id=1,
        channel="whatsapp",
        address=PHONE,
        lang="fr",
        lane=LANE_NOTIFICATION,
        kind="broadcast",
        payload={"text": "Mission consulaire à Bouaké le 12"},
        last_inbound_at=now,
    )
    faults: list[tuple[str, Any]] = [
        ("none", None),
        ("opted out", lambda tw: tw.opt_out(PHONE)),
        ("outside the window", lambda tw: tw.outside_window(PHONE)),
        ("429", lambda tw: tw.fail_next(1, 429)),
        ("500", lambda tw: tw.fail_next(1, 500)),
        ("503", lambda tw: tw.fail_next(1, 503)),
        ("no template", "stale"),
        ("wrong credentials", "auth"),
    ]

    async def outcome(lane: int, name: str, fault: Any) -> tuple[Any, list[Any]]:
        with FakeTwilioAPI() as tw:
            token = "wrong" if fault == "auth" else tw.auth_token
            sender = WhatsAppSender.create(
                tw.account_sid,
                token,
                "whatsapp:+14155238886",
                api_base_url=tw.base_url,
                status_callback="https://bot.example/webhooks/whatsapp/status",
            )
            this = replace(item, lane=lane)
            if fault == "stale":
                this = replace(this, last_inbound_at=None)
            elif callable(fault):
                fault(tw)
            try:
                result = await sender.send(this, now)
            finally:
                await sender.close()
            calls = [(c.method, c.params, c.status) for c in tw.calls]
            return replace(result, provider_id=None), calls

    for name, fault in faults:
        sdk = asyncio.run(outcome(LANE_NOTIFICATION, name, fault))
        lean = asyncio.run(outcome(LANE_BULK, name, fault))
        assert lean == sdk, name
    templated = {"fr": "HX" + "0" * 32}
    with FakeTwilioAPI() as tw:

        async def both() -> list[Any]:
            sender = WhatsAppSender.create(
                tw.account_sid,
                tw.auth_token,
                "whatsapp:+14155238886",
                api_base_url=tw.base_url,
                templates=templated,
            )
            stale = replace(item, last_inbound_at=None)
            try:
                return [
                    await sender.send(replace(stale, lane=lane), now)
                    for lane in (LANE_NOTIFICATION, LANE_BULK)
                ]
            finally:
                await sender.close()

        results = asyncio.run(both())
        assert [r.outcome for r in results] == ["sent", "sent"]
        sdk_form, lean_form = tw.sent_messages()
        assert lean_form == sdk_form
        assert "ContentSid" in lean_form


def test_first_messages_of_one_number_at_once_make_one_citizen(demo_engine: Engine) -> None:
    """A new number's first messages racing each other (on WhatsApp, and on Telegram with the
    same number shared): one citizen, one identity per channel, every message answered."""
    runtime = build_messaging(demo_engine).runtime
    start = threading.Barrier(6)
    outputs: list[Any] = []

    def write(n: int) -> None:
        channel, address = ("whatsapp", PHONE) if n % 2 else ("telegram", "777")
        inbound = Inbound(
            channel=channel,
            address=address,
            incoming=Incoming(text="Bonjour"),
            now=NOW,
            provider_id=f"race-{n}",
            phone=PHONE,
            phone_verified=True,
        )
        start.wait()
        outputs.append(runtime.handle(inbound))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outputs) == 6
    assert not any(o.failed or o.duplicate for o in outputs)
    with demo_engine.connect() as conn:
        citizens = conn.execute(sa.text("SELECT id FROM citizen WHERE phone = :p"), {"p": PHONE})
        ids = [row[0] for row in citizens]
        owners = conn.execute(sa.text("SELECT channel, citizen_id FROM channel_identity"))
        identities = sorted(tuple(row) for row in owners)
    assert len(ids) == 1
    assert identities == [("telegram", ids[0]), ("whatsapp", ids[0])]


def test_the_bulk_lane_tells_a_request_that_never_left_from_one_that_may_have() -> None:
    """A refused connection surely sent nothing: retried, not in doubt (as on the SDK's path);
    an answer that never comes after the request went out leaves it in doubt, so that Twilio
    is asked before it goes again."""
    import asyncio
    import socket
    from dataclasses import replace

    from bot.channels.bulk_http import BulkClient
    from bot.channels.whatsapp import WhatsAppSender
    from bot.outbox import LANE_BULK, LANE_NOTIFICATION, OutboxItem
    from tests.fakes import FakeTwilioAPI

    now = datetime.now(UTC)
    item = OutboxItem(
        id=1,
        channel="whatsapp",
        address=PHONE,
        lang="fr",
        lane=LANE_BULK,
        kind="broadcast",
        payload={"text": "Mission consulaire à Bouaké le 12"},
        last_inbound_at=now,
    )
    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{unused.getsockname()[1]}"

    async def refused(lane: int) -> Any:
        sender = WhatsAppSender.create(
            "AC" + "0" * 32, "token", "+14155238886", api_base_url=nowhere
        )
        try:
            return await sender.send(replace(item, lane=lane), now)
        finally:
            await sender.close()

    results = [asyncio.run(refused(lane)) for lane in (LANE_NOTIFICATION, LANE_BULK)]
    assert [(r.outcome, r.in_doubt) for r in results] == [("retry", False), ("retry", False)]

    async def unanswered(tw: FakeTwilioAPI) -> Any:
        sender = WhatsAppSender.create(
            tw.account_sid, tw.auth_token, "+14155238886", api_base_url=tw.base_url
        )
        sender.bulk = BulkClient(timeout=0.5)  # Twilio holds its answers longer than that
        try:
            return await sender.send(item, now)
        finally:
            await sender.close()

    with FakeTwilioAPI() as tw:
        tw.hold_answers()
        try:
            result = asyncio.run(unanswered(tw))
        finally:
            tw.release_answers()
        assert (result.outcome, result.in_doubt) == ("retry", True)
        assert [c.method for c in tw.calls] == ["messages.create"]  # it had gone out
