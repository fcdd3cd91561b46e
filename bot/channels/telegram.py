"""Telegram through python-telegram-bot — the only module that imports `telegram`.

In: an Update (webhook JSON or getUpdates) becomes a neutral `Inbound`, or nothing for what the
bot does not handle (channel posts, polls, group chats, edits). Out: a reply becomes
`sendMessage` with the numbered text and one inline button per choice, whose callback data is
the choice's number; a button tap comes back as that number.

Decisions:
- `/start` and `/menu` mean "0" (the menu key): on first contact the engine shows the welcome
  and the language menu (no language can be read from "0"), later they go back to the menu.
  `/help` means "?". Any other command is passed on as typed.
- A shared contact counts only when it is the sender's own (`contact.user_id == from.id`):
  then Telegram vouches for the number and the citizen is linked to whoever owns it. Someone
  else's contact card is treated as a thing the bot cannot read.
- Edited messages are ignored: the conversation has moved on since the original, and
  answering the edit as if it were new would answer the wrong question.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

# Durations as timedelta (RetryAfter.retry_after…): PTB's announced default, opted in early.
os.environ.setdefault("PTB_TIMEDELTA", "true")

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import (
    BadRequest,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import BaseRequest, HTTPXRequest, RequestData

from bot.channels import DOCUMENT, IMAGE, TEXT_LIMITS, VOICE, Media
from bot.channels.bulk_http import BulkClient, MaybeSent, Unsent, form_body
from bot.channels.transport import transport
from bot.i18n import RenderedReply
from bot.outbox import LANE_BULK, OutboxItem, Outcome, SendResult
from bot.runtime import Inbound
from flows.engine import Incoming, Kind

log = logging.getLogger(__name__)

CHANNEL = "telegram"
MAX_TEXT = TEXT_LIMITS[CHANNEL]
ALLOWED_UPDATES: tuple[str, ...] = ("message", "callback_query")
COMMANDS: dict[str, str] = {"start": "0", "menu": "0", "help": "?", "aide": "?"}
BUTTON_TEXT_MAX = 48  # longer labels are cut: the full label is in the message text
MAX_BUTTONS = 100  # Telegram refuses larger keyboards


@dataclass(frozen=True)
class TelegramUpdate:
    """What one Update asks of the bot: a turn (`inbound`), a button tap to acknowledge
    (`callback_query_id`), both, or neither (an update kind the bot ignores)."""

    update_id: int
    inbound: Inbound | None = None
    callback_query_id: str | None = None
    chat_id: int | None = None


# -- in -----------------------------------------------------------------------------------------


def has_update_id(data: Mapping[str, Any]) -> bool:
    """Whether the Update carries the `update_id` that the duplicate check relies on."""
    update_id = data.get("update_id")
    return isinstance(update_id, int) and not isinstance(update_id, bool) and update_id >= 0


def parse_update(data: Mapping[str, Any], now: datetime) -> TelegramUpdate | None:
    """An Update's JSON → what to do; None when it is not an Update at all."""
    if not isinstance(data, Mapping) or not isinstance(data.get("update_id"), int):
        return None
    try:
        update = Update.de_json(dict(data), None)
    except (KeyError, TypeError, ValueError):
        log.warning("telegram: an update that does not parse was ignored")
        return TelegramUpdate(update_id=int(data["update_id"]))
    provider_id = str(update.update_id)
    if update.callback_query is not None:
        return _callback(update, provider_id, now)
    message = update.message
    if message is None or message.chat.type != "private" or message.from_user is None:
        return TelegramUpdate(update.update_id)  # channel posts, polls, edits, groups…
    incoming, phone = _incoming(message)
    inbound = Inbound(
        channel=CHANNEL,
        address=str(message.chat.id),
        incoming=incoming,
        now=now,
        provider_id=provider_id,
        phone=phone,
        phone_verified=phone is not None,
    )
    return TelegramUpdate(update.update_id, inbound, chat_id=message.chat.id)


def _callback(update: Update, provider_id: str, now: datetime) -> TelegramUpdate:
    query = update.callback_query
    assert query is not None
    message = query.message
    chat = message.chat if message is not None else None
    if chat is not None and chat.type != "private":  # acknowledged, not answered
        return TelegramUpdate(update.update_id, callback_query_id=query.id, chat_id=chat.id)
    chat_id = chat.id if chat is not None else query.from_user.id
    inbound = None
    if query.data:
        inbound = Inbound(
            channel=CHANNEL,
            address=str(chat_id),
            incoming=Incoming(text=query.data[:64]),
            now=now,
            provider_id=provider_id,
        )
    return TelegramUpdate(update.update_id, inbound, callback_query_id=query.id, chat_id=chat_id)


def _incoming(message: Message) -> tuple[Incoming, str | None]:
    """The message's content in neutral form, and the sender's own verified phone if shared."""
    if message.text is not None:
        return Incoming(text=_command(message.text)), None
    contact = message.contact
    if contact is not None:
        own = message.from_user is not None and contact.user_id == message.from_user.id
        phone = _e164(contact.phone_number) if own else None
        if phone is None:
            return Incoming(kind=Kind.other), None
        return Incoming(kind=Kind.contact), phone
    # what the bot cannot read is kept for an agent at the desk: its file id, its caption
    caption = message.caption or ""
    media: list[tuple[Any, Kind]] = [
        (message.voice, Kind.voice),
        (message.audio, Kind.audio),
        (message.video or message.video_note or message.animation, Kind.video),
        (message.photo[-1] if message.photo else None, Kind.photo),
        (message.sticker, Kind.sticker),
        (message.document, Kind.document),
    ]
    for item, kind in media:
        if item is not None:
            return Incoming(text=caption, kind=kind, media=str(item.file_id)), None
    if message.location is not None or message.venue is not None:
        return Incoming(kind=Kind.location), None
    return Incoming(kind=Kind.other), None


def _command(text: str) -> str:
    if not text.startswith("/"):
        return text
    name = text[1:].split(maxsplit=1)[0].split("@", 1)[0].lower() if len(text) > 1 else ""
    return COMMANDS.get(name, text)


def _e164(raw: str | None) -> str | None:
    """Telegram's phone_number ('2250701000001' or '+225 07 01…') → '+2250701000001'."""
    if not raw:
        return None
    digits = "".join(ch for ch in raw if ch.isdigit())
    if not 6 <= len(digits) <= 15:
        return None
    return f"+{digits}"


# -- out ----------------------------------------------------------------------------------------


def keyboard(choices: Sequence[str]) -> InlineKeyboardMarkup | None:
    """One button per choice, in order; its callback data is the choice's number."""
    if not choices:
        return None
    rows = [[InlineKeyboardButton(text, callback_data=data)] for text, data in _buttons(choices)]
    return InlineKeyboardMarkup(rows)


def keyboard_json(choices: Sequence[str]) -> str | None:
    """`keyboard(choices)` as the Bot API's `reply_markup` field, the very JSON PTB sends for
    it (the bulk lane's form, built without PTB's objects)."""
    if not choices:
        return None
    rows = [[{"callback_data": data, "text": text}] for text, data in _buttons(choices)]
    return json.dumps({"inline_keyboard": rows})


def _buttons(choices: Sequence[str]) -> list[tuple[str, str]]:
    """(text, callback data) of each choice's button."""
    return [
        (_button_text(number, label), str(number))
        for number, label in enumerate(choices[:MAX_BUTTONS], start=1)
    ]


def _button_text(number: int, label: str) -> str:
    text = f"{number}. {' '.join(label.split())}"
    return text if len(text) <= BUTTON_TEXT_MAX else text[: BUTTON_TEXT_MAX - 1].rstrip() + "…"


def webhook_reply(chat_id: int, reply: RenderedReply) -> dict[str, Any]:
    """A Bot API call made by answering the webhook itself (no result comes back): the way to
    say sorry when even the outbox cannot be written."""
    return {"method": "sendMessage", "chat_id": chat_id, "text": reply.with_numbers()[:MAX_TEXT]}


def make_bot(token: str, api_base_url: str, *, pool_size: int = 64) -> Bot:
    """A `Bot` pointed at `api_base_url` (https://api.telegram.org, or a local fake): PTB
    appends the token to `base_url`, so that calls go to `{api_base_url}/bot<token>/<method>`."""
    # PTB gives its client `connection_pool_size`; with a transport of ours, the transport's.
    lean = transport(limits=httpx.Limits(max_connections=pool_size))
    request = HTTPXRequest(
        connection_pool_size=pool_size,
        read_timeout=15.0,
        pool_timeout=5.0,
        httpx_kwargs={"transport": lean},
    )
    polling = HTTPXRequest(connection_pool_size=2, read_timeout=15.0)
    return Bot(
        token,
        base_url=f"{api_base_url.rstrip('/')}/bot",
        request=request,
        get_updates_request=polling,
    )


class BulkRequest(BaseRequest):
    """python-telegram-bot's request class over the bulk lanes' pooled client
    (`bot.channels.bulk_http.BulkClient`): the same form posts as `HTTPXRequest` (each
    parameter as PTB encodes it), without httpx's layers; PTB maps every answer to its
    errors and reads the result, and builds the call, but for the texts, whose form is built
    here (`post_form`). No uploads: the bulk lane sends texts, and voice notes and pictures
    by URL or file id."""

    def __init__(self, client: BulkClient, *, read_timeout: float = 15.0) -> None:
        self.client = client
        self._read_timeout = read_timeout

    @property
    def read_timeout(self) -> float:
        return self._read_timeout

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        await self.client.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if method != "POST" or (request_data is not None and request_data.contains_files):
            raise TelegramError("the bulk lane posts forms only, uploads go through HTTPXRequest")
        form = request_data.json_parameters if request_data is not None else _form.get() or {}
        timeout = read_timeout if isinstance(read_timeout, int | float) else None
        try:
            answer = await self.client.post(url, form_body(form), _FORM_HEADERS, timeout=timeout)
        except MaybeSent as exc:
            raise (TimedOut if exc.timeout else NetworkError)(f"bulk: {exc}") from exc
        except Unsent as exc:
            raise NetworkError(f"bulk: {exc}") from exc
        return answer.status, answer.body

    async def post_form(self, url: str, form: Mapping[str, str]) -> Any:
        """PTB's own `post` — the answer checked and mapped to PTB's errors as for any call,
        its `result` returned — of a form built here rather than by a `Bot` method: the bulk
        lane's texts skip PTB's call building and its reading of the result into objects
        (`Message.de_json`), most of a broadcast's CPU per message on Telegram."""
        token = _form.set(form)
        try:
            return await self.post(url)
        finally:
            _form.reset(token)


# The form `BulkRequest.post_form` posts, for its `do_request` (in the calling task only).
_form: ContextVar[Mapping[str, str] | None] = ContextVar("bulk_form", default=None)
_FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


def make_bulk_bot(token: str, api_base_url: str, *, pool_size: int = 64) -> Bot:
    """A `Bot` for the bulk lane: `make_bot`'s, over `BulkRequest`. Nothing to initialise
    (the sender's own bot asked `getMe` already); closed with its request's `shutdown()`."""
    return Bot(
        token,
        base_url=f"{api_base_url.rstrip('/')}/bot",
        request=BulkRequest(BulkClient(connections=pool_size)),
    )


# The bytes of a document named by its URL, for an upload; None when it is not to be had.
Download = Callable[[str], Awaitable[bytes | None]]


class TelegramSender:
    """Sends outbox messages as Bot API calls. Implements `bot.outbox.Sender`, not
    `bot.outbox.SentLookup`: the Bot API cannot list what a bot has sent, so a message whose
    worker died while sending it is sent again (at-least-once for that message, see
    bot.outbox). Announcements (the bulk lane) go through `bulk_bot` when there is one."""

    def __init__(
        self, bot: Bot, download: Download | None = None, bulk_bot: Bot | None = None
    ) -> None:
        self.bot = bot
        self.download = download  # reads a document to upload; None: documents are skipped
        self.bulk_bot = bulk_bot

    @property
    def channel(self) -> str:
        return CHANNEL

    @classmethod
    async def connect(
        cls, token: str, api_base_url: str, download: Download | None = None
    ) -> TelegramSender:
        """Build the Bot and initialise it (`getMe`): a wrong token fails here, at start-up."""
        bot = make_bot(token, api_base_url)
        await bot.initialize()
        return cls(bot, download, make_bulk_bot(token, api_base_url))

    async def send(self, item: OutboxItem, now: datetime) -> SendResult:
        callback = item.payload.get("type") == "callback_answer"
        bot = self.bulk_bot if item.lane >= LANE_BULK and self.bulk_bot else self.bot
        try:
            if callback:
                query_id = str(item.payload.get("callback_query_id") or "")
                await self.bot.answer_callback_query(query_id)
                return SendResult.sent(f"cbq:{query_id}"[:64])
            if not item.text:
                return SendResult(Outcome.failed, error="empty text")
            if not item.attempts:  # the files first (voice, QR code, calendar), then the text
                await self._send_media(bot, int(item.address), item.media)
            if bot is self.bulk_bot and isinstance(bot.request, BulkRequest):
                return SendResult.sent(await self._send_bulk(bot, bot.request, item))
            sent = await bot.send_message(
                chat_id=int(item.address),
                text=item.text[:MAX_TEXT],
                reply_markup=keyboard(item.choices),
            )
            return SendResult.sent(str(sent.message_id))
        except RetryAfter as exc:
            return SendResult(
                Outcome.throttled, error="429 retry_after", retry_after=_seconds(exc.retry_after)
            )
        except Forbidden as exc:  # blocked by the user, deactivated account
            return SendResult(Outcome.unreachable, error=f"403 {exc.message}"[:300])
        except BadRequest as exc:
            if not callback and "chat not found" in exc.message.lower():
                return SendResult(Outcome.unreachable, error=f"400 {exc.message}"[:300])
            return SendResult(Outcome.failed, error=f"400 {exc.message}"[:300])  # e.g. too old
        except NetworkError as exc:  # 5xx, timeouts, connection errors: may be retried
            return SendResult(Outcome.retry, error=f"network {exc.message}"[:300])
        except TelegramError as exc:  # a revoked token, a conflict…
            return SendResult(Outcome.retry, error=f"{type(exc).__name__} {exc.message}"[:300])

    @staticmethod
    async def _send_bulk(bot: Bot, request: BulkRequest, item: OutboxItem) -> str:
        """`bot.send_message(...)` for the bulk lane: the same form (`chat_id`, `text`,
        `reply_markup`) to the same URL, through `BulkRequest.post_form`; the message id read
        from the result."""
        form = {"chat_id": str(int(item.address)), "text": item.text[:MAX_TEXT]}
        markup = keyboard_json(item.choices)
        if markup is not None:
            form["reply_markup"] = markup
        result = await request.post_form(f"{bot.base_url}/sendMessage", form)
        return str(result["message_id"])

    async def _send_media(self, bot: Bot, chat_id: int, media: Iterable[Media]) -> None:
        """Each file by the method of its kind; one that fails is left out, the text goes on
        (it is what matters): a voice prompt by `sendVoice`, an image (a proof's QR code) by
        `sendPhoto`, both by URL; a document (its calendar file) by `sendDocument`, uploaded
        (Telegram fetches documents by URL only for GIF, PDF and ZIP files) by the sender's own
        bot, since the bulk lane's posts forms only."""
        for item in media:
            if item.kind == DOCUMENT:
                await self._send_document(chat_id, item.url)
                continue
            with contextlib.suppress(TelegramError):
                if item.kind == VOICE:
                    await bot.send_voice(chat_id=chat_id, voice=item.url)
                elif item.kind == IMAGE:
                    await bot.send_photo(chat_id=chat_id, photo=item.url)

    async def _send_document(self, chat_id: int, url: str) -> None:
        """The file named by `url`, read by `download` and uploaded; none without it."""
        if self.download is None:
            return
        try:
            content = await self.download(url)
        except Exception:  # the store is away…: the text goes on, without its file
            log.exception("telegram: a document could not be read")
            return
        if content is not None:
            name = urlsplit(url).path.rsplit("/", 1)[-1]
            with contextlib.suppress(TelegramError):
                await self.bot.send_document(chat_id=chat_id, document=content, filename=name)

    async def send_text(self, chat_id: int, reply: RenderedReply) -> None:
        """Send now, outside the outbox (an apology in polling mode)."""
        with contextlib.suppress(TelegramError):
            await self.bot.send_message(chat_id=chat_id, text=reply.with_numbers()[:MAX_TEXT])

    async def close(self) -> None:
        with contextlib.suppress(TelegramError, RuntimeError):
            await self.bot.shutdown()
        if self.bulk_bot is not None:
            await self.bulk_bot.request.shutdown()


def _seconds(value: int | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


# -- webhook and polling ------------------------------------------------------------------------


async def set_webhook(bot: Bot, url: str, secret: str | None) -> bool:
    """Register `url` with Telegram, with the secret it must echo and the updates we handle."""
    return bool(
        await bot.set_webhook(url, secret_token=secret, allowed_updates=list(ALLOWED_UPDATES))
    )


UpdateHandler = Callable[[dict[str, Any]], Awaitable[None]]


async def poll_updates(
    bot: Bot,
    handle: UpdateHandler,
    stop: asyncio.Event,
    *,
    timeout: int = 25,
) -> None:
    """Long-poll getUpdates (for a developer without a public URL) and feed each update's JSON
    to `handle`, the webhook's own handler. The webhook is deleted first: Telegram refuses
    getUpdates while one is set. Run one poller per bot, never more."""
    await bot.delete_webhook()
    offset: int | None = None
    failures = 0
    while not stop.is_set():
        try:
            updates = await bot.get_updates(
                offset=offset, timeout=timeout, allowed_updates=list(ALLOWED_UPDATES)
            )
            failures = 0
        except RetryAfter as exc:
            await _sleep_or_stop(stop, _seconds(exc.retry_after))
            continue
        except TelegramError as exc:
            failures += 1
            log.warning("telegram polling: %s", type(exc).__name__)
            await _sleep_or_stop(stop, min(30.0, 2.0**failures))
            continue
        for update in updates:
            offset = update.update_id + 1
            try:
                await handle(update.to_dict())
            except Exception:
                log.exception("telegram polling: an update failed")


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
