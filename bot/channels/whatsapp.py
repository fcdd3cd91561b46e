"""WhatsApp through Twilio — the only module that imports `twilio`.

In: Twilio's form post (`From=whatsapp:+226…`, `Body`, `MessageSid`, media, location, button
fields; Twilio may add fields at any time and unknown ones are ignored) becomes a neutral
`Inbound` whose phone is verified — WhatsApp vouches for it. The signature is checked as
twilio's `RequestValidator` checks it, over the public URL and the form as sent
(`validate_signature`, computed once rather than twice).

Out, on the request: TwiML, one `<Message>` per reply part of at most 1,600 characters (long
replies are cut on line boundaries). Out, later: the REST API through `WhatsAppSender`, whose
HTTP client sends `https://api.twilio.com/…` to `TWILIO_API_BASE_URL` (a local fake in tests).
Files that go with a reply (`bot.channels.Media`: a voice prompt, a proof's QR code; never
its calendar file) ride on its first part, as `<Media>` in TwiML (one per `<Message>`) and
`MediaUrl` on the REST API; a template (outside the 24 hours) carries the text alone.

The 24-hour rule: more than 24 hours after the person's last message, WhatsApp accepts only
approved templates. Then the sender uses the template configured for the message's language
(French when that language has none) with the text as its variable {{1}}, or, with no
template at all, records the message as skipped (`outside_window`) — never sent against the
rule.

Exactly once (`WhatsAppSender.find_sent`, see bot.outbox). Twilio takes no idempotency key, and
a message it accepted carries nothing of ours that its API gives back (the status callback URL
is not in the Message resource). So before a message whose earlier send is in doubt goes out
again, the sender lists what Twilio sent from our number to that number since the doubtful
claim began (less `MATCH_MARGIN` for the clocks' difference) and takes an outbound API message
with the same text (for a template, the text within the rendered body) as that earlier send.
That match is exact enough because a citizen is never sent the same text twice within minutes
from two different outbox rows: notifications and reminders are once per purpose (dedupe
keys) and carry their own details, a broadcast is one row per citizen, and the parts of a long
message differ. Only a second broadcast with the very same text minutes later could be taken
for the first, and only after a crash — erring towards once, not twice. Messages that Twilio
reports failed or undelivered never reached the person: they do not count.
Twilio fills `date_sent` when it hands the message to WhatsApp (within a second or so, unless
its queue is backed up); the list filters on it, so a message still queued at Twilio when we
ask is not seen. After a lost lease (minutes later) that does not happen in practice.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlparse, urlsplit

import httpx
from twilio.base.exceptions import TwilioRestException
from twilio.base.version import Version
from twilio.http import AsyncHttpClient
from twilio.http.response import Response
from twilio.request_validator import add_port, remove_port
from twilio.rest import Client

from bot.channels import DOCUMENT, TEXT_LIMITS, Media, split_text
from bot.channels.bulk_http import BulkClient, MaybeSent, Unsent, form_body
from bot.channels.transport import transport
from bot.i18n import RenderedReply
from bot.outbox import LANE_BULK, OutboxItem, Outcome, SendResult
from bot.runtime import Inbound
from flows.engine import Incoming, Kind

log = logging.getLogger(__name__)

CHANNEL = "whatsapp"
MAX_BODY = TEXT_LIMITS[CHANNEL]
WINDOW = timedelta(hours=24)
TEMPLATE_FALLBACK = "fr"
TWILIO_API = "https://api.twilio.com"
# Twilio error codes that decide what happens to a message
OPTED_OUT = 21610  # the person opted out at carrier level: never again
OUTSIDE_WINDOW = 63016  # freeform outside the 24-hour window
TOO_MANY_REQUESTS = 20429
# Looking for an in-doubt message: from its claim less this (our clock against Twilio's), and
# at most this many of the latest messages to that number.
MATCH_MARGIN = timedelta(minutes=1)
MATCH_LOOKUP = 50
NOT_DELIVERED = frozenset({"failed", "undelivered", "canceled"})
# Network errors that surely happened before the request reached Twilio: not in doubt.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

# The SDK logs every request at INFO (URLs with the account SID): keep it to warnings.
logging.getLogger("twilio").setLevel(logging.WARNING)


# -- in -----------------------------------------------------------------------------------------


class Form(dict[str, str]):
    """A webhook's form as parsed once from its body (`parse_body`): the last value of each
    field, as Twilio's fields are single, and every pair as sent for the signature (`pairs`),
    so that a repeated field is checked as it was sent."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        super().__init__(pairs)
        self._pairs = pairs

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """Every (name, value) as sent, repeats included."""
        return self._pairs


MAX_FIELDS = 1000  # what a form may hold (Starlette's default): a bigger one is refused


def parse_body(body: bytes) -> Form:
    """An `application/x-www-form-urlencoded` body → its Form (ValueError when it is not UTF-8
    or holds more than MAX_FIELDS): the pairs `parse_qsl(keep_blank_values=True)` gives, at a
    fraction of its cost on every message (tests/test_whatsapp_signature.py compares them)."""
    text = body.decode("utf-8")
    if text.count("&") >= MAX_FIELDS:
        raise ValueError("more fields than a form holds")
    pairs = []
    for piece in text.split("&"):
        if piece:
            name, _, value = piece.partition("=")
            pairs.append((_unquote(name), _unquote(value)))
    return Form(pairs)


def _unquote(part: str) -> str:
    if "+" in part:
        part = part.replace("+", " ")
    return _percent_decoded(part) if "%" in part else part


@lru_cache(maxsize=4096)  # the same To, and each citizen's From, on every message
def _percent_decoded(part: str) -> str:
    return unquote(part)


def validate_signature(auth_token: str, url: str, form: Form, signature: str | None) -> bool:
    """`X-Twilio-Signature` (HMAC-SHA1, base64) over the exact public URL and the form, as
    twilio's `RequestValidator` checks it — each name with each of its distinct values, names
    and values sorted — and, like it, with the URL both without and with its port (Twilio signs
    either). Unlike it, the HMAC is computed once when the first form holds, the second only
    on failure, and the form's pairs are walked once (tests/test_whatsapp_signature.py checks
    it against twilio's own on random forms)."""
    if not signature or not auth_token:
        return False
    given = signature.encode("latin-1", "replace")
    payload = "".join(name + value for name, value in sorted(set(form.pairs))).encode("utf-8")
    key = auth_token.encode("utf-8")
    return any(
        hmac.compare_digest(_sign(key, variant + payload), given) for variant in _variants(url)
    )


def _sign(key: bytes, data: bytes) -> bytes:
    return base64.b64encode(hmac.digest(key, data, "sha1"))  # one-shot: OpenSSL's fast path


@lru_cache(maxsize=16)
def _variants(url: str) -> tuple[bytes, ...]:
    """The URL without its port, then with it (twilio's remove_port / add_port), as bytes."""
    parsed = urlparse(url)
    return tuple(v.encode("utf-8") for v in dict.fromkeys((remove_port(parsed), add_port(parsed))))


# A Twilio message SID: two letters (SM, MM) and 32 hex digits.
_MESSAGE_SID = re.compile(r"(?:SM|MM)[0-9a-f]{32}")


def has_message_sid(form: Mapping[str, str]) -> bool:
    """Whether the form carries a well-formed `MessageSid`. Twilio's signature joins names and
    values, so `MessageSid=SM…1a` re-sent as `MessageSidSM…1=a` keeps the signature but drops
    the id that the duplicate check relies on: such a message is refused before any effect."""
    return _MESSAGE_SID.fullmatch(str(form.get("MessageSid") or "")) is not None


def parse_form(form: Mapping[str, str], now: datetime) -> Inbound | None:
    """An incoming-message webhook → Inbound; None when it is not a WhatsApp message."""
    sender = str(form.get("From") or "")
    if not sender.startswith("whatsapp:"):
        return None
    phone = _e164(sender.removeprefix("whatsapp:"))
    if phone is None:
        return None
    sid = str(form.get("MessageSid") or form.get("SmsMessageSid") or "") or None
    return Inbound(
        channel=CHANNEL,
        address=phone,
        incoming=_incoming(form),
        now=now,
        provider_id=sid,
        phone=phone,
        phone_verified=True,
    )


def _incoming(form: Mapping[str, str]) -> Incoming:
    payload = str(form.get("ButtonPayload") or "").strip()
    button = str(form.get("ButtonText") or "").strip()
    if payload or button:
        return Incoming(text=payload or button)
    if _int(form.get("NumMedia")) > 0:  # kept for an agent at the desk: its URL, its caption
        return Incoming(
            text=str(form.get("Body") or ""),
            kind=_media_kind(str(form.get("MediaContentType0") or "")),
            media=str(form.get("MediaUrl0") or ""),
        )
    if form.get("Latitude") and form.get("Longitude"):
        return Incoming(kind=Kind.location)
    return Incoming(text=str(form.get("Body") or ""))


def _media_kind(content_type: str) -> Kind:
    media = content_type.split(";", 1)[0].strip().lower()
    if media in {"audio/ogg", "audio/opus"}:
        return Kind.voice  # WhatsApp voice notes are Opus in Ogg
    if media.startswith("audio/"):
        return Kind.audio
    if media == "image/webp":
        return Kind.sticker  # WhatsApp stickers arrive as WebP images
    if media.startswith("image/"):
        return Kind.photo
    if media.startswith("video/"):
        return Kind.video
    if media in {"text/vcard", "text/x-vcard"}:
        return Kind.other  # a contact card: not something the flows read
    return Kind.document


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def _e164(raw: str) -> str | None:
    raw = raw.strip()
    digits = raw.removeprefix("+")
    if not raw.startswith("+") or not digits.isdigit() or not 6 <= len(digits) <= 15:
        return None
    return raw


@dataclass(frozen=True)
class DeliveryStatus:
    """A status callback: where one message we sent through the REST API stands."""

    message_sid: str
    status: str  # queued, sent, delivered, read, failed, undelivered…
    error_code: int | None = None
    error_message: str = ""
    address: str | None = None  # the recipient, E.164


def parse_status(form: Mapping[str, str]) -> DeliveryStatus | None:
    sid = str(form.get("MessageSid") or form.get("SmsSid") or "")
    status = str(form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
    if not sid or not status:
        return None
    code = _int(form.get("ErrorCode")) or None
    return DeliveryStatus(
        message_sid=sid,
        status=status,
        error_code=code,
        error_message=str(form.get("ErrorMessage") or ""),
        address=_e164(str(form.get("To") or "").removeprefix("whatsapp:")),
    )


# -- out on the request: TwiML ------------------------------------------------------------------


_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
EMPTY_TWIML = _XML_DECLARATION + "<Response />"


def _xml_text(text: str) -> str:
    """Text as XML character data (what ElementTree escapes, the same bytes out)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _message(body: str, media: str | None = None) -> str:
    """One TwiML <Message>: a text, a text with a media URL, or a media URL alone."""
    if media is None:
        return f"<Message>{_xml_text(body)}</Message>"
    if not body:
        return f"<Message><Media>{_xml_text(media)}</Media></Message>"
    return f"<Message><Body>{_xml_text(body)}</Body><Media>{_xml_text(media)}</Media></Message>"


def whatsapp_media(media: Iterable[Media]) -> list[str]:
    """The URLs of the files WhatsApp takes, in order: voice prompts and images, never a
    document (a proof's calendar file: WhatsApp takes no text/calendar, README "WhatsApp")."""
    return [item.url for item in media if item.kind != DOCUMENT]


def twiml(replies: Iterable[RenderedReply]) -> str:
    """The webhook's answer: one <Message> per part of each reply (numbered choices in text).
    The first part carries the reply's media (`whatsapp_media`: a voice prompt, which
    WhatsApp plays as audio; a proof's QR code): the first with the text, each further one in
    a <Message> of its own, WhatsApp showing one media per message. Built as a string, the
    same bytes as twilio's MessagingResponse, without its XML tree: this is every turn's
    answer."""
    messages = []
    for reply in replies:
        for number, part in enumerate(split_text(reply.with_numbers(), MAX_BODY)):
            urls = whatsapp_media(reply.media) if number == 0 else []
            messages.append(_message(part, urls[0] if urls else None))
            messages.extend(_message("", url) for url in urls[1:])
    if not messages:
        return EMPTY_TWIML
    return f"{_XML_DECLARATION}<Response>{''.join(messages)}</Response>"


def empty_twiml() -> str:
    """An answer that sends nothing (a duplicate delivery, a message we do not handle)."""
    return EMPTY_TWIML


# -- out later: the REST API --------------------------------------------------------------------


class LocalizedHttpClient(AsyncHttpClient):  # type: ignore[misc]  # twilio is untyped
    """twilio's HTTP seam, over httpx: sends the SDK's fully qualified
    `https://api.twilio.com/…` URIs to `api_base_url` instead (a local fake in tests)."""

    def __init__(self, api_base_url: str = TWILIO_API, *, timeout: float = 15.0) -> None:
        super().__init__(logging.getLogger("twilio.http_client"), True, timeout)
        self.api_base_url = api_base_url.rstrip("/")
        self.http = httpx.AsyncClient(timeout=timeout, trust_env=False, transport=transport())

    def localize(self, uri: str) -> str:
        if self.api_base_url == TWILIO_API:
            return uri
        parts = urlsplit(uri)
        if not (parts.hostname or "").endswith("twilio.com"):
            return uri
        return self.api_base_url + parts.path + (f"?{parts.query}" if parts.query else "")

    async def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        as_json = (headers or {}).get("Content-Type", "").startswith("application/json")
        response = await self.http.request(
            method.upper(),
            self.localize(uri),
            params=params,  # type: ignore[arg-type]  # what twilio passes, httpx accepts
            data=None if as_json else data,
            json=data if as_json else None,
            headers=headers,
            auth=auth,
            timeout=timeout or self.timeout,
            follow_redirects=allow_redirects,
        )
        return Response(response.status_code, response.text, response.headers)

    async def close(self) -> None:
        await self.http.aclose()


class WhatsAppSender:
    """Sends outbox messages through Twilio's REST API. Implements `bot.outbox.Sender` and
    `bot.outbox.SentLookup` (see "Exactly once" above)."""

    def __init__(
        self,
        client: Client,
        from_: str,
        *,
        templates: Mapping[str, str] | None = None,
        status_callback: str | None = None,
        bulk: BulkClient | None = None,
    ) -> None:
        self.client = client
        self.from_ = from_ if from_.startswith("whatsapp:") else f"whatsapp:{from_}"
        self.templates = dict(templates or {})
        self.status_callback = status_callback
        # The bulk lane's lean path (see `_create_bulk`): its client, URI, URL and headers.
        self.bulk = bulk
        self._bulk_uri = f"{TWILIO_API}/2010-04-01/Accounts/{client.account_sid}/Messages.json"
        http = client.http_client
        self._bulk_url = (
            http.localize(self._bulk_uri)
            if isinstance(http, LocalizedHttpClient)
            else self._bulk_uri
        )
        secret = base64.b64encode(f"{client.username}:{client.password}".encode()).decode()
        self._bulk_headers = {**_BULK_HEADERS, "Authorization": f"Basic {secret}"}

    @property
    def channel(self) -> str:
        return CHANNEL

    @classmethod
    def create(
        cls,
        account_sid: str,
        auth_token: str,
        from_: str,
        *,
        api_base_url: str = TWILIO_API,
        templates: Mapping[str, str] | None = None,
        status_callback: str | None = None,
    ) -> WhatsAppSender:
        http = LocalizedHttpClient(api_base_url)
        client = Client(account_sid, auth_token, http_client=http)
        return cls(
            client, from_, templates=templates, status_callback=status_callback, bulk=BulkClient()
        )

    def template_for(self, lang: str) -> str | None:
        return self.templates.get(lang) or self.templates.get(TEMPLATE_FALLBACK)

    async def send(self, item: OutboxItem, now: datetime) -> SendResult:
        if item.payload.get("type"):
            return SendResult.skipped("not_for_whatsapp")
        params: dict[str, Any] = {"to": f"whatsapp:{item.address}", "from_": self.from_}
        if self.status_callback:
            params["status_callback"] = self.status_callback
        if item.last_inbound_at is None or now - item.last_inbound_at >= WINDOW:
            template = self.template_for(item.lang)
            if template is None:
                return SendResult.skipped("outside_window")
            params["content_sid"] = template
            params["content_variables"] = json.dumps({"1": item.text}, ensure_ascii=False)
        else:
            params["body"] = item.text[:MAX_BODY]
            media = whatsapp_media(item.media)
            if media:  # one message: the files, with the text as its body (no template has any)
                params["media_url"] = media
        try:
            if item.lane >= LANE_BULK and self.bulk is not None and params.keys() <= _FORM.keys():
                return SendResult.sent(await self._create_bulk(self.bulk, params))
            message = await self.client.messages.create_async(**params)
        except TwilioRestException as exc:
            return _refusal(exc)
        except (httpx.HTTPError, Unsent, MaybeSent) as exc:
            # the request may have gone out, unless it surely did not
            doubt = not isinstance(exc, (*_NOT_SENT, Unsent))
            return SendResult(Outcome.retry, error=f"network {_name(exc)}", in_doubt=doubt)
        return SendResult.sent(str(message.sid))

    async def _create_bulk(self, bulk: BulkClient, params: Mapping[str, Any]) -> str:
        """`client.messages.create_async(**params)` for the bulk lane, less the SDK's layers
        and httpx (most of a broadcast's CPU per message): the same form, basic auth and URI,
        through the lean pooled client (`bot.channels.bulk_http.BulkClient`); the Message's
        SID from the same JSON; a refusal raised as the SDK raises it (`Version.exception`),
        so that `_refusal` maps it as for any message."""
        form = {_FORM[name]: value for name, value in params.items()}
        answer = await bulk.post(self._bulk_url, form_body(form), self._bulk_headers)
        if not 200 <= answer.status < 300:
            response = Response(answer.status, answer.text, answer.headers)
            raise Version.exception("POST", self._bulk_uri, response, "Unable to create record")
        return str(json.loads(answer.body)["sid"])

    async def find_sent(self, item: OutboxItem) -> str | None:
        """The SID of the message Twilio sent for `item` since `item.in_doubt_since`, if any."""
        if item.in_doubt_since is None or item.payload.get("type"):
            return None
        since = item.in_doubt_since.astimezone(UTC) - MATCH_MARGIN
        to = f"whatsapp:{item.address}"
        messages = await self.client.messages.list_async(
            to=to, from_=self.from_, date_sent_after=since, limit=MATCH_LOOKUP
        )
        text = item.text[:MAX_BODY]
        matches = [m for m in messages if self._same(m, to, text, since)]
        # newest first: the oldest match is the earliest send
        return str(matches[-1].sid) if matches else None

    def _same(self, message: Any, to: str, text: str, since: datetime) -> bool:
        """`message` (a Twilio Message resource) is this text, sent by us through the API."""
        if message.direction != "outbound-api" or message.to != to or message.from_ != self.from_:
            return False
        if str(message.status or "") in NOT_DELIVERED:
            return False
        # Twilio documents DateSent filters by day: check the time here.
        moment = message.date_sent or message.date_created
        if moment is not None and moment < since:
            return False
        body = str(message.body or "")
        # a template's body is its text with ours as the variable
        return bool(text) and (body == text or (bool(self.templates) and text in body))

    async def close(self) -> None:
        http = self.client.http_client
        if isinstance(http, LocalizedHttpClient):
            await http.close()
        if self.bulk is not None:
            await self.bulk.close()


# `messages.create` arguments → Twilio's form fields; the headers the SDK sends with them.
_FORM = {
    "to": "To",
    "from_": "From",
    "body": "Body",
    "status_callback": "StatusCallback",
    "content_sid": "ContentSid",
    "content_variables": "ContentVariables",
    "media_url": "MediaUrl",  # a list: one field per file
}
_BULK_HEADERS = {
    "Accept": "application/json",
    "Accept-Charset": "utf-8",
    "Content-Type": "application/x-www-form-urlencoded",
}


def _name(exc: BaseException) -> str:
    """A network failure's name: the lean client's cause, else the exception's type."""
    if isinstance(exc, (Unsent, MaybeSent)):
        return str(exc)
    return type(exc).__name__


def _refusal(exc: TwilioRestException) -> SendResult:
    code = int(exc.code or 0)
    status = int(exc.status or 0)
    error = f"{code or status} {exc.msg}"[:300]
    if code == OPTED_OUT:
        return SendResult(Outcome.unreachable, error=error, carrier_opt_out=True)
    if code == OUTSIDE_WINDOW:
        return SendResult.skipped("outside_window")
    if status == 429 or code == TOO_MANY_REQUESTS:
        return SendResult(Outcome.throttled, error=error, retry_after=1.0)
    if status >= 500:  # the provider: try later; a gateway's error may hide an acceptance
        return SendResult(Outcome.retry, error=error, in_doubt=True)
    if status in (401, 403):  # our credentials: try later
        return SendResult(Outcome.retry, error=error)
    return SendResult(Outcome.failed, error=error)
