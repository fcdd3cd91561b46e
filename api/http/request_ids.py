"""A request id for every HTTP request: the caller's `X-Request-Id` when it is a plain token,
else a fresh one; set for the logs of everything the request does (bot.logs.request_id) and
returned in the answer's `X-Request-Id`."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.logs import new_request_id, request_id


def scope_request_id(scope: Scope) -> str:
    """The request's id: the caller's X-Request-Id when it is a plain token, else a new one."""
    given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None)
    return new_request_id(given)


class RequestIds:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = scope_request_id(scope)
        token = request_id.set(rid)

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Request-Id"] = rid
            await send(message)

        try:
            await self.app(scope, receive, tagged)
        finally:
            request_id.reset(token)
