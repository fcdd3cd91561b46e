"""Alembic environment. The engine comes from the caller (api.migrate) or from DATABASE_URL."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from api import models  # noqa: F401  (registers the tables)
from api.db import create_engine
from api.settings import get_settings

target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(get_settings().sqlalchemy_url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things: batch mode copies the table
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
