"""The simulator channel: plain JSON in, replies with bare choice labels out.

Its users are their own channel: a phone number given here is never verified and never
merged with a WhatsApp or Telegram citizen. A turn's replies are the HTTP answer; what the bot
sends later (notices, reminders, an agent's replies) waits in the outbox under the channel
`simulator` and the user's id, and the web page polls for it (`GET
/api/v1/simulator/messages`, api.domain.simulator_mailbox): no sender pushes it.
"""

from __future__ import annotations

from datetime import datetime

from bot.channels import IMAGE
from bot.i18n import RenderedReply
from bot.runtime import Inbound, TurnOutput
from flows.engine import Incoming, Kind

CHANNEL = "simulator"
MAX_TEXT = 5000


def inbound(
    user: str,
    text: str,
    now: datetime,
    phone: str | None = None,
    kind: Kind = Kind.text,
    lang: str | None = None,
) -> Inbound:
    return Inbound(
        channel=CHANNEL,
        address=user,
        incoming=Incoming(text=text[:MAX_TEXT], kind=kind),
        now=now,
        phone=phone,
        phone_verified=False,
        lang=lang,
    )


def replies_json(output: TurnOutput) -> list[dict[str, object]]:
    """`{"text", "choices"}` per reply, and `"image"` (a URL: a proof's QR code) when it has one."""
    return [_reply_json(r) for r in output.replies]


def _reply_json(reply: RenderedReply) -> dict[str, object]:
    shown: dict[str, object] = {"text": reply.text, "choices": list(reply.choices)}
    image = next((media.url for media in reply.media if media.kind == IMAGE), None)
    if image:
        shown["image"] = image
    return shown
