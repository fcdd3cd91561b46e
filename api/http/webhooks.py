"""Provider webhooks: `POST /webhooks/telegram`, `/webhooks/whatsapp`, `/webhooks/whatsapp/status`.

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

from api.channels import (
    WEBHOOK_TELEGRAM,
    WEBHOOK_WHATSAPP,
    WEBHOOK_WHATSAPP_STATUS,
    ChannelHandlers,
    webhook_url,
)
from api.http.problems import problem
from bot.channels import telegram as telegram_channel
from bot.channels import whatsapp as whatsapp_channel

log = logging.getLogger(__name__)

router = APIRouter(tags=["webhooks"], include_in_schema=False)

TWIML = "application/xml"


def handlers(request: Request) -> ChannelHandlers:
    """The app's ChannelHandlers, built on first use from its settings and messaging."""
    state = request.app.state
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


# -- WhatsApp -----------------------------------------------------------------------------------


FORM = "application/x-www-form-urlencoded"


async def _signed_form(request: Request, path: str) -> whatsapp_channel.Form | None:
    """The form, when Twilio's signature over the public URL and the form holds. The body is
    read once and parsed once (Twilio posts url-encoded forms; anything else is no form)."""
    content_type = request.headers.get("content-type", "")
    form = whatsapp_channel.Form([])
    if content_type.split(";", 1)[0].strip().lower() == FORM:
        try:
            form = whatsapp_channel.parse_body(await request.body())
        except ValueError:  # not UTF-8, or more fields than a form holds
            return None
    url = webhook_url(request.app.state.settings, path)
    query = request.scope.get("query_string", b"")
    if query:
        url = f"{url}?{query.decode('latin-1')}"
    signature = request.headers.get("X-Twilio-Signature")
    return form if handlers(request).whatsapp_signed(url, form, signature) else None


@router.post(WEBHOOK_WHATSAPP)
async def whatsapp_webhook(request: Request) -> Response:
    form = await _signed_form(request, WEBHOOK_WHATSAPP)
    if form is None:
        return _forbidden("missing or wrong X-Twilio-Signature")
    if not whatsapp_channel.has_message_sid(form):
        return problem(400, "Bad Request", "an incoming message needs a well-formed MessageSid")
    body = await handlers(request).whatsapp(form)
    return Response(body, media_type=TWIML)


@router.post(WEBHOOK_WHATSAPP_STATUS)
async def whatsapp_status(request: Request) -> Response:
    form = await _signed_form(request, WEBHOOK_WHATSAPP_STATUS)
    if form is None:
        return _forbidden("missing or wrong X-Twilio-Signature")
    await handlers(request).whatsapp_status(form)
    return Response(whatsapp_channel.empty_twiml(), media_type=TWIML)
