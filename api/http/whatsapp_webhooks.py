"""Twilio's webhooks, `POST /webhooks/whatsapp` and `/webhooks/whatsapp/status`, answered by a
pure ASGI layer outermost in the app: the path every citizen's WhatsApp message takes carries
no framework work that a bare endpoint does not do (DESIGN.md's turn bar).

It keeps every promise the app's middleware makes to other routes, on its own: the request id
(`X-Request-Id`, and in every log line), the body cap (413 before a byte beyond it is read),
the security headers, the request counter, and the catch-all (a 503 problem while the database
is away, a bare 500 otherwise, never a traceback). Then, as before: the signature checked on
the raw body and the public URL (403), a well-formed `MessageSid` (400), one turn, its TwiML.
Any other path goes on to the app unchanged.
"""

from __future__ import annotations

from starlette.datastructures import State
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api.channels import WEBHOOK_WHATSAPP, WEBHOOK_WHATSAPP_STATUS, ChannelHandlers, webhook_url
from api.http.body_limit import BodyTooLarge, declared_within, limit_for, too_large_problem
from api.http.problems import failure_answer, problem
from api.http.request_ids import scope_request_id
from api.http.security_headers import HEADERS
from api.http.webhooks import channel_handlers
from bot.channels import whatsapp as whatsapp_channel
from bot.logs import request_id

TWIML = b"application/xml"
FORM = b"application/x-www-form-urlencoded"
ROUTES = frozenset({WEBHOOK_WHATSAPP, WEBHOOK_WHATSAPP_STATUS})


class _TooLarge(Exception):
    pass


class TwilioWebhooks:
    """Pure ASGI: answers Twilio's two paths, passes every other request to `app`."""

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in ROUTES:
            await self.app(scope, receive, send)
            return
        rid = scope_request_id(scope)
        token = request_id.set(rid)
        status = 500
        try:
            try:
                status, content_type, body, extra = await self._answer(scope, receive)
            except ClientDisconnect:
                return  # nobody to answer; nothing was done
            except Exception as exc:
                failure = failure_answer(exc, scope, scope["path"])
                status, content_type, body, extra = _parts(failure)
            headers = [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", rid.encode()),
                *extra,
                *HEADERS,
            ]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        finally:
            request_id.reset(token)
            metrics = self.state.metrics
            metrics.child(metrics.http_requests, scope["path"], str(status)).inc()

    async def _answer(
        self, scope: Scope, receive: Receive
    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        path = scope["path"]
        if scope["method"] != "POST":
            return _parts(problem(405, "Method Not Allowed", headers={"Allow": "POST"}))
        cap = limit_for(path)
        try:
            raw = await _body(scope, receive, cap)
        except _TooLarge:
            return _parts(too_large_problem(BodyTooLarge(cap).detail))
        handlers = channel_handlers(self.state)
        form = self._signed_form(handlers, scope, path, raw)
        if form is None:
            return _parts(problem(403, "Forbidden", "missing or wrong X-Twilio-Signature"))
        if path == WEBHOOK_WHATSAPP_STATUS:
            await handlers.whatsapp_status(form)
            return 200, TWIML, whatsapp_channel.empty_twiml().encode(), []
        if not whatsapp_channel.has_message_sid(form):
            detail = "an incoming message needs a well-formed MessageSid"
            return _parts(problem(400, "Bad Request", detail))
        return 200, TWIML, (await handlers.whatsapp(form)).encode(), []

    def _signed_form(
        self, handlers: ChannelHandlers, scope: Scope, path: str, raw: bytes
    ) -> whatsapp_channel.Form | None:
        """The form, when Twilio's signature over the public URL and the form holds. Twilio
        posts url-encoded forms; any other body is an empty form (which a signature may cover)."""
        signature = content_type = None
        for name, value in scope["headers"]:
            if name == b"x-twilio-signature":
                signature = value.decode("latin-1")
            elif name == b"content-type":
                content_type = value
        form = whatsapp_channel.Form([])
        if content_type is not None and content_type.split(b";", 1)[0].strip().lower() == FORM:
            try:
                form = whatsapp_channel.parse_body(raw)
            except ValueError:  # not UTF-8, or more fields than a form holds
                return None
        url = webhook_url(self.state.settings, path)
        query = scope.get("query_string", b"")
        if query:
            url = f"{url}?{query.decode('latin-1')}"
        return form if handlers.whatsapp_signed(url, form, signature) else None


async def _body(scope: Scope, receive: Receive, cap: int) -> bytes:
    """The whole body, refused (`_TooLarge`) as soon as it declares or passes `cap`."""
    if not declared_within(scope, cap):
        raise _TooLarge
    chunks: list[bytes] = []
    seen = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        seen += len(chunk)
        if seen > cap:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _parts(response: Response) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
    """A Starlette response as status, content type, body and its other headers."""
    content_type = b""
    extra: list[tuple[bytes, bytes]] = []
    for name, value in response.raw_headers:
        if name == b"content-type":
            content_type = value
        elif name != b"content-length":
            extra.append((name, value))
    return response.status_code, content_type, bytes(response.body), extra
