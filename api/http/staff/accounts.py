"""Staff accounts, for administrators: who has access, and ending it at once (a lost laptop,
an agent leaving). Creating accounts and issuing tokens stay on the command line, where the
token is printed once to whoever runs it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy.engine import Connection

from api.db import read
from api.domain import account_desk
from api.domain.errors import NotVisible, Refused
from api.domain.staff import AccountRecord, list_accounts, revoke_tokens_of
from api.http.staff.deps import CurrentAdmin, DbDep, NowDep, staff_write
from api.http.staff.errors import ProblemError, ProblemRoute, responses
from api.http.staff.fields import IdPath
from api.models import StaffRole

router = APIRouter(tags=["staff"], route_class=ProblemRoute, responses=responses(401, 403, 422))


class AccountPublic(BaseModel):
    id: int
    email: str
    role: StaffRole
    active: bool
    posts: list[str]
    live_tokens: int = Field(description="API tokens neither revoked nor expired")
    live_logins: int = Field(description="Console sessions neither ended nor expired")


class Revoked(BaseModel):
    revoked: int = Field(description="How many tokens were revoked")


def _public(record: AccountRecord) -> AccountPublic:
    return AccountPublic(
        id=record.id,
        email=record.email,
        role=record.role,
        active=record.active,
        posts=list(record.post_codes),
        live_tokens=record.live_tokens,
        live_logins=record.live_logins,
    )


def _snapshot(record: AccountRecord) -> dict[str, Any]:
    return {"active": record.active, "tokens": record.live_tokens, "logins": record.live_logins}


def _one(conn: Connection, staff_id: int, now: datetime) -> AccountRecord:
    found = list_accounts(conn, now, staff_id)
    if not found:
        raise ProblemError(404, "no such staff account")
    return found[0]


@router.get("/staff", summary="Every staff account, with its live tokens and console logins")
def list_all(staff: CurrentAdmin, db: DbDep, now: NowDep) -> list[AccountPublic]:
    with read(db) as conn:
        return [_public(r) for r in list_accounts(conn, now)]


@router.post(
    "/staff/{staff_id}/disable",
    summary="Deactivate an account: its tokens and console sessions stop at once",
    responses=responses(404, 409),
)
def disable(staff_id: IdPath, staff: CurrentAdmin, db: DbDep, now: NowDep) -> AccountPublic:
    try:
        with staff_write(db, staff, now) as tx:
            after = account_desk.deactivate(tx, staff_id)
    except NotVisible:
        raise ProblemError(404, "no such staff account") from None
    except Refused:
        raise ProblemError(409, "an administrator cannot disable their own account") from None
    return _public(after)


@router.post(
    "/staff/{staff_id}/revoke-tokens",
    summary="Revoke every API token of an account; the account and its console stay",
    responses=responses(404),
)
def revoke_tokens(staff_id: IdPath, staff: CurrentAdmin, db: DbDep, now: NowDep) -> Revoked:
    with staff_write(db, staff, now) as tx:
        before = _one(tx.conn, staff_id, now)
        revoked = revoke_tokens_of(tx.conn, staff_id, now)
        tx.audit("revoke_tokens", "staff", staff_id, _snapshot(before), {"revoked": revoked})
    return Revoked(revoked=revoked)
