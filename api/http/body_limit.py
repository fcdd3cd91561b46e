"""A cap on every request body, counted as it streams in: 413 with a JSON problem above it.

Nothing reads a body whole before it is checked: a declared `Content-Length` above the cap is
refused before one byte is read, and a body that streams past the cap (chunked, or a length
that lies) is cut off at the first chunk over it. Webhooks and the simulator carry one message
and get a small cap; the staff API and console get what their largest form needs.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.http.problems import problem

KIB = 1024
# Path prefix → cap in bytes; the first prefix that matches decides, the default last.
LIMITS: tuple[tuple[str, int], ...] = (
    ("/webhooks/", 256 * KIB),
    ("/api/v1/simulator/", 16 * KIB),
    ("/api/v1/voice/", 4 * 1024 * KIB),  # a recorded clip (api.domain.voice: 3 MiB at most)
    ("/console/voice/", 4 * 1024 * KIB),
)
DEFAULT_LIMIT = 1024 * KIB


class BodyTooLarge(HTTPException):
    """Raised from `receive` once the body has passed its cap. An HTTPException, so that
    FastAPI's body parsing lets it through (anything else it turns into a 400)."""

    def __init__(self, cap: int) -> None:
        super().__init__(413, f"the body is larger than {cap // KIB} KiB")


async def too_large(_request: Request, exc: Exception) -> Response:
    """The app's handler for BodyTooLarge raised where no ProblemRoute catches it."""
    return too_large_problem(exc.detail if isinstance(exc, HTTPException) else None)


def too_large_problem(detail: str | None) -> Response:
    """413, and the connection closed: the rest of the body is not worth reading."""
    return problem(413, "Content Too Large", detail, headers={"Connection": "close"})


def limit_for(path: str) -> int:
    return next((cap for prefix, cap in LIMITS if path.startswith(prefix)), DEFAULT_LIMIT)


def declared_within(scope: Scope, cap: int) -> bool:
    """Whether the request declares no length, or a well-formed one within `cap`."""
    declared = next((v for k, v in scope.get("headers") or () if k == b"content-length"), None)
    return declared is None or (declared.isdigit() and int(declared) <= cap)


class BodyLimit:
    """Pure ASGI middleware: counts the body's bytes as the app reads them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = limit_for(scope["path"])
        if not declared_within(scope, cap):
            await too_large_problem(BodyTooLarge(cap).detail)(scope, receive, send)
            return
        seen = 0

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap:
                    raise BodyTooLarge(cap)
            return message

        await self.app(scope, counted_receive, send)
