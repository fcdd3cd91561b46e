"""Drivers that hold a conversation through a real channel's webhook, as a provider would
call it: WhatsApp as signed Twilio form posts (answers read from the TwiML), Telegram as
Update JSON with the secret header (answers read from the fake Bot API's sendMessage calls),
and the simulator's JSON endpoint."""

from __future__ import annotations

import itertools
import re
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient

from tests.fakes import FakeTelegramAPI, FakeTwilioAPI
from tests.fakes.twilio_api import inbound_whatsapp_form, twilio_signature
from tests.support.transcripts import Answer, SimulatorChat

PUBLIC_BASE_URL = "https://diaspora.test"
TELEGRAM_SECRET = "s3cret-telegram"
_NUMBERED = re.compile(r"^(\d+)\. (.+)$")
_ids = itertools.count(1)


@dataclass
class Fakes:
    telegram: FakeTelegramAPI
    twilio: FakeTwilioAPI


def _split_numbered(text: str) -> dict[str, Any]:
    """'Question\n\n1. A\n2. B' → {"text": "Question", "choices": ["A", "B"]}."""
    lines = text.split("\n")
    choices: list[str] = []
    while lines and _NUMBERED.match(lines[-1]):
        choices.insert(0, _NUMBERED.match(lines.pop()).group(2))  # type: ignore[union-attr]
    return {"text": "\n".join(lines).rstrip(), "choices": choices}


@dataclass
class WhatsAppChat:
    client: TestClient
    fakes: Fakes
    phone: str
    now: str | None = None
    history: list[tuple[str, Answer]] = field(default_factory=list)

    def send(self, text: str) -> Answer:
        form = inbound_whatsapp_form(self.phone, text, account_sid=self.fakes.twilio.account_sid)
        url = f"{PUBLIC_BASE_URL}/webhooks/whatsapp"
        signature = twilio_signature(self.fakes.twilio.auth_token, url, form)
        response = self.client.post(
            "/webhooks/whatsapp", data=form, headers={"X-Twilio-Signature": signature}
        )
        assert response.status_code == 200, response.text
        root = ET.fromstring(response.text)
        bodies = [m.findtext("Body") or (m.text or "") for m in root.iter("Message")]
        answer = Answer([_split_numbered(body) for body in bodies])
        self.history.append((text, answer))
        return answer

    @property
    def last(self) -> Answer:
        return self.history[-1][1]


@dataclass
class TelegramChat:
    client: TestClient
    fakes: Fakes
    phone: str | None
    user_id: int = field(default_factory=lambda: 700000 + next(_ids))
    history: list[tuple[str, Answer]] = field(default_factory=list)
    shared: bool = False

    def _post(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        before = len(self.fakes.telegram.sent_messages(chat_id=self.user_id))
        update = {"update_id": 10_000 + next(_ids), "message": message}
        response = self.client.post(
            "/webhooks/telegram",
            json=update,
            headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET},
        )
        assert response.status_code == 200, response.text
        self.fakes.telegram.wait_for(
            lambda _calls: len(self.fakes.telegram.sent_messages(chat_id=self.user_id)) > before,
            timeout=10,
        )
        time.sleep(0.05)  # a long answer may come as several messages
        return self.fakes.telegram.sent_messages(chat_id=self.user_id)[before:]

    def _message(self, **content: Any) -> dict[str, Any]:
        user = {"id": self.user_id, "is_bot": False, "first_name": "Test"}
        return {
            "message_id": next(_ids),
            "date": int(time.time()),
            "chat": {"id": self.user_id, "type": "private", "first_name": "Test"},
            "from": user,
            **content,
        }

    def share_contact(self) -> None:
        contact = {"phone_number": self.phone, "first_name": "Test", "user_id": self.user_id}
        self._post(self._message(contact=contact))
        self.shared = True

    def send(self, text: str) -> Answer:
        if self.phone and not self.shared:
            self.share_contact()
        sent = self._post(self._message(text=text))
        answer = Answer([_split_numbered(str(call["text"])) for call in sent])
        self.history.append((text, answer))
        return answer

    @property
    def last(self) -> Answer:
        return self.history[-1][1]


def driver_for(
    channel: str, client: TestClient, fakes: Fakes, *, phone: str | None, now: str | None
) -> SimulatorChat | WhatsAppChat | TelegramChat:
    if channel == "whatsapp":
        assert phone, "a WhatsApp script needs a phone"
        return WhatsAppChat(client, fakes, phone, now)
    if channel == "telegram":
        return TelegramChat(client, fakes, phone)
    return SimulatorChat(client, user=f"script-{next(_ids)}", phone=phone, now=now)
