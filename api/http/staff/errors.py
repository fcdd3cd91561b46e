"""Errors of the staff API, all as RFC 9457 problem details (`application/problem+json`).

Routes raise `ProblemError(status, title, detail)`; `ProblemRoute`, the route class of every
staff router, turns it — and FastAPI's own validation errors and HTTP exceptions — into
`api.http.problems.problem(…)` responses. A validation error is a 422 whose `errors` member
lists each field at fault: `{"loc": ["body", "full_name"], "msg": "…", "type": "…"}`. A body
FastAPI cannot even decode (not UTF-8: its 400) is one more validation error, `json_invalid`.

`responses(401, 404, …)` documents those answers in the OpenAPI schema under their real media
type, so that generated clients and Schemathesis see what the API sends.
"""

from __future__ import annotations

import http
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from api.http.problems import PROBLEM_JSON, ProblemResponse, problem


class ProblemError(Exception):
    """Raise in a route to answer with a problem; `headers` go on the response."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or str(status))
        self.status = status
        self.title = title or http.HTTPStatus(status).phrase
        self.detail = detail
        self.headers = headers

    def response(self) -> ProblemResponse:
        return problem(self.status, self.title, self.detail, headers=self.headers)


def not_found(what: str) -> ProblemError:
    return ProblemError(404, f"no such {what}")


def validation_problem(exc: RequestValidationError) -> ProblemResponse:
    errors = [
        {
            "loc": [part if isinstance(part, int) else str(part) for part in error.get("loc", ())],
            "msg": str(error.get("msg", "")),
            "type": str(error.get("type", "")),
        }
        for error in exc.errors()
    ]
    return problem(
        422, "Unprocessable Content", "the request does not match the schema", errors=errors
    )


def unreadable_body() -> ProblemResponse:
    error = {"loc": ["body"], "msg": "the body is not JSON in UTF-8", "type": "json_invalid"}
    return problem(
        422, "Unprocessable Content", "the request does not match the schema", errors=[error]
    )


class ProblemRoute(APIRoute):
    """An APIRoute whose errors are problem+json responses."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except ProblemError as exc:
                return exc.response()
            except RequestValidationError as exc:
                return validation_problem(exc)
            except HTTPException as exc:  # Starlette's: FastAPI raises it for unreadable bodies
                if exc.status_code == 400:
                    return unreadable_body()
                detail = exc.detail if isinstance(exc.detail, str) else None
                title = http.HTTPStatus(exc.status_code).phrase
                headers = dict(exc.headers) if exc.headers else None
                return problem(exc.status_code, title, detail, headers=headers)

        return route


_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["loc", "msg", "type"],
                "properties": {
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}

_DESCRIPTIONS = {
    401: "No valid bearer token",
    403: "Administrators only",
    404: "Not found, or not one of the caller's posts",
    409: "Conflicts with the current state",
    422: "Validation error: the `errors` member lists the fields at fault",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the problems a route may answer with."""
    return {
        status: {
            "description": _DESCRIPTIONS.get(status, http.HTTPStatus(status).phrase),
            "content": {PROBLEM_JSON: {"schema": _SCHEMA}},
        }
        for status in statuses
    }
