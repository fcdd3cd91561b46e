"""RFC 9457 problem details (`application/problem+json`) and the catch-all for errors.

Use `problem(status, title, detail)` for every error a route returns, so that clients see one
shape. `CatchAllErrors` turns an unhandled exception into a bare 500 problem and logs the
exception type and stack only: never the request body, the query string, nor the exception's
message, which may carry personal data (SQL parameters, a phone number in a ValueError).
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.db import unavailable as database_unavailable
from bot.runtime import StoreUnavailable

PROBLEM_JSON = "application/problem+json"

logger = logging.getLogger("api.http")

# What a 503 asks the caller to wait while the database does not answer (seconds).
RETRY_AFTER_SECONDS = 5


def unavailable(exc: BaseException) -> bool:
    """The database is away: the runtime said so, or the database driver did."""
    return isinstance(exc, StoreUnavailable) or database_unavailable(exc)


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    type_: str = "about:blank",
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> ProblemResponse:
    """A problem+json response: `{"type", "title", "status"[, "detail"][, extensions…]}`."""
    body: dict[str, Any] = {"type": type_, "title": title, "status": status}
    if detail is not None:
        body["detail"] = detail
    body.update(extensions)
    return ProblemResponse(body, status_code=status, headers=headers)


def route_template(scope: Scope) -> str:
    """The matched route's path template (`/api/v1/posts/{code}`), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "<unmatched>"


def log_unhandled(exc: BaseException, scope: Scope, route: str | None = None) -> None:
    """An unexpected error in the log: its type, the route (`route`, or the one matched) and
    the stack — never its message."""
    stack = "".join(traceback.format_tb(exc.__traceback__))
    logger.error(
        "unhandled %s on %s %s\n%s",
        type(exc).__name__,
        scope.get("method", "?"),
        route or route_template(scope),
        stack,
    )


class CatchAllErrors:
    """ASGI middleware: an exception that nothing handled becomes a 500 problem+json.

    Unlike an `Exception` handler, which Starlette re-raises to the server (whose log line
    would carry the exception's message), this one ends the story here.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            response = failure_answer(exc, scope)
            if not started:
                await response(scope, receive, send)


def failure_answer(exc: Exception, scope: Scope, route: str | None = None) -> ProblemResponse:
    """What an unhandled exception answers, logged without its message. The database away (a
    restart): 503 and a Retry-After, so that a provider delivers the webhook again and a
    client tries again; nothing was committed. Anything else: a bare 500."""
    if unavailable(exc):
        logger.warning(
            "database unavailable on %s %s: %s",
            scope.get("method", "?"),
            route or route_template(scope),
            type(exc).__name__,
        )
        return problem(
            503,
            "Service Unavailable",
            "the database does not answer; try again shortly",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    log_unhandled(exc, scope, route)
    return problem(500, "Internal Server Error")
