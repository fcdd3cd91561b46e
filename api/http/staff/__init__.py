"""The staff REST API under `/api/v1`: one module per resource, bearer tokens, problem+json.

`router` gathers them; api.app includes it.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.http.staff import (
    accounts,
    appointments,
    audit,
    broadcasts,
    citizens,
    conversations,
    draws,
    hours,
    limits,
    me,
    posts,
    requests,
    services,
    translations,
    voice,
    waitlist,
)

PREFIX = "/api/v1"

router = APIRouter(prefix=PREFIX)
for module in (
    me,
    accounts,
    posts,
    services,
    hours,
    appointments,
    requests,
    citizens,
    limits,
    audit,
    broadcasts,
    conversations,
    translations,
    voice,
    waitlist,
    draws,
):
    router.include_router(module.router)

__all__ = ["PREFIX", "router"]
