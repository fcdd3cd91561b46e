"""Provider webhooks: `POST /webhooks/telegram` here; Twilio's `/webhooks/whatsapp` and
`/webhooks/whatsapp/status` in api.http.whatsapp_webhooks, a lean ASGI layer of their own.

Each request is authenticated before anything else is read or written: Telegram's secret
header compared in constant time with TELEGRAM_WEBHOOK_SECRET, Twilio's signature over
PUBLIC_BASE_URL + path and the form. Otherwise 403 and nothing happens. A webhook whose
secret is not configured refuses everything.

A provider message id seen before (Telegram `update_id`, Twilio `MessageSid`) gets an empty
success: `{}` for Telegram, `<Response/>` for Twilio. Whatever fails, the citizen gets a kind
apology in their language (catalog key `common.error`), never a traceback.

Telegram's replies are written to the outbox in the turn's transaction and the sender is
nudged after the 200 (in this process when it runs the worker; otherwise the worker's next
poll, within half a second, picks them up). WhatsApp's replies are the TwiML body itself: no
provider call on the request path.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.background import BackgroundTask
from starlette.datastructures import State

from api.channels import WEBHOOK_TELEGRAM, ChannelHandlers
from api.http.problems import problem
from bot.channels import telegram as telegram_channel

log = logging.getLogger(__name__)

router = APIRouter(tags=["webhooks"], include_in_schema=False)


def handlers(request: Request) -> ChannelHandlers:
    """The app's ChannelHandlers (`channel_handlers`)."""
    return channel_handlers(request.app.state)


def channel_handlers(state: State) -> ChannelHandlers:
    """The app's ChannelHandlers, built on first use from its settings and messaging."""
    found: ChannelHandlers | None = getattr(state, "channel_handlers", None)
    if found is None:
        found = ChannelHandlers(
            state.settings, state.engine, state.messaging, state.clock, metrics=state.metrics
        )
        state.channel_handlers = found
    return found


async def nudge(request: Request, channel: str) -> None:
    """Tell the in-process worker, if any, that messages were just queued for `channel`.
    (A coroutine, so that it runs on the event loop the worker lives on.)"""
    worker = getattr(request.app.state, "worker", None)
    if worker is not None:
        worker.nudge(channel)


def _forbidden(detail: str) -> Response:
    return problem(403, "Forbidden", detail)


# -- Telegram -----------------------------------------------------------------------------------


def _telegram_secret_ok(request: Request) -> bool:
    expected = request.app.state.settings.telegram_webhook_secret
    given = request.headers.get("X-Telegram-Bot-Api-Secret-Token")
    if not expected or given is None:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


@router.post(WEBHOOK_TELEGRAM)
async def telegram_webhook(request: Request) -> Response:
    if not _telegram_secret_ok(request):
        return _forbidden("missing or wrong X-Telegram-Bot-Api-Secret-Token")
    try:
        data: Any = await request.json()
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        return problem(400, "Bad Request", "the body is not JSON")
    if not isinstance(data, dict) or not telegram_channel.has_update_id(data):
        return problem(400, "Bad Request", "the body is not a Telegram Update with an update_id")
    answer = await handlers(request).telegram(data)
    body: dict[str, Any] = {}
    if answer.apology is not None and answer.chat_id is not None:
        body = telegram_channel.webhook_reply(answer.chat_id, answer.apology)
    task = BackgroundTask(nudge, request, telegram_channel.CHANNEL) if answer.queued else None
    return JSONResponse(body, background=task)
