"""Fixtures: a real SQLite file and a real PostgreSQL database, migrated once per run.

Database tests take the `engine` fixture and run twice, once per store. Each test starts from
empty tables (or from the demo network with `demo_engine`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import SQLModel

from api import migrate
from api.db import create_engine, write

# The suite (and the shared scripts' runner) drives the simulator's clock; production does not.
os.environ.setdefault("SIMULATOR_CLOCK", "true")

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
STORES = ["sqlite", "postgres"]


def _pg_url(database: str) -> sa.URL:
    return make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+psycopg", database=database)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[sa.URL]:
    """A fresh PostgreSQL database for this run, dropped at the end."""
    name = f"diaspora_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(
        _pg_url(make_url(POSTGRES_ADMIN_URL).database or "postgres"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield _pg_url(name)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> sa.URL:
    path: Path = tmp_path_factory.mktemp("sqlite") / "test.db"
    return make_url(f"sqlite:///{path}")


@pytest.fixture(scope="session")
def _migrated() -> Iterator[dict[str, Engine]]:
    engines: dict[str, Engine] = {}
    yield engines
    for db in engines.values():
        db.dispose()


def _engine_for(store: str, request: pytest.FixtureRequest, cache: dict[str, Engine]) -> Engine:
    if store not in cache:
        url = (
            request.getfixturevalue("sqlite_url")
            if store == "sqlite"
            else request.getfixturevalue("postgres_database")
        )
        engine = create_engine(url)
        migrate.upgrade(engine)
        cache[store] = engine
    return cache[store]


def empty_tables(engine: Engine) -> None:
    from api.domain import outbox

    outbox.use_renderer(engine, None)  # an earlier test's app renders no notice of this one
    tables = list(reversed(SQLModel.metadata.sorted_tables))
    extra = sa.inspect(engine).get_table_names()
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            names = ", ".join(f'"{n}"' for n in extra if n != "alembic_version")
            conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        else:
            known = {t.name for t in tables}
            for table in tables:
                conn.execute(table.delete())
            for name in extra:
                if name not in known and name != "alembic_version":
                    conn.exec_driver_sql(f'DELETE FROM "{name}"')


@pytest.fixture(params=STORES)
def engine(request: pytest.FixtureRequest, _migrated: dict[str, Engine]) -> Engine:
    """A migrated, empty database: an SQLite file, then PostgreSQL."""
    store = request.param
    if store == "postgres":
        request.applymarker(pytest.mark.postgres)
    db = _engine_for(store, request, _migrated)
    empty_tables(db)
    return db


@pytest.fixture
def sqlite_engine(request: pytest.FixtureRequest, _migrated: dict[str, Engine]) -> Engine:
    """The SQLite database alone, for tests that are about something else than the store."""
    db = _engine_for("sqlite", request, _migrated)
    empty_tables(db)
    return db


@pytest.fixture
def postgres_engine(request: pytest.FixtureRequest, _migrated: dict[str, Engine]) -> Engine:
    """The PostgreSQL database alone, for what only PostgreSQL does (api.turn_batches)."""
    request.applymarker(pytest.mark.postgres)
    db = _engine_for("postgres", request, _migrated)
    empty_tables(db)
    return db


@pytest.fixture
def commits(scratch_store: Engine) -> Iterator[list[int]]:
    """The commits made on the module's `scratch_store` (its engine fixture), as they happen."""
    seen: list[int] = []

    def count(_conn: Any) -> None:
        seen.append(1)

    event.listen(scratch_store, "commit", count)
    yield seen
    event.remove(scratch_store, "commit", count)


@pytest.fixture
def scratch(scratch_store: Engine) -> Iterator[Engine]:
    """An empty table `scratch (name TEXT PRIMARY KEY)` on the module's `scratch_store`,
    dropped afterwards (helpers: tests/support/scratch.py)."""
    with write(scratch_store) as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS scratch (name TEXT PRIMARY KEY)")
        conn.exec_driver_sql("DELETE FROM scratch")
    yield scratch_store
    with write(scratch_store) as conn:
        conn.exec_driver_sql("DROP TABLE scratch")


@pytest.fixture
def demo_engine(engine: Engine) -> Engine:
    """The demo consular network on both stores."""
    from api.seed import seed_demo

    seed_demo(engine)
    return engine


@pytest.fixture
def demo_sqlite(sqlite_engine: Engine) -> Engine:
    from api.seed import seed_demo

    seed_demo(sqlite_engine)
    return sqlite_engine


@pytest.fixture
def app_factory(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Build the whole app on a database, with fake Telegram and Twilio servers behind it.

    `with app_factory(engine, now="2026-12-01T08:00:00Z") as (client, fakes): …` — the app
    runs its lifespan (worker included) and its clock is frozen at `now` when given.
    """
    from datetime import datetime

    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.settings import Settings
    from tests.fakes import FakeTelegramAPI, FakeTwilioAPI
    from tests.support.channels import PUBLIC_BASE_URL, TELEGRAM_SECRET, Fakes

    monkeypatch.setenv("PTB_TIMEDELTA", "true")

    @contextmanager
    def factory(engine: Engine, now: str | None = None) -> Iterator[tuple[TestClient, Fakes]]:
        with FakeTelegramAPI(token="123456:TEST") as telegram, FakeTwilioAPI() as twilio:
            settings = Settings(
                database_url=engine.url.render_as_string(hide_password=False),
                public_base_url=PUBLIC_BASE_URL,
                telegram_bot_token=telegram.token,
                telegram_webhook_secret=TELEGRAM_SECRET,
                telegram_api_base_url=telegram.url,
                twilio_account_sid=twilio.account_sid,
                twilio_auth_token=twilio.auth_token,
                twilio_whatsapp_from="whatsapp:+14155238886",
                twilio_api_base_url=twilio.base_url,
                simulator_enabled=True,
            )
            app = create_app(settings, engine=engine)
            if now is not None:
                frozen = datetime.fromisoformat(now.replace("Z", "+00:00"))
                app.state.clock = lambda: frozen
            with TestClient(app) as client:
                yield client, Fakes(telegram=telegram, twilio=twilio)

    return factory


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The accuracy of understanding per language (tests/test_first_messages.py)."""
    lines = [
        str(value)
        for key in ("passed", "failed")
        for report in terminalreporter.stats.get(key, [])
        for name, value in getattr(report, "user_properties", ())
        if name == "understanding_accuracy" and getattr(report, "when", "") == "call"
    ]
    if lines:
        terminalreporter.write_sep("-", "understanding accuracy")
        for line in sorted(lines):
            terminalreporter.write_line(line)
