"""Talk to a person, end to end: the citizen asks on WhatsApp or Telegram → the inbox → an
agent replies (through the outbox and the fake provider) → the citizen receives it and
answers → the agent sees it → close → the citizen is back with the bot. Agents see their
posts only; a WhatsApp reply outside the 24-hour window without a template is refused."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from api.db import write
from api.domain.tables import table
from api.models import ChannelIdentity, OutboxMessage, utcnow
from tests.support.channels import TelegramChat, WhatsAppChat
from tests.support.offline import offline  # noqa: F401  (fixture)
from tests.support.staff import admin_token, agent_token

pytestmark = pytest.mark.usefixtures("offline")

identity_t = table(ChannelIdentity)
outbox_t = table(OutboxMessage)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def ask_the_desk(chat: WhatsAppChat | TelegramChat) -> None:
    chat.send("Bonjour")
    chat.send("1")  # Français
    asked = chat.send("7")
    assert "consulat" in asked.whole.lower(), asked.whole
    if "Bouaké" in asked.whole:  # +225: Abidjan or Bouaké
        chat.send("1")
    said = chat.send("J'ai perdu mon passeport, que faire ?")
    assert "répond" in said.whole, said.whole


def received(fakes: Any, chat: WhatsAppChat | TelegramChat, count: int) -> list[str]:
    """The texts pushed to the citizen (outside replies), once there are `count`."""
    if isinstance(chat, WhatsAppChat):
        provider = fakes.twilio
        sent = lambda: fakes.twilio.sent_messages(to=chat.phone)  # noqa: E731
        key = "Body"
    else:
        provider = fakes.telegram
        sent = lambda: fakes.telegram.sent_messages(chat_id=chat.user_id)  # noqa: E731
        key = "text"
    provider.wait_for(lambda _calls: len(sent()) >= count, timeout=10)
    return [str(m.get(key, "")) for m in sent()]


@pytest.mark.parametrize("channel", ["whatsapp", "telegram"])
def test_the_whole_round_trip(demo_engine: Engine, app_factory: Any, channel: str) -> None:
    agent = auth(agent_token(demo_engine, "ABJ"))
    with app_factory(demo_engine) as (client, fakes):
        phone = "+2250701000077"
        chat: WhatsAppChat | TelegramChat = (
            WhatsAppChat(client, fakes, phone)
            if channel == "whatsapp"
            else TelegramChat(client, fakes, phone)
        )
        ask_the_desk(chat)

        inbox = client.get("/api/v1/conversations?post=ABJ&status=waiting", headers=agent)
        assert inbox.status_code == 200, inbox.text
        (item,) = inbox.json()["items"]
        assert item["status"] == "waiting"
        assert item["channel"] == channel
        cid = item["id"]

        before = len(received(fakes, chat, 0))
        sent = client.post(
            f"/api/v1/conversations/{cid}/messages",
            json={"text": "Venez au consulat avec une déclaration de perte."},
            headers=agent,
        )
        assert sent.status_code == 201, sent.text
        assert sent.json()["direction"] == "out"
        texts = received(fakes, chat, before + 1)
        assert "déclaration de perte" in texts[-1]
        assert "Abidjan" in texts[-1]

        answer = chat.send("Merci, je viens demain")
        assert "Transmis" in answer.whole, answer.whole
        detail = client.get(f"/api/v1/conversations/{cid}", headers=agent).json()
        assert [(m["direction"], m["text"]) for m in detail["messages"]] == [
            ("in", "J'ai perdu mon passeport, que faire ?"),
            ("out", "Venez au consulat avec une déclaration de perte."),
            ("in", "Merci, je viens demain"),
        ]
        assert detail["status"] == "open"
        assert detail["waiting_since"] is not None  # the citizen's answer awaits the agent

        before = len(received(fakes, chat, 0))
        closed = client.post(f"/api/v1/conversations/{cid}/close", headers=agent)
        assert closed.status_code == 200, closed.text
        assert closed.json()["status"] == "closed"
        texts = received(fakes, chat, before + 1)
        assert "clos" in texts[-1]
        menu = chat.send("1")  # the bot again: 1 books an appointment
        assert "Transmis" not in menu.whole
        assert "Abidjan" in menu.whole  # which post?


def test_an_agent_of_another_post_is_refused(demo_engine: Engine, app_factory: Any) -> None:
    other = auth(agent_token(demo_engine, "ACC"))
    with app_factory(demo_engine) as (client, fakes):
        ask_the_desk(WhatsAppChat(client, fakes, "+2250701000078"))
        admin = auth(admin_token(demo_engine))
        (item,) = client.get("/api/v1/conversations", headers=admin).json()["items"]
        cid = item["id"]
        assert client.get("/api/v1/conversations", headers=other).json()["total"] == 0
        assert client.get(f"/api/v1/conversations/{cid}", headers=other).status_code == 404
        for path, body in (
            ("messages", {"text": "bonjour"}),
            ("assign", None),
            ("close", None),
        ):
            refused = client.post(f"/api/v1/conversations/{cid}/{path}", json=body, headers=other)
            assert refused.status_code == 404, (path, refused.text)
        assert client.get("/api/v1/conversations?post=ABJ", headers=other).status_code == 404


def test_assign_and_every_write_is_audited(demo_engine: Engine, app_factory: Any) -> None:
    agent = auth(agent_token(demo_engine, "ABJ"))
    with app_factory(demo_engine) as (client, fakes):
        ask_the_desk(WhatsAppChat(client, fakes, "+2250701000079"))
        (item,) = client.get("/api/v1/conversations", headers=agent).json()["items"]
        taken = client.post(f"/api/v1/conversations/{item['id']}/assign", headers=agent)
        assert taken.status_code == 200
        assert taken.json()["assigned_to"] is not None
        assert taken.json()["status"] == "open"
        client.post(f"/api/v1/conversations/{item['id']}/close", headers=agent)
        again = client.post(f"/api/v1/conversations/{item['id']}/close", headers=agent)
        assert again.status_code == 409
        audit = client.get("/api/v1/audit", headers=auth(admin_token(demo_engine))).json()
        actions = [e["action"] for e in audit["items"] if e["entity"] == "desk_conversation"]
        assert sorted(actions) == ["assign", "close"]


def test_a_whatsapp_reply_outside_the_window_without_template_is_refused_and_not_sent(
    demo_engine: Engine, app_factory: Any
) -> None:
    agent = auth(agent_token(demo_engine, "ABJ"))
    with app_factory(demo_engine) as (client, fakes):
        chat = WhatsAppChat(client, fakes, "+2250701000080")
        ask_the_desk(chat)
        (item,) = client.get("/api/v1/conversations", headers=agent).json()["items"]
        with write(demo_engine) as conn:
            conn.execute(
                sa.update(identity_t)
                .where(identity_t.c.channel == "whatsapp")
                .values(last_inbound_at=utcnow() - timedelta(hours=25))
            )
            queued = conn.execute(sa.select(sa.func.count()).select_from(outbox_t)).scalar()
        refused = client.post(
            f"/api/v1/conversations/{item['id']}/messages",
            json={"text": "Bonjour"},
            headers=agent,
        )
        assert refused.status_code == 409
        assert "24 hours" in refused.json()["detail"]
        with write(demo_engine) as conn:
            after = conn.execute(sa.select(sa.func.count()).select_from(outbox_t)).scalar()
        assert after == queued
        detail = client.get(f"/api/v1/conversations/{item['id']}", headers=agent).json()
        assert [m["direction"] for m in detail["messages"]] == ["in"]


# -- the console's inbox ---------------------------------------------------------------------


def test_the_console_inbox_reply_canned_answers_and_close(
    demo_engine: Engine, app_factory: Any
) -> None:
    from tests.test_console import csrf, login, make_staff

    make_staff(demo_engine, "awa@abj.test", "agent", "ABJ")
    make_staff(demo_engine, "kofi@acc.test", "agent", "ACC")
    with app_factory(demo_engine) as (client, fakes):
        client.base_url = "https://testserver"  # the session cookie is Secure
        chat = WhatsAppChat(client, fakes, "+2250701000081")
        ask_the_desk(chat)
        login(client, "awa@abj.test")
        inbox = client.get("/console/inbox")
        assert inbox.status_code == 200
        assert "En attente" in inbox.text
        assert "/static/inbox.js" in inbox.text
        (cid,) = {int(n) for n in re.findall(r"/console/inbox/(\d+)", inbox.text)}

        answers = client.get("/console/inbox-answers")
        added = client.post(
            "/console/inbox-answers",
            data={
                "csrf": csrf(answers.text),
                "lang": "fr",
                "title": "Perte",
                "text": "Apportez une déclaration de perte.",
            },
        )
        assert "Réponse type enregistrée" in added.text

        page = client.get(f"/console/inbox/{cid}")
        assert "J&#39;ai perdu mon passeport" in page.text or "J'ai perdu" in page.text
        assert 'data-canned="Apportez une déclaration de perte."' in page.text
        assert "menu.main" in page.text  # what the citizen tried with the bot: 7 at the menu
        sent = client.post(
            f"/console/inbox/{cid}/reply",
            data={"csrf": csrf(page.text), "text": "Apportez une déclaration de perte."},
        )
        assert "Message envoyé" in sent.text
        texts = received(fakes, chat, 1)
        assert "déclaration de perte" in texts[-1]
        assert "Transmis" in chat.send("D'accord, merci").whole
        assert "D&#39;accord, merci" in client.get(f"/console/inbox/{cid}").text

        page = client.get(f"/console/inbox/{cid}")
        closed = client.post(f"/console/inbox/{cid}/close", data={"csrf": csrf(page.text)})
        assert "Conversation close" in closed.text

        client.post("/console/logout", data={"csrf": csrf(closed.text)})
        login(client, "kofi@acc.test")
        assert client.get(f"/console/inbox/{cid}").status_code == 403  # not one of his posts
        assert client.get("/console/inbox/999999").status_code == 404
        assert f"/console/inbox/{cid}" not in client.get("/console/inbox?status=closed").text


def test_desk_messages_are_exported_and_erased_with_the_citizen(
    demo_engine: Engine, app_factory: Any
) -> None:
    admin = auth(admin_token(demo_engine))
    with app_factory(demo_engine) as (client, fakes):
        ask_the_desk(WhatsAppChat(client, fakes, "+2250701000082"))
        (item,) = client.get("/api/v1/conversations", headers=admin).json()["items"]
        held = client.get(f"/api/v1/citizens/{item['citizen_id']}/export", headers=admin).json()
        (exported,) = held["desk_conversations"]
        assert exported["messages"][0]["text"] == "J'ai perdu mon passeport, que faire ?"
        erased = client.delete(f"/api/v1/citizens/{item['citizen_id']}", headers=admin).json()
        assert erased["desk_messages_deleted"] == 1
        kept = client.get(f"/api/v1/conversations/{item['id']}", headers=admin).json()
        assert kept["messages"] == []
        assert kept["status"] == "closed"
        assert kept["post"] == "ABJ"


def test_waiting_conversations_and_first_response_in_the_metrics(
    demo_engine: Engine, app_factory: Any
) -> None:
    agent = auth(agent_token(demo_engine, "ABJ"))
    with app_factory(demo_engine) as (client, fakes):
        ask_the_desk(WhatsAppChat(client, fakes, "+2250701000083"))
        ask_the_desk(WhatsAppChat(client, fakes, "+2250701000084"))
        metrics = client.get("/metrics").text
        assert 'diaspora_desk_waiting_conversations{post="ABJ"} 2.0' in metrics
        assert 'diaspora_desk_waiting_conversations{post="NYC"} 0.0' in metrics
        first = client.get("/api/v1/conversations", headers=agent).json()["items"][0]
        client.post(
            f"/api/v1/conversations/{first['id']}/messages", json={"text": "Bonjour"}, headers=agent
        )
        metrics = client.get("/metrics").text
        assert 'diaspora_desk_waiting_conversations{post="ABJ"} 1.0' in metrics
        assert 'diaspora_desk_first_response_median_seconds{post="ABJ"}' in metrics
