"""The real `diaspora-bot` command, run as a subprocess against a temporary SQLite file."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

TABLES = ("post", "service", "post_service", "opening_hours", "closure", "citizen")


def _command() -> list[str]:
    script = Path(sys.executable).with_name("diaspora-bot")
    if script.exists():
        return [str(script)]
    found = shutil.which("diaspora-bot")
    return [found] if found else [sys.executable, "-m", "api.cli"]


def run(
    tmp_path: Path, *args: str, database_url: str | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "LOG_"))}
    env["DATABASE_URL"] = database_url or f"sqlite:///{tmp_path / 'var' / 'app.db'}"
    return subprocess.run(
        [*_command(), *args],
        cwd=tmp_path,  # no stray .env from the developer's checkout
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def counts(tmp_path: Path) -> dict[str, int]:
    with sqlite3.connect(tmp_path / "var" / "app.db") as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def test_upgrade_seed_twice_and_staff_token(tmp_path: Path) -> None:
    upgraded = run(tmp_path, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr

    first = run(tmp_path, "seed", "demo")
    assert first.returncode == 0, first.stderr
    after_first = counts(tmp_path)
    second = run(tmp_path, "seed", "demo")
    assert second.returncode == 0, second.stderr
    assert counts(tmp_path) == after_first
    assert after_first["post"] == 7
    assert after_first["service"] == 7
    assert after_first["citizen"] == 0

    added = run(tmp_path, "staff", "add", "Agent@Example.org", "--role", "agent", "--post", "ABJ")
    assert added.returncode == 0, added.stderr

    token = run(tmp_path, "staff", "token", "agent@example.org")
    assert token.returncode == 0, token.stderr
    lines = token.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("dbt_")
    assert len(lines[0]) > 40
    with sqlite3.connect(tmp_path / "var" / "app.db") as conn:
        stored = [row[0] for row in conn.execute("SELECT token_hash FROM api_token")]
    assert lines[0] not in stored

    duplicate = run(tmp_path, "staff", "add", "agent@example.org", "--role", "admin")
    assert duplicate.returncode == 1
    assert duplicate.stderr.strip().count("\n") == 0
    assert "already exists" in duplicate.stderr
    assert "Traceback" not in duplicate.stderr

    unknown = run(tmp_path, "staff", "token", "nobody@example.org")
    assert unknown.returncode == 1
    assert unknown.stdout == ""


def _token_works(tmp_path: Path, token: str, later: timedelta = timedelta(0)) -> bool:
    from api.db import create_engine
    from api.domain.staff import staff_for_token
    from api.models import utcnow
    from api.settings import Settings

    engine = create_engine(
        Settings(database_url=f"sqlite:///{tmp_path / 'var' / 'app.db'}").sqlalchemy_url
    )
    try:
        with engine.connect() as conn:
            return staff_for_token(conn, token, utcnow() + later) is not None
    finally:
        engine.dispose()


def test_staff_revoke_and_disable_stop_tokens_at_once(tmp_path: Path) -> None:
    assert run(tmp_path, "db", "upgrade").returncode == 0
    assert run(tmp_path, "staff", "add", "awa@example.org", "--role", "admin").returncode == 0
    first = run(tmp_path, "staff", "token", "awa@example.org").stdout.strip()
    second = run(tmp_path, "staff", "token", "awa@example.org").stdout.strip()
    assert _token_works(tmp_path, first)
    assert _token_works(tmp_path, second)

    revoked = run(tmp_path, "staff", "revoke", "Awa@Example.org")
    assert revoked.returncode == 0, revoked.stderr
    assert "2 token(s) revoked" in revoked.stdout
    assert not _token_works(tmp_path, first)
    assert not _token_works(tmp_path, second)

    third = run(tmp_path, "staff", "token", "awa@example.org").stdout.strip()
    assert _token_works(tmp_path, third)  # the account itself is still active
    disabled = run(tmp_path, "staff", "disable", "awa@example.org")
    assert disabled.returncode == 0, disabled.stderr
    assert not _token_works(tmp_path, third)
    assert run(tmp_path, "staff", "token", "awa@example.org").returncode == 1

    unknown = run(tmp_path, "staff", "disable", "nobody@example.org")
    assert unknown.returncode == 1
    assert "Traceback" not in unknown.stderr


def test_a_token_can_carry_an_expiry(tmp_path: Path) -> None:
    assert run(tmp_path, "db", "upgrade").returncode == 0
    assert run(tmp_path, "staff", "add", "awa@example.org", "--role", "admin").returncode == 0
    token = run(tmp_path, "staff", "token", "awa@example.org", "--days", "30").stdout.strip()
    assert _token_works(tmp_path, token)
    assert _token_works(tmp_path, token, later=timedelta(days=29))
    assert not _token_works(tmp_path, token, later=timedelta(days=31))  # a month on: nothing
    assert run(tmp_path, "staff", "token", "awa@example.org", "--days", "0").returncode == 2


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("mysql://root@localhost/app", "DATABASE_URL"),
        ("not a url at all", "DATABASE_URL"),
    ],
)
def test_bad_database_url_is_one_line(tmp_path: Path, url: str, needle: str) -> None:
    result = run(tmp_path, "seed", "demo", database_url=url)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert needle in result.stderr
    assert result.stdout == ""


def test_unmigrated_database_is_one_line(tmp_path: Path) -> None:
    result = run(tmp_path, "seed", "demo")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "db upgrade" in result.stderr


def test_serve_passes_no_worker_to_the_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn
    from typer.testing import CliRunner

    from api import migrate
    from api.cli import app
    from api.db import create_engine
    from api.settings import Settings

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'app.db'}")
    engine = create_engine(settings.sqlalchemy_url)
    migrate.upgrade(engine)
    engine.dispose()

    served: dict[str, object] = {}

    def fake_run(server: uvicorn.Server) -> None:
        served.update(app=server.config.app, port=server.config.port, host=server.config.host)
        server.should_exit = True  # the start-up announcement gives up

    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    result = CliRunner().invoke(app, ["serve", "--no-worker", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert served["port"] == 8123
    assert served["host"] == "127.0.0.1"
    assert served["app"].state.run_worker is False  # type: ignore[attr-defined]


def test_start_up_names_the_addresses_and_the_demo_login_only_on_the_demo(
    tmp_path: Path,
) -> None:
    from api import db, migrate
    from api.cli import start_up_lines
    from api.db import create_engine
    from api.domain.staff import DEMO_ADMIN, demo_admin, verify_password
    from api.models import utcnow
    from api.settings import Settings

    production = Settings(
        database_url="postgresql://u:p@db:5432/app", public_base_url="https://consulat.bf"
    )
    lines = "\n".join(start_up_lines("http://127.0.0.1:8000", production, None))
    assert "http://127.0.0.1:8000/console/" in lines
    assert "simulator" not in lines
    assert "password" not in lines

    engine = create_engine(Settings(database_url=f"sqlite:///{tmp_path / 'app.db'}").sqlalchemy_url)
    migrate.upgrade(engine)
    with db.write(engine) as conn:
        email, first = demo_admin(conn, utcnow())
        _, second = demo_admin(conn, utcnow())  # a new start: a new password
    with db.write(engine) as conn:
        assert email == DEMO_ADMIN
        assert verify_password(conn, email, first) is None
        found = verify_password(conn, email, second)
        assert found is not None
        assert found.is_admin
    demo = Settings(database_url="sqlite:///var/app.db", public_base_url="http://127.0.0.1:8000")
    shown = "\n".join(start_up_lines("http://127.0.0.1:8000", demo, (email, second)))
    assert "/simulator" in shown
    assert "/docs" in shown
    assert second in shown
    engine.dispose()
