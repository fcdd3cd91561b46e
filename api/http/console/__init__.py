"""`/console/` — the staff console: server-rendered pages for a consular agent at a desk.

French pages (Jinja2 templates under api/templates/console/, CSS and small scripts under
api/static/, all served by the app), plain HTML forms that work without the scripts (the
inbox's live refresh, the broadcasts' live count and progress). A signed session cookie with a
login kept on the server (`session`) after an e-mail and
password login (`login`); every form carries the session's CSRF token, compared in constant
time. An agent sees and changes the data of their posts only (another post's data answers
403 "not one of your posts", api.domain.errors.NotYours; what does not exist, 404); an
administrator sees every post. Unknown console URLs and unexpected errors are console pages
too, never raw JSON (`base.unknown_url`, `base.ConsoleRoute`).

One module per section, as `api.http.staff` has one per resource: `dashboard`,
`appointments`, `walk_ins` (booking for the citizen at the desk, and the receipt),
`requests`, `inbox` (the desk's conversations with citizens), `posts`, `draws` (a post's
draws), `broadcasts`, `limits`, `citizens`, `translations` (review and glossary), `admin`,
`search` (the box of every page); `base` holds what they all stand on. A section's routes
only translate: they read the form, call the use case of the domain (api.domain.*_desk,
api.domain.desk_conversations, api.domain.broadcasts…) in a `staff_write` transaction — the
same use case the staff API calls, so both check, change, notify and audit alike — and turn
what it raises into a page or a flash message. Routes are plain `def`: the database calls and
Argon2 run in FastAPI's threadpool.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.http.console import (
    admin,
    appointments,
    broadcasts,
    citizens,
    dashboard,
    draws,
    inbox,
    limits,
    login,
    posts,
    requests,
    search,
    translations,
    walk_ins,
)
from api.http.console.base import unknown_url
from api.http.console.login import login_failures_limit

router = APIRouter()
for section in (
    login,
    dashboard,
    walk_ins,
    appointments,
    requests,
    inbox,
    posts,
    draws,
    broadcasts,
    limits,
    citizens,
    translations,
    admin,
    search,
):
    router.include_router(section.router)

__all__ = ["login_failures_limit", "router", "unknown_url"]
