"""The messaging channels wired to the database: what a provider's payload does here, and the
senders the worker sends with. Used by the webhook routes (api.http.webhooks for Telegram,
api.http.whatsapp_webhooks for Twilio), the Telegram poller and the worker (api.worker).

Where a turn runs. The runtime is synchronous (SQLAlchemy). `Messaging.run` (api.messaging) is
the one decision: on SQLite a turn runs on the event loop (sub-millisecond, and SQLite
serialises writers anyway), the turns of one pass of the loop sharing one commit
(api.group_commit); on PostgreSQL the turns that arrive while earlier ones run wait
together for a thread and run there in one transaction (api.turn_batches).
Every other database call made here follows the same decision, through `ChannelHandlers.call`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from api import db
from api.domain import appointment_proof
from api.domain.appointment_proof import proof_key
from api.domain.identities import link_verified_phone
from api.domain.outbox import enqueue_callback_answer, record_delivery
from api.messaging import Messaging
from api.models import utcnow
from api.settings import Settings
from bot.channels import telegram as telegram_channel
from bot.channels import whatsapp as whatsapp_channel
from bot.fallback_limiter import FallbackRateLimiter
from bot.i18n import RenderedReply
from bot.outbox import Sender
from bot.rate_limits import LocalRateLimiter, RateLimiter, RedisRateLimiter
from bot.runtime import Inbound, StoreUnavailable, TurnOutput
from flows.engine import Kind
from flows.messages import Reply, msg

log = logging.getLogger(__name__)

T = TypeVar("T")

WEBHOOK_TELEGRAM = "/webhooks/telegram"
WEBHOOK_WHATSAPP = "/webhooks/whatsapp"
WEBHOOK_WHATSAPP_STATUS = "/webhooks/whatsapp/status"


class TurnMetrics(Protocol):
    def turn(self, channel: str, lang: str | None, seconds: float, failure: str | None) -> None:
        """One turn took `seconds`; `failure` is None, `error` or `database`."""
        ...


@dataclass(frozen=True)
class TelegramAnswer:
    """What handling one Telegram update leaves to do: nudge the sender (`queued`), or, when the
    turn failed without writing anything, apologise outside the outbox."""

    queued: bool = False
    chat_id: int | None = None
    apology: RenderedReply | None = None


class ChannelHandlers:
    """The webhooks' work, independent of HTTP (the Telegram poller calls it too)."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        messaging: Messaging,
        clock: Callable[[], datetime] = utcnow,
        metrics: TurnMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.messaging = messaging
        self.clock = clock
        self.metrics = metrics

    async def turn(self, inbound: Inbound, *, via_outbox: bool = False) -> TurnOutput:
        """One turn through the runtime, timed and counted."""
        started = time.perf_counter()
        failure: str | None = "database"
        output: TurnOutput | None = None
        try:
            output = await self.call(self.messaging.runtime.handle, inbound, via_outbox=via_outbox)
            failure = "error" if output.failed else None
            return output
        finally:
            seconds = time.perf_counter() - started
            lang = output.lang if output is not None else None
            if output is None or not output.duplicate:
                if self.metrics is not None:
                    self.metrics.turn(inbound.channel, lang, seconds, failure)
                log.info(
                    "turn on %s: %s",
                    inbound.channel,
                    failure or "ok",
                    extra={
                        "channel": inbound.channel,
                        "lang": lang,
                        "outcome": failure or "ok",
                        "duration_ms": round(seconds * 1000, 1),
                    },
                )

    async def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run blocking database work where the store wants it (`Messaging.run`)."""
        try:
            return await self.messaging.run(function, *args, **kwargs)
        except Exception as exc:
            if db.unavailable(exc):
                raise StoreUnavailable from exc
            raise

    def _write(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with db.write(self.engine) as conn:
            return function(conn, *args, **kwargs)

    def apology(self, lang: str = "fr") -> RenderedReply:
        return self.messaging.renderer.render_reply(Reply((msg("common.error"),)), lang)

    # -- Telegram -------------------------------------------------------------------------------

    async def telegram(self, data: Mapping[str, Any]) -> TelegramAnswer:
        """One Update: acknowledge a button tap, link a shared phone, run the turn with its
        replies queued in the outbox (in the turn's own transaction)."""
        now = self.clock()
        parsed = telegram_channel.parse_update(data, now)
        if parsed is None:
            return TelegramAnswer()
        queued = False
        try:
            if parsed.callback_query_id and parsed.chat_id is not None:
                queued = await self.call(
                    self._write,
                    enqueue_callback_answer,
                    telegram_channel.CHANNEL,
                    str(parsed.chat_id),
                    parsed.callback_query_id,
                    utcnow(),
                )
            inbound = parsed.inbound
            if inbound is None:
                return TelegramAnswer(queued=queued)
            if inbound.phone and inbound.phone_verified and inbound.incoming.kind is Kind.contact:
                await self.call(
                    self._write,
                    link_verified_phone,
                    inbound.channel,
                    inbound.address,
                    inbound.phone,
                    inbound.now,
                )
            output = await self.turn(inbound, via_outbox=True)
        except StoreUnavailable:
            raise
        except Exception:
            log.exception("telegram update failed")
            return TelegramAnswer(queued, parsed.chat_id, self.apology())
        if output.duplicate:
            return TelegramAnswer(queued=queued)
        if output.failed:  # rolled back: nothing was queued, say sorry directly
            apology = output.replies[0] if output.replies else self.apology(output.lang)
            return TelegramAnswer(queued, parsed.chat_id, apology)
        return TelegramAnswer(queued=True)

    # -- WhatsApp -------------------------------------------------------------------------------

    def whatsapp_signed(self, url: str, form: whatsapp_channel.Form, signature: str | None) -> bool:
        token = self.settings.twilio_auth_token
        return bool(token) and whatsapp_channel.validate_signature(
            token or "", url, form, signature
        )

    async def whatsapp(self, form: Mapping[str, Any]) -> str:
        """One incoming message → the TwiML that answers it (no provider call)."""
        inbound = whatsapp_channel.parse_form(form, self.clock())
        if inbound is None:
            return whatsapp_channel.empty_twiml()
        try:
            output = await self.turn(inbound)
        except StoreUnavailable:
            raise
        except Exception:
            log.exception("whatsapp message failed")
            return whatsapp_channel.twiml([self.apology()])
        if output.duplicate:
            return whatsapp_channel.empty_twiml()
        return whatsapp_channel.twiml(output.replies)

    async def whatsapp_status(self, form: Mapping[str, Any]) -> bool:
        """A delivery callback: move the outbox row forward (never backwards)."""
        status = whatsapp_channel.parse_status(form)
        if status is None:
            return False
        return await self.call(
            self._write,
            record_delivery,
            status.message_sid,
            status.status,
            utcnow(),
            error_code=status.error_code,
            error_message=status.error_message,
        )


# -- senders and limits -------------------------------------------------------------------------


def rates(settings: Settings) -> dict[str, float]:
    return {
        telegram_channel.CHANNEL: settings.telegram_rate_per_second,
        whatsapp_channel.CHANNEL: settings.whatsapp_rate_per_second,
    }


def build_limiter(settings: Settings) -> RateLimiter:
    """Shared through Redis when REDIS_URL is set (several workers), else in-process; while
    Redis is away, each of the WORKER_COUNT processes keeps to its share."""
    if settings.redis_url:
        shared = RedisRateLimiter.from_url(settings.redis_url, rates(settings))
        return FallbackRateLimiter(shared, rates(settings), settings.worker_count)
    return LocalRateLimiter(rates(settings))


async def connect_telegram(
    settings: Settings, engine: Engine | None = None
) -> telegram_channel.TelegramSender | None:
    """The Telegram sender; with the `engine`, it uploads the proofs' calendar files too."""
    if not settings.telegram_bot_token:
        return None
    download = proof_documents(settings, engine) if engine is not None else None
    return await telegram_channel.TelegramSender.connect(
        settings.telegram_bot_token, settings.telegram_api_base_url, download
    )


def proof_documents(settings: Settings, engine: Engine) -> telegram_channel.Download:
    """The calendar file named by one of our proof URLs (`/proof/{token}/rendez-vous.ics`),
    read from the database: Telegram takes such a file only uploaded, and the worker need not
    reach its own public address."""
    key = proof_key(settings.proof_secret, settings.console_secret)
    prefix = webhook_url(settings, "/proof/")

    def read(token: str) -> bytes | None:
        with db.read(engine) as conn:
            return appointment_proof.calendar_file(conn, key, token)

    async def download(url: str) -> bytes | None:
        token, _, name = url.removeprefix(prefix).partition("/")
        if not url.startswith(prefix) or name != appointment_proof.CALENDAR_FILE:
            return None
        return await run_in_threadpool(read, token)

    return download


def whatsapp_sender(settings: Settings) -> Sender | None:
    if not (
        settings.twilio_account_sid and settings.twilio_auth_token and settings.twilio_whatsapp_from
    ):
        return None
    return whatsapp_channel.WhatsAppSender.create(
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        settings.twilio_whatsapp_from,
        api_base_url=settings.twilio_api_base_url,
        templates=settings.whatsapp_templates,
        status_callback=settings.public_base_url + WEBHOOK_WHATSAPP_STATUS,
    )


def webhook_url(settings: Settings, path: str) -> str:
    return settings.public_base_url.rstrip("/") + path
