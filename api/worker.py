"""The worker: the outbox sender, the scheduler's clock and, with TELEGRAM_MODE=polling, the
Telegram poller. `diaspora-bot worker` runs it alone; `serve` runs it inside the web process
(FastAPI lifespan, `router` below) unless `--no-worker`.

Scheduled jobs (APScheduler `AsyncIOScheduler`, explicit ids, `replace_existing=True`): each
is idempotent and the database decides who does the work, so a job that runs twice, or on two
clocks at once, does no harm, and a restart loses nothing (the jobs are re-registered under
the same ids and the next run catches up with whatever is due):
- `reminders.send`, every minute — appointment reminders (api.domain.reminders);
- `broadcasts.due`, every few seconds — announcements whose time has come
  (api.domain.broadcast_delivery);
- `waitlist.offers`, every minute — expire waitlist offers past their time and hold every
  free seat for the first citizen waiting (api.domain.waitlist: closures lifted, capacity or
  hours raised; cancellations offer their seat at once);
- `draws.close`, every minute — draw each draw whose registration has closed, from a seed it
  records, and settle those whose seats are all given (api.domain.draws);
- `inbound.purge`, hourly — provider message ids older than 48 hours (the dedupe set);
- `privacy.retention`, hourly — conversation texts older than RETENTION_DAYS
  (api.domain.retention).

Telegram polling is for a developer with a real token and no public URL: run one poller per
bot (one `serve`, or one `worker`), never more — Telegram hands each update to one caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from sqlalchemy.engine import Engine

from api import db
from api.channels import ChannelHandlers, build_limiter, connect_telegram, rates, whatsapp_sender
from api.domain import draws, retention, waitlist
from api.domain.appointment_proof import proof_key
from api.domain.outbox import enqueue_replies
from api.domain.outbox_store import SqlOutboxStore
from api.domain.reminders import send_reminders
from api.messaging import Messaging, build_messaging
from api.models import InboundMessage, utcnow
from api.settings import Settings
from bot.channels import telegram as telegram_channel
from bot.fallback_limiter import FallbackRateLimiter
from bot.outbox import OutboxItem, Sender, SendResult, reason
from bot.outbox_sender import OutboxSender
from bot.rate_limits import RateLimiter

log = logging.getLogger(__name__)

KEEP_INBOUND_IDS = timedelta(hours=48)
TELEGRAM_RETRY_SECONDS = 30.0
T = TypeVar("T")


def purge_inbound_ids(engine: Engine, now: datetime) -> int:
    """Forget provider message ids older than 48 hours: providers retry within minutes."""
    table = cast(sa.Table, sa.inspect(InboundMessage).local_table)
    with db.write(engine) as conn:
        result = conn.execute(sa.delete(table).where(table.c.received_at < now - KEEP_INBOUND_IDS))
    return int(result.rowcount or 0)


def worker_id() -> str:
    return f"{socket.gethostname()[:32]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class WorkerMetrics:
    """The worker's instruments: sends by channel, outcome and reason; the scheduler's lag
    and failed runs; whether the rate limits run on their per-process shares (Redis away).
    In the registry of `serve`'s /metrics when the worker runs there, else in its own
    (METRICS_PORT)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.sends = Counter(
            "diaspora_outbox_sends",
            "Outbox messages handed to a provider or settled, by channel, outcome (sent, "
            "retry, throttled, unreachable, failed, skipped) and reason.",
            ["channel", "outcome", "reason"],
            registry=registry,
        )
        self.scheduler_lag = Gauge(
            "diaspora_scheduler_lag_seconds",
            "How late the last run of each scheduled job started.",
            ["job"],
            registry=registry,
        )
        self.job_failures = Counter(
            "diaspora_scheduler_job_failures",
            "Runs of a scheduled job that raised.",
            ["job"],
            registry=registry,
        )
        self.limits_degraded = Gauge(
            "diaspora_rate_limits_local",
            "1 while this process sends on its share of the limits (Redis does not answer).",
            registry=registry,
        )

    def outcome(self, item: OutboxItem, result: SendResult) -> None:
        self.sends.labels(item.channel, result.outcome.value, reason(result)).inc()

    def job_event(self, event: JobExecutionEvent) -> None:
        lag = (datetime.now(UTC) - event.scheduled_run_time).total_seconds()
        self.scheduler_lag.labels(event.job_id).set(max(0.0, lag))
        if event.exception is not None:
            self.job_failures.labels(event.job_id).inc()


class Worker:
    """Everything that runs in the background of one process. `await start()`, `await stop()`."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        messaging: Messaging | None = None,
        senders: Sequence[Sender] | None = None,
        limiter: RateLimiter | None = None,
        scheduler: bool = True,
        poll_interval: float = 0.5,
        lease: timedelta | None = None,
        clock: Callable[[], datetime] = utcnow,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.metrics = metrics or WorkerMetrics(CollectorRegistry(auto_describe=True))
        self.messaging = messaging or build_messaging(
            engine,
            enqueue=enqueue_replies,
            public_base_url=settings.public_base_url,
            proof_key=proof_key(settings.proof_secret, settings.console_secret),
        )
        self.handlers = ChannelHandlers(settings, engine, self.messaging, clock)
        self._given_senders = senders
        self._limiter = limiter
        self.with_scheduler = scheduler
        self.poll_interval = poll_interval
        self.lease = lease or timedelta(seconds=settings.outbox_lease_seconds)
        self.id = settings.worker_id or worker_id()
        self.outbox: OutboxSender | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self.telegram: telegram_channel.TelegramSender | None = None
        self._stop = asyncio.Event()
        self._sending: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[Any]] = []

    # -- life -----------------------------------------------------------------------------------

    async def start(self) -> None:
        senders = list(self._given_senders) if self._given_senders is not None else []
        telegram_wanted = False
        if self._given_senders is None:
            telegram_wanted = bool(self.settings.telegram_bot_token)
            whatsapp = whatsapp_sender(self.settings)
            if whatsapp is not None:
                senders.append(whatsapp)
        for sender in senders:
            if isinstance(sender, telegram_channel.TelegramSender):
                self.telegram = sender
        if senders or telegram_wanted:
            limiter = self._limiter or build_limiter(self.settings)
            if isinstance(limiter, FallbackRateLimiter):
                degraded = limiter
                self.metrics.limits_degraded.set_function(lambda: float(degraded.degraded))
            self.outbox = OutboxSender(
                SqlOutboxStore(self.engine),
                senders,
                limiter,
                worker_id=self.id,
                stable_id=self.settings.worker_id is not None,
                rates=rates(self.settings),
                poll_interval=self.poll_interval,
                lease=self.lease,
                on_outcome=self.metrics.outcome,
            )
            self._sending = asyncio.create_task(self.outbox.run())
        if telegram_wanted:
            self._tasks.append(asyncio.create_task(self._connect_telegram()))
        elif self.telegram is not None and self.settings.telegram_mode == "polling":
            self._start_polling(self.telegram)
        if self.with_scheduler:
            self.scheduler = self._schedule()
            self.scheduler.start()
        log.info(
            "worker %s started: channels %s, scheduler %s",
            self.id,
            sorted(self.outbox.channels) if self.outbox else [],
            "on" if self.scheduler else "off",
        )

    async def stop(self, grace: float = 10.0) -> None:
        """Stop the clock and the poller; let the messages in flight finish (within `grace`
        seconds; after that their claims simply expire and another worker sends them)."""
        self._stop.set()
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        if self._tasks:  # a poll under way may end by itself in a moment
            await asyncio.wait(self._tasks, timeout=1.0)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.outbox is not None and self._sending is not None:
            self.outbox.stop()
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._sending, timeout=grace)
            await self.outbox.close()
        elif self.telegram is not None:
            await self.telegram.close()
        self._sending = None

    def nudge(self, channel: str | None = None) -> None:
        """Messages were just queued: send now rather than at the next poll."""
        if self.outbox is not None:
            self.outbox.nudge(channel)

    # -- Telegram -------------------------------------------------------------------------------

    async def _connect_telegram(self) -> None:
        """Connect (getMe) and start serving Telegram; while Telegram does not answer, retry:
        a Telegram outage at start-up must not keep the rest from working."""
        while not self._stop.is_set():
            try:
                sender = await connect_telegram(self.settings, self.engine)
            except Exception as exc:
                log.error("telegram: cannot connect (%s); retrying", type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=TELEGRAM_RETRY_SECONDS)
                continue
            if sender is None:
                return
            self.telegram = sender
            if self.outbox is not None:
                self.outbox.add_sender(sender)
            if self.settings.telegram_mode == "polling":
                self._start_polling(sender)
            return

    def _start_polling(self, sender: telegram_channel.TelegramSender) -> None:
        log.info("telegram: polling for updates (TELEGRAM_MODE=polling)")
        self._tasks.append(
            asyncio.create_task(
                telegram_channel.poll_updates(sender.bot, self._on_update, self._stop)
            )
        )

    async def _on_update(self, data: dict[str, Any]) -> None:
        answer = await self.handlers.telegram(data)
        if answer.apology is not None and answer.chat_id is not None and self.telegram:
            await self.telegram.send_text(answer.chat_id, answer.apology)
        if answer.queued:
            self.nudge(telegram_channel.CHANNEL)

    # -- scheduled jobs -------------------------------------------------------------------------

    def _schedule(self) -> AsyncIOScheduler:
        from api.domain import broadcast_delivery

        scheduler = AsyncIOScheduler(timezone="UTC")
        scheduler.add_listener(self.metrics.job_event, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
        options: dict[str, Any] = {
            "replace_existing": True,
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": 30,
        }
        scheduler.add_job(
            self.reminders_job, IntervalTrigger(minutes=1), id="reminders.send", **options
        )
        scheduler.add_job(
            self.broadcasts_job,
            IntervalTrigger(seconds=broadcast_delivery.JOB_INTERVAL_SECONDS),
            id=broadcast_delivery.JOB_ID,
            **options,
        )
        scheduler.add_job(
            self.waitlist_job, IntervalTrigger(minutes=1), id=waitlist.JOB_ID, **options
        )
        scheduler.add_job(self.draws_job, IntervalTrigger(minutes=1), id=draws.JOB_ID, **options)
        scheduler.add_job(self.purge_job, IntervalTrigger(hours=1), id="inbound.purge", **options)
        scheduler.add_job(
            self.retention_job, IntervalTrigger(hours=1), id=retention.JOB_ID, **options
        )
        return scheduler

    async def waitlist_job(self) -> int:
        made = await asyncio.to_thread(waitlist.run, self.engine, utcnow())
        if made:
            self.nudge()
        return made

    async def draws_job(self) -> int:
        changed = await asyncio.to_thread(draws.run, self.engine, utcnow())
        if changed:
            self.nudge()
        return changed

    async def reminders_job(self) -> int:
        queued = await asyncio.to_thread(
            send_reminders, self.engine, utcnow(), renderer=self.messaging.renderer
        )
        if queued:
            self.nudge()
        return queued

    async def broadcasts_job(self) -> None:
        from api.domain import broadcast_delivery

        if await asyncio.to_thread(broadcast_delivery.due_broadcasts_job, self.engine):
            self.nudge()

    async def purge_job(self) -> int:
        return await asyncio.to_thread(purge_inbound_ids, self.engine, utcnow())

    async def retention_job(self) -> retention.Purged:
        purged = await asyncio.to_thread(
            retention.purge_expired, self.engine, utcnow(), self.settings.retention_days
        )
        if purged.messages or purged.conversations:
            log.info(
                "retention: %d messages and %d conversations older than %d days deleted",
                purged.messages,
                purged.conversations,
                self.settings.retention_days,
            )
        return purged


# -- in the web process -------------------------------------------------------------------------


@asynccontextmanager
async def _in_process(app: FastAPI) -> AsyncIterator[None]:
    """`serve` without `--no-worker`: the worker lives as long as the app."""
    if not getattr(app.state, "run_worker", False):
        yield
        return
    metrics = getattr(app.state, "worker_metrics", None)
    if metrics is None:  # once per app: a second lifespan must not register them again
        metrics = app.state.worker_metrics = WorkerMetrics(app.state.metrics.registry)
    worker = Worker(
        app.state.settings, app.state.engine, messaging=app.state.messaging, metrics=metrics
    )
    await worker.start()
    app.state.worker = worker
    try:
        yield
    finally:
        app.state.worker = None
        await worker.stop()


router = APIRouter(lifespan=_in_process)


# -- alone --------------------------------------------------------------------------------------


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on the event loop `serve` runs on: uvloop when installed (uvicorn picks it
    for `serve`, `diaspora-bot worker` does the same), else asyncio's own. With uvloop the
    outbox sends half as many messages again per second of CPU."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


async def run_forever(settings: Settings, engine: Engine) -> None:
    """`diaspora-bot worker`: until SIGINT or SIGTERM."""
    worker = Worker(settings, engine)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, registry=worker.metrics.registry)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await worker.start()
    try:
        await stop.wait()
    finally:
        await worker.stop()
