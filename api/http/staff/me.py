"""Who am I: the account behind the bearer token, its role and its posts."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter
from pydantic import BaseModel

from api.db import read
from api.http.staff.deps import CurrentStaff, DbDep, post_filter, post_table
from api.http.staff.errors import ProblemRoute, responses
from api.models import StaffRole

router = APIRouter(tags=["staff"], route_class=ProblemRoute, responses=responses(401))


class StaffPublic(BaseModel):
    id: int
    email: str
    role: StaffRole
    posts: list[str]


@router.get("/me", summary="The account behind the token")
def me(staff: CurrentStaff, db: DbDep) -> StaffPublic:
    with read(db) as conn:
        codes = conn.execute(
            sa.select(post_table.c.code)
            .where(post_filter(staff, post_table.c.id))
            .order_by(post_table.c.code)
        ).scalars()
        return StaffPublic(id=staff.id, email=staff.email, role=staff.role, posts=list(codes))
