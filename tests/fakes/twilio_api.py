"""A fake Twilio REST API (Programmable Messaging) plus builders for Twilio's webhooks.

The server mimics `https://api.twilio.com/2010-04-01/Accounts/{AccountSid}/Messages.json`:
form-encoded POST with HTTP basic auth (account SID + auth token), a `201` Message resource in
JSON, and errors in Twilio's legacy shape `{"code", "message", "more_info", "status"}`, which
the twilio SDK raises as `TwilioRestException`. Point `twilio.rest.Client` at it with an
`HttpClient` that replaces `https://api.twilio.com` by `fake.base_url`.

A GET on the same URI lists the messages, newest first, in Twilio's page shape (`messages`,
`page`, `page_size`, `next_page_uri`…), filtered by `To`, `From` (exact, `whatsapp:` prefix
included) and `DateSent` / `DateSent>` / `DateSent<` (a day `YYYY-MM-DD`, or an instant as the
SDK sends it, `YYYY-MM-DDTHH:MM:SSZ`). As on Twilio, a message is created `queued` with no
`date_sent`, and is sent — `status` sent, `date_sent` filled — `send_delay` seconds later (at
once by default); a list filtered on `DateSent` does not show it before. A template message
(`ContentSid`) gets as its `body` the template's text (`content_templates`) with its variables.

The pure helpers build what Twilio POSTs to us: an inbound WhatsApp message
(`inbound_whatsapp_form`), a status callback (`status_callback_form`) and the
`X-Twilio-Signature` header value for either (`twilio_signature`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import threading
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

from twilio.request_validator import RequestValidator

from tests.fakes._base import FakeServer, Request

API_VERSION = "2010-04-01"
DEFAULT_ACCOUNT_SID = "AC" + "0" * 31 + "1"
DEFAULT_AUTH_TOKEN = "0123456789abcdef0123456789abcdef"
SANDBOX_NUMBER = "whatsapp:+14155238886"

Reply = tuple[int, Any]
Form = dict[str, str]

_ERRORS: dict[int, tuple[int, str]] = {  # Twilio error code -> (HTTP status, message)
    20001: (400, "Invalid date value"),
    20003: (401, "Authenticate"),
    20404: (404, "The requested resource was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "An internal server error has occurred"),
    21603: (400, "A 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21619: (400, "A text message body or media urls must be specified."),
    63016: (
        400,
        "Failed to send freeform message because you are outside the allowed window. "
        "If you are using WhatsApp, please use a Message Template.",
    ),
}


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def _bare(address: str) -> str:
    """`whatsapp:+225…` -> `+225…` (numbers are compared without channel prefix)."""
    return address.removeprefix("whatsapp:")


def _whatsapp(address: str) -> str:
    return address if address.startswith("whatsapp:") else f"whatsapp:{address}"


def twilio_error(code: int, status: int | None = None, message: str | None = None) -> Reply:
    """Twilio's error body; the SDK reads `code` and `message` from it."""
    default_status, default_message = _ERRORS.get(code, (status or 400, "Error"))
    http_status = status or default_status
    body = {
        "code": code,
        "message": message or default_message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": http_status,
    }
    return http_status, body


def _not_found(path: str) -> Reply:
    return twilio_error(20404, message=f"The requested resource {path} was not found")


class FakeTwilioAPI(FakeServer):
    """Fake Twilio Messages API for one account, with programmable faults.

    Usage: `with FakeTwilioAPI() as tw: ...`; requests go to `tw.base_url + "/2010-04-01/..."`.
    """

    def __init__(
        self,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        *,
        rate_limit_per_second: float | None = None,
        send_delay: float = 0.0,
    ) -> None:
        super().__init__(rate_limit_per_second=rate_limit_per_second)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.send_delay = send_delay  # seconds from `queued` to `sent` (date_sent filled)
        self.messages: dict[str, dict[str, Any]] = {}  # sid -> Message resource
        self._created: dict[str, datetime] = {}  # sid -> creation time (for date_sent)
        self._answers: threading.Event | None = None  # set: creations answer; None: no hold
        # Approved templates' texts (ContentSid -> text with {{1}}…), rendered into a sent
        # message's `body` as Twilio does; an unknown ContentSid renders as "{{1}}".
        self.content_templates: dict[str, str] = {}
        self._opted_out: set[str] = set()
        self._outside_window: dict[str, bool] = {}  # number -> fail asynchronously?

    @property
    def base_url(self) -> str:
        """Replacement for `https://api.twilio.com`: `http://127.0.0.1:PORT`."""
        return self.url

    # -- test controls ----------------------------------------------------------------------

    def opt_out(self, number: str) -> None:
        """Sends to this number (with or without `whatsapp:`) answer 400, code 21610."""
        with self._cond:
            self._opted_out.add(_bare(number))

    def outside_window(self, number: str, *, asynchronous: bool = False) -> None:
        """Freeform `Body` sends to this number fail with 63016; `ContentSid` sends succeed.

        By default the create call answers 400. With `asynchronous=True` it answers 201 and the
        stored message turns `failed` with error_code 63016, as real Twilio reports it later
        through the status callback (see `status_callback_form`).
        """
        with self._cond:
            self._outside_window[_bare(number)] = asynchronous

    def inside_window(self, number: str) -> None:
        """Undo `outside_window` (the user wrote again)."""
        with self._cond:
            self._outside_window.pop(_bare(number), None)

    def fail_next(self, n: int = 1, status: int = 429) -> None:
        """Make the next `n` message creations fail: 429 -> code 20429, 500 -> code 20500."""
        self.queue_faults(n, status)

    def sent_messages(self, to: str | None = None) -> list[dict[str, Any]]:
        """Form parameters of the successful message creations, optionally for one recipient."""
        with self._cond:
            return [
                c.params
                for c in self.calls
                if c.method == "messages.create"
                and c.ok
                and (to is None or _bare(str(c.params.get("To", ""))) == _bare(to))
            ]

    def set_status(self, sid: str, status: str, error_code: int | None = None) -> dict[str, Any]:
        """Move a stored message to another status (e.g. delivered, read, failed)."""
        with self._cond:
            message = self._settled(sid)
            message.update(status=status, date_updated=_rfc2822())
            if status not in _UNSENT and message["date_sent"] is None:
                message["date_sent"] = message["date_updated"]
            if error_code is not None:
                error_message = _ERRORS[error_code][1] if error_code in _ERRORS else None
                message.update(error_code=error_code, error_message=error_message)
            return dict(message)

    def hold_answers(self) -> None:
        """From now on, a message creation is carried out (stored, counted) but its answer is
        held back until `release_answers()`: the caller cannot know that Twilio accepted it,
        as when the network or the caller dies at that moment."""
        with self._cond:
            self._answers = threading.Event()

    def release_answers(self) -> None:
        """Answer the held creations (to whoever still listens) and stop holding."""
        with self._cond:
            answers, self._answers = self._answers, None
        if answers is not None:
            answers.set()

    def backdate(self, sid: str, moment: datetime) -> dict[str, Any]:
        """Pretend a stored message was created and sent at `moment` (an earlier message)."""
        with self._cond:
            message = self._settled(sid)
            stamp = _rfc2822(moment.astimezone(UTC).replace(microsecond=0))
            message.update(date_created=stamp, date_sent=stamp, date_updated=stamp)
            self._created[sid] = moment
            return dict(message)

    # -- HTTP -------------------------------------------------------------------------------

    def dispatch(self, request: Request) -> Reply:
        """`FakeServer.dispatch`, then wait (outside the lock) while answers are held."""
        reply = super().dispatch(request)
        with self._cond:
            answers = self._answers
        if answers is not None and request.verb == "POST":
            answers.wait(timeout=60)
        return reply

    def stop(self) -> None:
        self.release_answers()
        super().stop()

    def handle(self, request: Request) -> Reply:
        """Route the Messages list (POST: create, GET: list) and instance (GET) URIs; check
        basic auth first."""
        now = self.now()
        prefix = rf"/{API_VERSION}/Accounts/([^/]+)/Messages"
        create = re.fullmatch(prefix + r"\.json", request.path)
        fetch = re.fullmatch(prefix + r"/([^/]+)\.json", request.path)
        if create and request.verb == "POST":
            method, account = "messages.create", create.group(1)
        elif create and request.verb == "GET":
            method, account = "messages.list", create.group(1)
        elif fetch and request.verb == "GET":
            method, account = "messages.fetch", fetch.group(1)
        else:
            return _not_found(request.path)
        params = _form(request)
        if not (self._authenticated(request) and account == self.account_sid):
            status, body = twilio_error(20003)
            body["detail"] = "Your AccountSid or AuthToken was incorrect."
        elif fetch:
            status, body = self._fetch(fetch.group(2), request.path)
        elif method == "messages.list":
            status, body = self._list(params, request.path)
        else:
            status, body = self._create(params, now)
        self.record(method, params, status, now)
        return status, body

    def _authenticated(self, request: Request) -> bool:
        scheme, _, encoded = str(request.headers.get("Authorization", "")).partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return (user, password) == (self.account_sid, self.auth_token)

    def _fetch(self, sid: str, path: str) -> Reply:
        if sid not in self.messages:
            return _not_found(path)
        return 200, dict(self._settled(sid))

    def _settled(self, sid: str) -> dict[str, Any]:
        """The stored message, moved from queued to sent once `send_delay` has passed."""
        message = self.messages[sid]
        created = self._created.get(sid)
        if message["status"] in ("queued", "accepted") and created is not None:
            sent_at = created + timedelta(seconds=self.send_delay)
            if datetime.now(UTC) >= sent_at:
                stamp = _rfc2822(sent_at.replace(microsecond=0))
                message.update(status="sent", date_sent=stamp, date_updated=stamp)
        return message

    def _list(self, params: dict[str, Any], path: str) -> Reply:
        """Twilio's Messages list: newest first, filtered, one page of `PageSize` (50)."""
        try:
            on = _day(params["DateSent"]) if "DateSent" in params else None
            after = _moment(params["DateSent>"], start=True) if "DateSent>" in params else None
            before = _moment(params["DateSent<"], start=False) if "DateSent<" in params else None
            size = min(1000, max(1, int(params.get("PageSize") or 50)))
            page = max(0, int(params.get("Page") or 0))
        except (TypeError, ValueError):
            return twilio_error(20001)
        dated = on is not None or after is not None or before is not None
        found = []
        for sid in self.messages:
            message = self._settled(sid)
            if params.get("To") not in (None, message["to"]):
                continue
            if params.get("From") not in (None, message["from"]):
                continue
            sent = _parsed(message["date_sent"])
            if dated and sent is None:
                continue  # not sent yet: no DateSent to match
            if sent is not None and (
                (on is not None and sent.date() != on)
                or (after is not None and sent < after)
                or (before is not None and sent > before)
            ):
                continue
            found.append(message)
        found.sort(key=lambda m: _parsed(m["date_sent"]) or datetime.max.replace(tzinfo=UTC))
        found.reverse()  # newest first; not yet sent before everything
        start = page * size
        records = [dict(m) for m in found[start : start + size]]
        query = {k: v for k, v in params.items() if k not in ("Page", "PageSize", "PageToken")}

        def uri(number: int) -> str:
            extra: dict[str, Any] = {"PageSize": size, "Page": number}
            if number:
                extra["PageToken"] = f"PASM{number * size}"
            return f"{path}?{urlencode({**query, **extra})}"

        more = start + size < len(found)
        return 200, {
            "first_page_uri": uri(0),
            "end": start + len(records) - 1 if records else start,
            "previous_page_uri": uri(page - 1) if page else None,
            "messages": records,
            "uri": uri(page),
            "page_size": size,
            "start": start,
            "next_page_uri": uri(page + 1) if more else None,
            "page": page,
        }

    def _create(self, params: dict[str, Any], now: float) -> Reply:
        if not self.admit(now):
            return twilio_error(20429)
        fault = self.next_fault()
        if fault is not None:
            return twilio_error(20000 + fault, status=fault)  # 20429, 20500, 20503…
        to, sender = params.get("To"), params.get("From")
        service = params.get("MessagingServiceSid")
        body, content_sid, media = (params.get(k) for k in ("Body", "ContentSid", "MediaUrl"))
        if not to:
            return twilio_error(21604)
        if not (sender or service):
            return twilio_error(21603)
        if not (body or content_sid or media):
            return twilio_error(21619)
        number = _bare(str(to))
        if number in self._opted_out:
            return twilio_error(21610)
        late = not content_sid and number in self._outside_window
        if late and not self._outside_window[number]:
            return twilio_error(63016)
        message = self._message_resource(params)
        self._created[message["sid"]] = datetime.now(UTC)
        if late:
            created = dict(message)
            message.update(
                status="failed",
                error_code=63016,
                error_message=_ERRORS[63016][1],
                date_sent=message["date_created"],
            )
            self.messages[message["sid"]] = message
            return 201, created
        self.messages[message["sid"]] = message
        return 201, dict(message)

    def _message_resource(self, params: dict[str, Any]) -> dict[str, Any]:
        """A Message resource as Twilio returns it on creation (status queued or accepted)."""
        sid = _sid("SM")
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}.json"
        media = params.get("MediaUrl") or []
        now = _rfc2822()
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self._body(params),
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": params.get("From"),
            "messaging_service_sid": params.get("MessagingServiceSid"),
            "num_media": str(len(media) if isinstance(media, list) else 1),
            "num_segments": "1" if params.get("From") else "0",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued" if params.get("From") else "accepted",
            "subresource_uris": {"media": uri.removesuffix(".json") + "/Media.json"},
            "to": params["To"],
            "uri": uri,
        }

    def _body(self, params: dict[str, Any]) -> str:
        """The message's text: its Body, or its template rendered with its variables."""
        content_sid = params.get("ContentSid")
        if not content_sid:
            return str(params.get("Body", ""))
        try:
            variables = json.loads(params.get("ContentVariables") or "{}")
        except ValueError:
            variables = {}
        text = self.content_templates.get(str(content_sid), "{{1}}")
        return re.sub(r"\{\{(\w+)\}\}", lambda m: str(variables.get(m.group(1), "")), text)


def _form(request: Request) -> dict[str, Any]:
    """Form fields of the request (body, else query); repeated fields become lists."""
    fields = parse_qs(request.body.decode(), keep_blank_values=True) or request.query
    return {k: v[0] if len(v) == 1 else v for k, v in fields.items()}


def _rfc2822(moment: datetime | None = None) -> str:
    """Twilio's date format: `Thu, 24 Aug 2023 05:01:45 +0000`."""
    return format_datetime(moment or datetime.now(UTC).replace(microsecond=0))


_UNSENT = ("queued", "accepted", "scheduled", "canceled")


def _parsed(stamp: str | None) -> datetime | None:
    return parsedate_to_datetime(stamp) if stamp else None


def _day(value: Any) -> date:
    return date.fromisoformat(str(value)[:10])


def _moment(value: Any, *, start: bool) -> datetime:
    """A `DateSent>`/`DateSent<` bound: an instant (`2026-12-01T08:00:00Z`), or a day, which
    counts from its first second (`>`) or up to its last one (`<`)."""
    text = str(value)
    if len(text) == 10:
        day = _day(text)
        return datetime.combine(day, time.min if start else time.max, tzinfo=UTC)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- webhooks Twilio sends to us ---------------------------------------------------------------


def status_callback_form(
    message_sid: str,
    status: str,
    to: str,
    error_code: int | None = None,
    *,
    from_: str = SANDBOX_NUMBER,
    account_sid: str = DEFAULT_ACCOUNT_SID,
) -> Form:
    """Fields of the status callback Twilio POSTs for a WhatsApp message (form-encoded)."""
    form: Form = {
        "MessageSid": message_sid,
        "MessageStatus": status,
        "SmsSid": message_sid,
        "SmsStatus": status,
        "AccountSid": account_sid,
        "From": _whatsapp(from_),
        "To": _whatsapp(to),
        "ApiVersion": API_VERSION,
        "ChannelPrefix": "whatsapp",
        "ChannelToAddress": _bare(to),
    }
    if error_code is not None:
        form["ErrorCode"] = str(error_code)
        if error_code in _ERRORS:
            form["ErrorMessage"] = _ERRORS[error_code][1]
    return form


def inbound_whatsapp_form(
    from_phone: str,
    body: str = "",
    message_sid: str | None = None,
    profile_name: str = "Test",
    num_media: int = 0,
    media_content_type: str | None = None,
    latitude: float | None = None,
    longitude: float | None = None,
    button_text: str | None = None,
    button_payload: str | None = None,
    account_sid: str = DEFAULT_ACCOUNT_SID,
    *,
    to: str = SANDBOX_NUMBER,
    address: str | None = None,
) -> Form:
    """Fields Twilio POSTs to the incoming-message webhook for a WhatsApp message.

    `from_phone` may be `+226…` or `whatsapp:+226…`. Media get `MediaUrl{i}` /
    `MediaContentType{i}`; a location gets `Latitude`/`Longitude` (and `Address` if given); a
    quick-reply tap gets `ButtonText`/`ButtonPayload`. `MessageType` follows the content.
    """
    sid = message_sid or _sid("SM")
    if media_content_type and num_media == 0:
        num_media = 1
    message_type = "text"
    form: Form = {
        "SmsMessageSid": sid,
        "NumMedia": str(num_media),
        "ProfileName": profile_name,
        "SmsSid": sid,
        "WaId": _bare(from_phone).removeprefix("+"),
        "SmsStatus": "received",
        "Body": body,
        "To": _whatsapp(to),
        "NumSegments": "1",
        "ReferralNumMedia": "0",
        "MessageSid": sid,
        "AccountSid": account_sid,
        "From": _whatsapp(from_phone),
        "ApiVersion": API_VERSION,
    }
    content_type = media_content_type or "image/jpeg"
    for i in range(num_media):
        form[f"MediaContentType{i}"] = content_type
        form[f"MediaUrl{i}"] = (
            f"https://api.twilio.com/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}"
            f"/Media/{_sid('ME')}"
        )
    if num_media:
        kind = content_type.split("/", 1)[0]
        message_type = kind if kind in {"image", "audio", "video"} else "document"
    if latitude is not None and longitude is not None:
        form.update(Latitude=str(latitude), Longitude=str(longitude))
        if address:
            form["Address"] = address
        message_type = "location"
    if button_text is not None or button_payload is not None:
        form.update(ButtonText=button_text or "", ButtonPayload=button_payload or "")
        message_type = "button"
    form["MessageType"] = message_type
    return form


def twilio_signature(auth_token: str, url: str, form: Mapping[str, str]) -> str:
    """`X-Twilio-Signature` for a form POST to `url`, computed by twilio's RequestValidator."""
    return str(RequestValidator(auth_token).compute_signature(url, dict(form)))
