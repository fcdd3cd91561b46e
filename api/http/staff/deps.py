"""What staff routes depend on, named by type: `CurrentStaff`, `DbDep`, `NowDep`, `PageDep`.

Transactions are opened in the route body, not by a dependency, so that a route has
committed before its response is built: `with read(db) as conn` to read, and
`with staff_write(db, staff, now) as tx` to change anything — the one helper for staff writes,
which records every change in the audit log inside the same transaction (`tx.audit(…)`) and
refuses to commit a write that recorded nothing.

Access. An administrator sees everything; an agent sees their posts only. Another post's data
is answered exactly as data that does not exist (404), whether read or written; what no agent
may do at all (create a post, read the audit log, export or erase a citizen) is a 403.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

import sqlalchemy as sa
from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy.engine import Connection, Engine, Row

from api.db import write
from api.domain.audit import StaffWrite, staff_write
from api.domain.errors import NotVisible, Refused
from api.domain.staff import StaffPrincipal, post_filter, staff_for_token
from api.domain.tables import table
from api.http.staff.errors import ProblemError
from api.models import Post, utcnow

__all__ = ["StaffWrite", "post_filter", "staff_write"]  # the domain's, at hand for the routes

T = TypeVar("T")

post_table = table(Post)

MAX_LIMIT = 200
DEFAULT_LIMIT = 50
MAX_OFFSET = 1_000_000_000
MAX_ID = 2**31 - 1  # ids are 32-bit integers on PostgreSQL

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="StaffToken",
    description="An API token printed by `diaspora-bot staff token EMAIL`.",
)


# --- the clock and the database -----------------------------------------------------------------


def clock(request: Request) -> datetime:
    """Now, in UTC. Tests may set `app.state.clock` to a callable returning an aware datetime."""
    source: Callable[[], datetime] | None = getattr(request.app.state, "clock", None)
    return source() if source is not None else utcnow()


def database(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


NowDep = Annotated[datetime, Depends(clock)]
DbDep = Annotated[Engine, Depends(database)]


# --- who is calling -------------------------------------------------------------------------


def _unauthorized(detail: str, error: str | None = None) -> ProblemError:
    challenge = 'Bearer realm="diaspora-bot"'
    if error:
        challenge += f', error="{error}"'
    return ProblemError(401, detail, headers={"WWW-Authenticate": challenge})


def current_staff(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    db: DbDep,
    now: NowDep,
) -> StaffPrincipal:
    if credentials is None:
        raise _unauthorized("a bearer token is needed: Authorization: Bearer <token>")
    # A write transaction: the lookup records when the token was last used.
    with write(db) as conn:
        principal = staff_for_token(conn, credentials.credentials, now)
    if principal is None:
        raise _unauthorized(
            "the token is unknown, revoked, or its account disabled", "invalid_token"
        )
    return principal


CurrentStaff = Annotated[StaffPrincipal, Depends(current_staff)]


def require_admin(staff: StaffPrincipal) -> None:
    if not staff.is_admin:
        raise ProblemError(403, "administrators only")


def current_admin(staff: CurrentStaff) -> StaffPrincipal:
    require_admin(staff)
    return staff


CurrentAdmin = Annotated[StaffPrincipal, Depends(current_admin)]


def get_post(conn: Connection, staff: StaffPrincipal, code: str) -> Row[Any]:
    """The post with this code, if the caller may see it; else 404."""
    row = conn.execute(
        sa.select(post_table).where(
            post_table.c.code == code.strip().upper(), post_filter(staff, post_table.c.id)
        )
    ).first()
    if row is None:
        raise ProblemError(404, "no such post")
    return row


# --- pages ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageParams:
    limit: int
    offset: int

    def wrap(self, items: list[Any], total: int) -> Page[Any]:
        return Page[Any](items=items, total=total, limit=self.limit, offset=self.offset)


def page_params(
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description=f"At most {MAX_LIMIT} items.")
    ] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip.")] = 0,
) -> PageParams:
    return PageParams(limit, offset)


PageDep = Annotated[PageParams, Depends(page_params)]


class Page(BaseModel, Generic[T]):
    """One page of a list: `items`, the `total` that match, and the window asked for."""

    items: list[T]
    total: int
    limit: int
    offset: int


def paginate(
    conn: Connection, query: sa.Select[Any], page: PageParams
) -> tuple[list[Row[Any]], int]:
    """The rows of one page of an ordered query, and how many rows the query has in all."""
    total = conn.execute(
        sa.select(sa.func.count()).select_from(query.order_by(None).subquery())
    ).scalar_one()
    rows = list(conn.execute(query.limit(page.limit).offset(page.offset)))
    return rows, int(total)


def perform(
    db: Engine,
    staff: StaffPrincipal,
    now: datetime,
    action: Callable[[StaffWrite], T],
    *,
    unprocessable: Collection[str] = (),
) -> T:
    """Run one use case in a staff write and put what it raises in the API's words:
    NotVisible is a 404; Refused a 422 when its code is in `unprocessable`, else a 409."""
    try:
        with staff_write(db, staff, now) as tx:
            return action(tx)
    except NotVisible as missing:
        raise ProblemError(404, str(missing)) from None
    except Refused as refused:
        status = 422 if refused.code in unprocessable else 409
        raise ProblemError(status, refused.detail) from None
