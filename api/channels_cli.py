"""Commands of the channels and the worker: `diaspora-bot worker`, `diaspora-bot telegram …`.

Registered on the main command line by `register(app)` (api.cli).
"""

from __future__ import annotations

import asyncio

import typer

telegram_app = typer.Typer(help="The Telegram bot: webhook registration.", no_args_is_help=True)


def worker() -> None:
    """Outbox sender and scheduler only (and Telegram polling with TELEGRAM_MODE=polling)."""
    from api.cli import database, settings
    from api.worker import run_forever, run_loop

    current = settings()
    with database(current) as engine:
        run_loop(run_forever(current, engine))


@telegram_app.command("set-webhook")
def set_webhook() -> None:
    """Register PUBLIC_BASE_URL/webhooks/telegram with Telegram, with TELEGRAM_WEBHOOK_SECRET
    and the update kinds the bot handles."""
    from api.channels import WEBHOOK_TELEGRAM, webhook_url
    from api.cli import fail, settings
    from bot.channels import telegram as channel

    current = settings()
    if not current.telegram_bot_token:
        fail("TELEGRAM_BOT_TOKEN is not set", 2)
    if not current.telegram_webhook_secret:
        fail("TELEGRAM_WEBHOOK_SECRET is not set: the webhook would refuse every update", 2)
    if not current.public_base_url.startswith("https://"):
        fail("PUBLIC_BASE_URL must be https:// for Telegram to call it", 2)
    url = webhook_url(current, WEBHOOK_TELEGRAM)

    async def register() -> bool:
        async with channel.make_bot(
            current.telegram_bot_token or "", current.telegram_api_base_url
        ) as bot:
            return await channel.set_webhook(bot, url, current.telegram_webhook_secret)

    try:
        done = asyncio.run(register())
    except Exception as exc:  # the SDK's errors: one line for the operator
        fail(f"Telegram refused: {type(exc).__name__}: {exc}", 1)
    if not done:
        fail("Telegram refused the webhook", 1)
    typer.echo(f"webhook set: {url}")


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
    app.add_typer(telegram_app, name="telegram")
