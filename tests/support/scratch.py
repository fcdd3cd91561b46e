"""The helpers of the tests of where the turns' database work runs (tests/test_group_commit.py
on SQLite, tests/test_turn_batches.py on PostgreSQL), on the `scratch` table of the fixture of
that name (tests/conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from api import db


def names(engine: Engine) -> set[str]:
    with db.read(engine) as conn:
        return {row[0] for row in conn.exec_driver_sql("SELECT name FROM scratch")}


def insert(engine: Engine, name: str, *, fail: bool = False) -> str:
    with db.write(engine) as conn:
        conn.execute(sa.text("INSERT INTO scratch (name) VALUES (:n)"), {"n": name})
        if fail:
            raise ValueError(name)
    return name


async def together(*calls: Callable[[], Any]) -> list[Any]:
    """Start the calls as tasks in one pass of the loop, as concurrent requests are."""
    return await asyncio.gather(*(asyncio.create_task(c()) for c in calls), return_exceptions=True)
