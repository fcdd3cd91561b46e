"""A scratch table and the helpers of the tests of where the turns' database work runs
(tests/test_group_commit.py on SQLite, tests/test_turn_batches.py on PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from api import db


@contextmanager
def counted_commits(engine: Engine) -> Iterator[list[int]]:
    """The commits made on the engine, as they happen."""
    seen: list[int] = []

    def count(_conn: Connection) -> None:
        seen.append(1)

    event.listen(engine, "commit", count)
    yield seen
    event.remove(engine, "commit", count)


@contextmanager
def scratch_table(engine: Engine) -> Iterator[Engine]:
    """An empty table `scratch (name TEXT PRIMARY KEY)`, dropped afterwards."""
    with db.write(engine) as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS scratch (name TEXT PRIMARY KEY)")
        conn.exec_driver_sql("DELETE FROM scratch")
    yield engine
    with db.write(engine) as conn:
        conn.exec_driver_sql("DROP TABLE scratch")


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
