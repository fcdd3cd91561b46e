"""Log lines: plain or JSON (`LOG_FORMAT`), with the request id of what is being handled, and
never personal data.

The rule is the callers': no phone number, name, birth date or message text in a log call
(the log scan in tests/test_topology.py holds every line of a whole day's kind of traffic to
it). The formatters add one safeguard: an exception is logged by its type and stack, never by
its message, which may carry such data (a database driver quotes the statement's parameters).

The request id (`request_id`) is set by the HTTP middleware for each request (from a sane
`X-Request-Id`, else drawn), carried into the turn (the threadpool copies the context), and
written with the turn's replies into the outbox, where the sender sets it again while it sends
them: one id follows a citizen's message from the webhook to the provider's answer.
"""

from __future__ import annotations

import json
import logging
import os
import re
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from types import TracebackType

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

_SANE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def new_request_id(given: str | None = None) -> str:
    """`given` (a caller's X-Request-Id) when it is a plain token, else a fresh one."""
    if given and _SANE.match(given):
        return given
    return os.urandom(8).hex()  # 16 hex digits, as a uuid4 cut short, at a fifth of its cost


def _stack(exc_info: tuple[type[BaseException], BaseException, TracebackType | None]) -> str:
    kind, _exc, tb = exc_info
    return "".join(traceback.format_tb(tb)) + kind.__name__


class PlainFormatter(logging.Formatter):
    """`time LEVEL logger [request id]: message`; exceptions by type and stack only."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(rid)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        rid = request_id.get()
        record.rid = f" [{rid}]" if rid else ""
        return super().format(record)

    def formatException(self, ei: object) -> str:
        return _stack(ei)  # type: ignore[arg-type]


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `ts`, `level`, `logger`, `msg`, `request_id` when there is
    one, the `FIELDS` a call gave, `exc_type` and `stack` for an exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id.get()
        if rid:
            entry["request_id"] = rid
        for key in FIELDS:
            value = record.__dict__.get(key)
            if value is not None:
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__name__
            entry["stack"] = "".join(traceback.format_tb(record.exc_info[2]))
        return json.dumps(entry, ensure_ascii=False)


# Fields a log call may add with `extra=` (JSON only): closed names, never personal data.
FIELDS = ("channel", "lang", "duration_ms", "outcome", "reason", "outbox_id", "lane", "job")


def formatter(kind: str) -> logging.Formatter:
    return JsonFormatter() if kind == "json" else PlainFormatter()


# Libraries whose INFO lines carry what must not be logged: httpx logs every URL (the
# Telegram token is in the path; Twilio lists carry phone numbers), twilio its requests.
QUIET = ("httpx", "httpcore", "twilio", "telegram", "apscheduler", "alembic")
