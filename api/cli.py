"""`diaspora-bot`: the command line of operators and developers (Typer).

Errors an operator can fix (a bad setting, a database that is not migrated or not reachable)
print one line on standard error and exit 2; a refused staff command exits 1 with its reason.
Standard output carries results only: `staff token` prints the token and nothing else, logs go
to standard error.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, NoReturn

import typer
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from api import migrate
from api.channels_cli import register as register_channel_commands
from api.db import create_engine, write
from api.i18n_cli import i18n_app
from api.models import utcnow
from api.settings import Settings, SettingsError, load_settings
from bot import logs

app = typer.Typer(
    name="diaspora-bot",
    help="Diaspora Bot: the consular front door of Burkina Faso for citizens abroad.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
seed_app = typer.Typer(help="Load reference data.", no_args_is_help=True)
staff_app = typer.Typer(help="Staff accounts and API tokens.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(seed_app, name="seed")
app.add_typer(staff_app, name="staff")
app.add_typer(i18n_app, name="i18n")
register_channel_commands(app)  # `worker`, `telegram set-webhook`

logger = logging.getLogger("api.cli")


def fail(message: str, code: int) -> NoReturn:
    """One line on standard error, then exit with `code`."""
    typer.echo(f"diaspora-bot: {message}", err=True)
    raise typer.Exit(code)


_logging_configured = False


def configure_logging(level: str, kind: str = "text") -> None:
    """Once per process: plain lines or JSON objects (LOG_FORMAT) on standard error. Never
    log phones, names or bodies (bot.logs)."""
    global _logging_configured
    if _logging_configured:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logs.formatter(kind))
    logging.basicConfig(
        level=level.upper() if level.upper() in logging.getLevelNamesMapping() else "INFO",
        handlers=[handler],
    )
    # Their INFO lines carry URLs with tokens and phone numbers, or say the same thing every
    # few seconds; Alembic's "Context impl" comes on every connection (`db upgrade` lets it).
    for name in logs.QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    _logging_configured = True


def settings() -> Settings:
    try:
        loaded = load_settings()
    except SettingsError as exc:
        fail(str(exc), 2)
    configure_logging(loaded.log_level, loaded.log_format)
    return loaded


@contextmanager
def database(settings: Settings, *, migrated: bool = True) -> Iterator[Engine]:
    """An engine for the command; with `migrated`, refuse a schema that is not at head."""
    engine = create_engine(settings.sqlalchemy_url)
    try:
        if migrated:
            _require_schema(engine)
        yield engine
    except OperationalError as exc:
        fail(f"cannot use the database: {_first_line(exc.orig or exc)}", 2)
    finally:
        engine.dispose()


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _require_schema(engine: Engine) -> None:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(migrate.alembic_config())
    expected = set(scripts.get_heads())
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    if current == expected:
        return
    found = ", ".join(sorted(current)) or "no schema"
    known = {script.revision for script in scripts.walk_revisions()}
    if current - known:
        fail(f"the database schema ({found}) is newer than this code: deploy the new code", 2)
    fail(
        f"the database is not migrated ({found}; this code needs "
        f"{', '.join(sorted(expected))}): run `diaspora-bot db upgrade`",
        2,
    )


# --- db ---------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the migrations to DATABASE_URL."""
    current = settings()
    logging.getLogger("alembic").setLevel(logging.INFO)
    with database(current, migrated=False) as engine:
        migrate.upgrade(engine)


@db_app.command("revision")
def db_revision(
    message: Annotated[str, typer.Option("-m", "--message", help="What the migration does.")],
) -> None:
    """Developers: autogenerate a migration from the models (the database must be at head)."""
    with database(settings()) as engine:
        migrate.revision(engine, message)


# --- seed -------------------------------------------------------------------------------------


@seed_app.command("demo")
def seed_demo() -> None:
    """Load the demo consular network (posts, services, hours). Idempotent; no citizens."""
    from api.seed import POSTS, SERVICES
    from api.seed import seed_demo as load

    with database(settings()) as engine:
        load(engine)
    typer.echo(f"demo network ready: {len(POSTS)} posts, {len(SERVICES)} services")


# --- serve ------------------------------------------------------------------------------------


def settle_memory() -> None:
    """What start-up built (the app, the catalogs and lexicons, SQLAlchemy's machinery) lives
    as long as the process: frozen out of the garbage collector's sight, so that the
    collections a busy server runs every few hundred allocations stop walking it again and
    again (a tenth of a turn's time, measured with bench.turns)."""
    gc.collect()
    gc.freeze()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    no_worker: Annotated[
        bool,
        typer.Option(
            "--no-worker",
            help="Do not run the outbox sender and scheduler in this process "
            "(run `diaspora-bot worker` apart).",
        ),
    ] = False,
) -> None:
    """API, webhooks, staff console and simulator over HTTP."""
    import uvicorn

    from api.app import create_app
    from api.domain.staff import demo_admin

    current = settings()
    with database(current) as engine:
        web = create_app(current, engine, run_worker=not no_worker)
        settle_memory()
        logger.info("serving on http://%s:%d", host, port)
        login = None
        if current.is_local_demo:
            with write(engine) as conn:
                login = demo_admin(conn, utcnow())
        # Our logging setup, not uvicorn's; no access log: query strings may hold personal data.
        server = uvicorn.Server(
            uvicorn.Config(
                web,
                host=host,
                port=port,
                log_config=None,
                access_log=False,
                proxy_headers=True,
                server_header=False,
            )
        )
        threading.Thread(
            target=_announce,
            args=(server, current, f"http://{_shown(host)}:{port}", login),
            name="announce",
            daemon=True,
        ).start()
        server.run()


def _shown(host: str) -> str:
    """The address a browser on this machine would use for `host`."""
    if host in ("0.0.0.0", "::", ""):  # noqa: S104  (what was asked, not a choice)
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def start_up_lines(base: str, current: Settings, login: tuple[str, str] | None) -> list[str]:
    """What `serve` prints once it listens: where everything is, and the demo login."""
    lines = [""]
    if current.simulator_enabled:
        lines.append(f"  Simulator     {base}/simulator")
    lines.append(f"  Staff console {base}/console/")
    if current.api_docs != "off":
        lines.append(f"  API docs      {base}/docs")
    if login is not None:
        email, password = login
        lines += [
            "",
            "  Local demo: an administrator for the console (a new password at each start)",
            f"    e-mail    {email}",
            f"    password  {password}",
        ]
    return [*lines, ""]


def _announce(server: Any, current: Settings, base: str, login: tuple[str, str] | None) -> None:
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or server.should_exit:
            return
        time.sleep(0.1)
    if current.log_format == "json":  # machines read this output: one JSON log line
        addresses = [line.strip() for line in start_up_lines(base, current, None) if line.strip()]
        logger.info("listening: %s", "; ".join(addresses))
        return
    typer.echo("\n".join(start_up_lines(base, current, login)))


# --- staff ------------------------------------------------------------------------------------


@staff_app.command("add")
def staff_add(
    email: Annotated[str, typer.Argument(help="The staff member's e-mail, their login.")],
    role: Annotated[
        str,
        typer.Option(
            help="admin (every post), agent (their posts) or translator (their languages)."
        ),
    ],
    post: Annotated[
        list[str] | None,
        typer.Option("--post", help="Post code (ABJ, PAR…); repeat for several. Agents: one+."),
    ] = None,
    lang: Annotated[
        list[str] | None,
        typer.Option(
            "--lang", help="A language reviewed (mos, dyu, ff, en); repeat. Translators: one+."
        ),
    ] = None,
    password_prompt: Annotated[
        bool, typer.Option("--password-prompt", help="Ask for a console password.")
    ] = False,
) -> None:
    """Create a staff account."""
    current = settings()
    password = None
    if password_prompt:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    from api.domain.staff import add_staff

    with database(current) as engine:
        try:
            with write(engine) as conn:
                staff_id = add_staff(
                    conn, email, role, post or [], password, now=utcnow(), languages=lang or []
                )
        except ValueError as exc:
            fail(str(exc), 1)
    typer.echo(f"staff account {staff_id} created for {email.strip().lower()} ({role})")


@staff_app.command("token")
def staff_token(
    email: Annotated[str, typer.Argument(help="The staff member's e-mail.")],
    days: Annotated[
        int | None,
        typer.Option(
            "--days", min=1, max=3650, help="Valid this many days (default: until revoked)."
        ),
    ] = None,
) -> None:
    """Print a new API token for that account (shown once; only its hash is kept)."""
    from api.domain.staff import issue_token

    now = utcnow()
    expires_at = now + timedelta(days=days) if days is not None else None
    with database(settings()) as engine:
        try:
            with write(engine) as conn:
                token = issue_token(conn, email, now, expires_at=expires_at)
        except ValueError as exc:
            fail(str(exc), 1)
    typer.echo(token)


@staff_app.command("revoke")
def staff_revoke(
    email: Annotated[str, typer.Argument(help="The staff member's e-mail.")],
) -> None:
    """Revoke every API token of that account (a lost laptop); the account stays active."""
    from api.domain.staff import revoke_all_tokens

    with database(settings()) as engine, write(engine) as conn:
        revoked = revoke_all_tokens(conn, email, utcnow())
    typer.echo(f"{revoked} token(s) revoked for {email.strip().lower()}")


@staff_app.command("disable")
def staff_disable(
    email: Annotated[str, typer.Argument(help="The staff member's e-mail.")],
) -> None:
    """Deactivate that account: its tokens and console sessions stop at once."""
    from api.domain.staff import disable_staff

    with database(settings()) as engine, write(engine) as conn:
        found = disable_staff(conn, email, utcnow())
    if not found:
        fail(f"no staff account for {email.strip().lower()}", 1)
    typer.echo(f"staff account {email.strip().lower()} disabled")


# --- chat -------------------------------------------------------------------------------------


@app.command()
def chat(
    phone: Annotated[
        str | None, typer.Option(help="The sender's number, e.g. +2250701000001.")
    ] = None,
    lang: Annotated[
        str | None, typer.Option(help="Start in this language (fr, mos, dyu, ff, en).")
    ] = None,
    now: Annotated[
        datetime | None,
        typer.Option(
            help="Freeze the clock (UTC), e.g. 2026-12-01T08:00:00.", formats=["%Y-%m-%dT%H:%M:%S"]
        ),
    ] = None,
) -> None:
    """Talk to the flows in the terminal, as a simulator user (Ctrl-D to leave)."""
    from api.domain.citizens import normalise_phone
    from api.messaging import build_messaging
    from bot.channels import simulator

    e164 = normalise_phone(phone) if phone else None
    if phone and e164 is None:
        fail(f"not an international phone number: {phone}", 1)
    with database(settings()) as engine:
        runtime = build_messaging(engine).runtime
        user = f"terminal:{e164 or 'local'}"
        clock = now.replace(tzinfo=UTC) if now else None
        while True:
            try:
                text = input("> ")
            except (EOFError, KeyboardInterrupt):
                typer.echo("")
                return
            message = simulator.inbound(user, text, clock or datetime.now(UTC), e164, lang=lang)
            for reply in runtime.handle(message):
                typer.echo(reply.with_numbers())
                typer.echo("")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
