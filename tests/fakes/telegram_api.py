"""A fake Telegram Bot API server for tests.

It mimics the wire format of https://api.telegram.org: `POST /bot<token>/<method>` (GET and query
strings work too) with parameters either form-encoded (python-telegram-bot's `HTTPXRequest`
sends every non-string value, e.g. `reply_markup`, as a JSON string), JSON-encoded or multipart;
answers are `{"ok": true, "result": ...}` or `{"ok": false, "error_code": N, "description": ...,
"parameters": {...}}`. Point a real client at it with
`telegram.Bot(token, base_url=fake.base_url)` (PTB appends the token to `base_url`).
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable
from email import policy
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qs

from tests.fakes._base import FakeServer, Request

Params = dict[str, Any]
Reply = tuple[int, Any]

# Parameters that Telegram types as String: never JSON-decode them ("42" stays text).
_STRING_PARAMS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "url",
        "secret_token",
        "callback_query_id",
        "inline_message_id",
        "action",
        "ip_address",
        "business_connection_id",
        "message_effect_id",
    }
)
# Methods that act on a chat: subject to faults, blocked chats and the rate limit.
_SENDING_METHODS = frozenset(
    {
        "sendMessage",
        "sendVoice",
        "sendPhoto",
        "sendDocument",
        "editMessageText",
        "editMessageReplyMarkup",
        "sendChatAction",
        "answerCallbackQuery",
    }
)
_update_ids = itertools.count(1)


def _decode(name: str, value: Any) -> Any:
    """Decode a JSON-encoded parameter value the way the Bot API does (strings stay strings)."""
    if not isinstance(value, str) or name in _STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def parse_params(request: Request) -> Params:
    """Parameters of a Bot API request: query string, then a form, JSON or multipart body.

    Multipart file parts become `{"filename": ..., "content_type": ..., "content": bytes}`.
    """
    raw: dict[str, Any] = {k: v[-1] for k, v in request.query.items()}
    if request.content_type == "application/json" and request.body:
        raw.update(json.loads(request.body))
    elif request.content_type == "multipart/form-data":
        header = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
        message = BytesParser(policy=policy.HTTP).parsebytes(header + request.body)
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            content = part.get_payload(decode=True)
            if not isinstance(name, str) or not isinstance(content, bytes):
                continue
            filename = part.get_filename()
            if filename is None:
                raw[name] = content.decode(part.get_content_charset() or "utf-8")
            else:
                raw[name] = {
                    "filename": filename,
                    "content_type": part.get_content_type(),
                    "content": content,
                }
    elif request.body:
        form = parse_qs(request.body.decode(), keep_blank_values=True)
        raw.update({k: v[-1] for k, v in form.items()})
    return {name: _decode(name, value) for name, value in raw.items()}


def _chat(chat_id: Any) -> dict[str, Any]:
    """A plausible Chat object for a chat_id (private > 0, supergroup -100…, @channel)."""
    if isinstance(chat_id, int):
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": "Test"}
        kind = "supergroup" if str(chat_id).startswith("-100") else "group"
        return {"id": chat_id, "type": kind, "title": "Test group"}
    return {"id": -1001000000000, "type": "channel", "username": str(chat_id).lstrip("@")}


def _user(user_id: int, first_name: str) -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": "fr"}


def message_update(
    chat_id: int,
    text: str,
    *,
    user_id: int | None = None,
    first_name: str = "Test",
    message_id: int = 1,
    update_id: int | None = None,
) -> dict[str, Any]:
    """A Bot API `Update` carrying a private text message from a user (webhook/getUpdates)."""
    uid = user_id if user_id is not None else chat_id
    return {
        "update_id": update_id if update_id is not None else next(_update_ids),
        "message": {
            "message_id": message_id,
            "from": _user(uid, first_name),
            "chat": {"id": chat_id, "type": "private", "first_name": first_name},
            "date": int(time.time()),
            "text": text,
        },
    }


def callback_query_update(
    chat_id: int,
    data: str,
    *,
    message_id: int = 1,
    user_id: int | None = None,
    query_id: str | None = None,
    update_id: int | None = None,
    bot_id: int = 123,
) -> dict[str, Any]:
    """A Bot API `Update` for a tap on an inline button of a message the bot sent."""
    uid = user_id if user_id is not None else chat_id
    update = update_id if update_id is not None else next(_update_ids)
    return {
        "update_id": update,
        "callback_query": {
            "id": query_id or f"cbq{update}",
            "from": _user(uid, "Test"),
            "chat_instance": str(chat_id),
            "data": data,
            "message": {
                "message_id": message_id,
                "from": {"id": bot_id, "is_bot": True, "first_name": "Bot"},
                "chat": {"id": chat_id, "type": "private", "first_name": "Test"},
                "date": int(time.time()),
                "text": "…",
            },
        },
    }


def _ok(result: Any, description: str | None = None) -> Reply:
    body: dict[str, Any] = {"ok": True, "result": result}
    if description:
        body["description"] = description
    return 200, body


def _error(code: int, description: str, **parameters: Any) -> Reply:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return code, body


_DESCRIPTIONS = {
    400: "Bad Request",
    403: "Forbidden: bot was blocked by the user",
    429: "Too Many Requests: retry after {retry_after}",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


class FakeTelegramAPI(FakeServer):
    """Fake Bot API for one bot token, with programmable faults.

    Usage: `with FakeTelegramAPI(token="123:ABC") as tg: Bot("123:ABC", base_url=tg.base_url)`.
    """

    def __init__(
        self,
        token: str = "123:ABC",
        *,
        rate_limit_per_second: float | None = None,
        bot_username: str = "diaspora_test_bot",
        long_poll_cap: float = 1.0,
    ) -> None:
        super().__init__(rate_limit_per_second=rate_limit_per_second)
        self.token = token
        prefix = token.split(":", 1)[0]
        self.bot_id = int(prefix) if prefix.isdigit() else 1
        self.bot_username = bot_username
        self.long_poll_cap = long_poll_cap  # getUpdates never waits longer than this
        self.webhook_url = ""
        self.webhook_secret: str | None = None
        self.webhook_allowed_updates: list[str] | None = None
        self._updates: list[dict[str, Any]] = []
        self._blocked: set[str] = set()
        self._messages: dict[tuple[str, int], dict[str, Any]] = {}
        self._message_ids = itertools.count(1)
        implementations: dict[str, Callable[[Params], Reply]] = {
            "getMe": self._get_me,
            "sendMessage": self._send_message,
            "sendVoice": self._send_voice,
            "sendPhoto": self._send_photo,
            "sendDocument": self._send_document,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "answerCallbackQuery": self._answer_callback_query,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "getUpdates": self._get_updates,
            "sendChatAction": self._send_chat_action,
        }
        # Bot API method names are case-insensitive: key by lower case, keep the canonical name.
        self._methods = {name.lower(): (name, impl) for name, impl in implementations.items()}

    @property
    def base_url(self) -> str:
        """Value for `telegram.Bot(base_url=...)`: `http://127.0.0.1:PORT/bot`."""
        return f"{self.url}/bot"

    @property
    def bot_user(self) -> dict[str, Any]:
        """The `User` object getMe returns."""
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Diaspora Bot",
            "username": self.bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    # -- test controls ----------------------------------------------------------------------

    def push_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an `Update` for getUpdates (an `update_id` is assigned when missing)."""
        with self._cond:
            if "update_id" not in update:
                last = max((u["update_id"] for u in self._updates), default=0)
                update = {"update_id": max(last + 1, next(_update_ids)), **update}
            self._updates.append(update)
            self._cond.notify_all()
            return update

    def block_chat(self, chat_id: int | str) -> None:
        """From now on, calls aimed at this chat answer 403 "bot was blocked by the user"."""
        with self._cond:
            self._blocked.add(str(chat_id))

    def unblock_chat(self, chat_id: int | str) -> None:
        """Undo `block_chat`."""
        with self._cond:
            self._blocked.discard(str(chat_id))

    def fail_next(
        self, n: int = 1, status: int = 429, retry_after: int = 2, description: str | None = None
    ) -> None:
        """Make the next `n` chat-directed calls (sendMessage, edits, sendChatAction,
        answerCallbackQuery) fail with `status`; a 429 carries `parameters.retry_after`."""
        template = description or _DESCRIPTIONS.get(status, f"Error {status}")
        self.queue_faults(n, (status, template.format(retry_after=retry_after), retry_after))

    def sent_messages(self, chat_id: int | str | None = None) -> list[Params]:
        """Parameters of the successful sendMessage calls, optionally for one chat only."""
        with self._cond:
            return [
                c.params
                for c in self.calls
                if c.method == "sendMessage"
                and c.ok
                and (chat_id is None or str(c.params.get("chat_id")) == str(chat_id))
            ]

    # -- HTTP -------------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        """Route `/bot<token>/<method>` to a method implementation, faults first."""
        now = self.now()
        match = re.fullmatch(r"/bot([^/]+)/([A-Za-z]+)", request.path)
        if match is None:
            return _error(404, "Not Found")
        token, method = match.groups()
        params = parse_params(request)
        known = self._methods.get(method.lower())
        if token != self.token:
            status, body = _error(401, "Unauthorized")
        elif known is None:
            status, body = _error(404, "Not Found: method not found")
        else:
            method, implementation = known
            status, body = self._fault(method, params, now) or implementation(params)
        self.record(method, params, status, now)
        return status, body

    def _fault(self, method: str, params: Params, now: float) -> Reply | None:
        if method not in _SENDING_METHODS:
            return None
        if not self.admit(now):
            return _error(429, "Too Many Requests: retry after 1", retry_after=1)
        fault = self.next_fault()
        if fault is not None:
            status, description, retry_after = fault
            if status == 429:
                return _error(429, description, retry_after=retry_after)
            return _error(status, description)
        if "chat_id" in params and str(params["chat_id"]) in self._blocked:
            return _error(403, "Forbidden: bot was blocked by the user")
        return None

    # -- Bot API methods --------------------------------------------------------------------

    def _get_me(self, params: Params) -> Reply:
        return _ok(self.bot_user)

    def _send_message(self, params: Params) -> Reply:
        if params.get("chat_id") in (None, ""):
            return _error(400, "Bad Request: chat_id is empty")
        text = params.get("text")
        if not text:
            return _error(400, "Bad Request: message text is empty")
        if len(str(text)) > 4096:
            return _error(400, "Bad Request: message is too long")
        markup = params.get("reply_markup")
        if not _valid_markup(markup):
            return _error(400, "Bad Request: BUTTON_DATA_INVALID")
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "from": {k: self.bot_user[k] for k in ("id", "is_bot", "first_name", "username")},
            "chat": _chat(params["chat_id"]),
            "date": int(time.time()),
            "text": str(text),
        }
        if markup:
            message["reply_markup"] = markup
        self._messages[(str(params["chat_id"]), message["message_id"])] = message
        return _ok(message)

    def _send_voice(self, params: Params) -> Reply:
        """A voice note by URL (the real API fetches it: an OGG/Opus file)."""
        if params.get("chat_id") in (None, ""):
            return _error(400, "Bad Request: chat_id is empty")
        if not params.get("voice"):
            return _error(400, "Bad Request: there is no voice in the request")
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "from": {k: self.bot_user[k] for k in ("id", "is_bot", "first_name", "username")},
            "chat": _chat(params["chat_id"]),
            "date": int(time.time()),
            "voice": {
                "file_id": f"voice{next(self._message_ids)}",
                "file_unique_id": f"unique{next(self._message_ids)}",
                "duration": 1,
                "mime_type": "audio/ogg",
            },
        }
        self._messages[(str(params["chat_id"]), message["message_id"])] = message
        return _ok(message)

    def _send_photo(self, params: Params) -> Reply:
        """A photo by URL (the real API fetches it) or uploaded."""
        if params.get("chat_id") in (None, ""):
            return _error(400, "Bad Request: chat_id is empty")
        if not params.get("photo"):
            return _error(400, "Bad Request: there is no photo in the request")
        unique = next(self._message_ids)
        size = {"file_id": f"photo{unique}", "file_unique_id": f"u{unique}", "width": 90}
        return self._sent_media(params, "photo", [{**size, "height": 90}])

    def _send_document(self, params: Params) -> Reply:
        """A document uploaded; by URL only a GIF, PDF or ZIP file, as the real API says."""
        if params.get("chat_id") in (None, ""):
            return _error(400, "Bad Request: chat_id is empty")
        document = params.get("document")
        if not document:
            return _error(400, "Bad Request: there is no document in the request")
        if isinstance(document, str) and not document.lower().endswith((".gif", ".pdf", ".zip")):
            return _error(400, "Bad Request: wrong type of the web page content")
        name = document.get("filename", "") if isinstance(document, dict) else document
        unique = next(self._message_ids)
        document = {"file_id": f"doc{unique}", "file_unique_id": f"u{unique}", "file_name": name}
        return self._sent_media(params, "document", document)

    def _sent_media(self, params: Params, kind: str, media: Any) -> Reply:
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "from": {k: self.bot_user[k] for k in ("id", "is_bot", "first_name", "username")},
            "chat": _chat(params["chat_id"]),
            "date": int(time.time()),
            kind: media,
        }
        if params.get("caption"):
            message["caption"] = str(params["caption"])
        self._messages[(str(params["chat_id"]), message["message_id"])] = message
        return _ok(message)

    def _edit_message_text(self, params: Params) -> Reply:
        if not params.get("text"):
            return _error(400, "Bad Request: message text is empty")
        return self._edit(params, text=str(params["text"]))

    def _edit_message_reply_markup(self, params: Params) -> Reply:
        return self._edit(params, text=None)

    def _edit(self, params: Params, text: str | None) -> Reply:
        """Shared editMessageText / editMessageReplyMarkup: an absent reply_markup removes it."""
        markup = params.get("reply_markup")
        if not _valid_markup(markup):
            return _error(400, "Bad Request: BUTTON_DATA_INVALID")
        if params.get("inline_message_id"):
            return _ok(True)
        key = (str(params.get("chat_id")), _as_int(params.get("message_id")))
        message = self._messages.get(key)
        if message is None:
            return _error(400, "Bad Request: message to edit not found")
        new_text = message["text"] if text is None else text
        if new_text == message["text"] and markup == message.get("reply_markup"):
            return _error(
                400,
                "Bad Request: message is not modified: specified new message content and reply "
                "markup are exactly the same as a current content and reply markup of the message",
            )
        message = {k: v for k, v in message.items() if k != "reply_markup"}
        message.update(text=new_text, edit_date=int(time.time()))
        if markup:
            message["reply_markup"] = markup
        self._messages[key] = message
        return _ok(message)

    def _answer_callback_query(self, params: Params) -> Reply:
        if not params.get("callback_query_id"):
            return _error(400, "Bad Request: QUERY_ID_INVALID")
        return _ok(True)

    def _send_chat_action(self, params: Params) -> Reply:
        if not params.get("action"):
            return _error(400, "Bad Request: wrong parameter action in request")
        return _ok(True)

    def _set_webhook(self, params: Params) -> Reply:
        self.webhook_url = str(params.get("url") or "")
        self.webhook_secret = params.get("secret_token")
        self.webhook_allowed_updates = params.get("allowed_updates")
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return _ok(True, "Webhook was set" if self.webhook_url else "Webhook was deleted")

    def _delete_webhook(self, params: Params) -> Reply:
        self.webhook_url, self.webhook_secret, self.webhook_allowed_updates = "", None, None
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return _ok(True, "Webhook was deleted")

    def _get_webhook_info(self, params: Params) -> Reply:
        info: dict[str, Any] = {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self.webhook_allowed_updates is not None:
            info["allowed_updates"] = self.webhook_allowed_updates
        return _ok(info)

    def _get_updates(self, params: Params) -> Reply:
        """Long polling: `offset` confirms earlier updates; waits up to min(timeout, cap)."""
        if self.webhook_url:
            return _error(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = _as_int(params.get("offset"))
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        wait = min(float(params.get("timeout") or 0), self.long_poll_cap)
        self._cond.wait_for(lambda: bool(self._updates) or self._closing, timeout=wait)
        limit = _as_int(params.get("limit")) or 100
        return _ok(self._updates[:limit])


def _as_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _valid_markup(markup: Any) -> bool:
    """Telegram rejects inline buttons whose callback_data is not 1–64 bytes of UTF-8."""
    if not isinstance(markup, dict):
        return True
    for row in markup.get("inline_keyboard", []):
        for button in row:
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= 64:
                return False
    return True
