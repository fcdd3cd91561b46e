"""The composition root: one FastAPI app wired with settings, the database and the routers.

Later work adds its routers and start-up jobs here, and nowhere else. `create_app` takes the
settings and an engine from its caller (the CLI, the tests) or builds its own; an engine it
built is disposed when the app shuts down, one it was given belongs to the caller.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI
from sqlalchemy.engine import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import worker
from api.db import create_engine
from api.domain.appointment_proof import proof_key
from api.domain.outbox import enqueue_replies
from api.http import (
    console,
    docs,
    health,
    proof_files,
    simulator,
    staff,
    voice_files,
    web_simulator,
    webhooks,
    whatsapp_webhooks,
)
from api.http.body_limit import BodyLimit, BodyTooLarge, too_large
from api.http.problems import CatchAllErrors
from api.http.request_ids import RequestIds
from api.http.security_headers import SecurityHeaders
from api.messaging import build_messaging
from api.settings import Settings, load_settings


def _version() -> str:
    try:
        return version("diaspora-bot")
    except PackageNotFoundError:
        return "0.0.0"


def create_app(
    settings: Settings | None = None,
    engine: Engine | None = None,
    *,
    run_worker: bool = True,
) -> FastAPI:
    """Build the app. `run_worker=False` (`serve --no-worker`) keeps the outbox sender and the
    scheduler out of this process, for deployments that run `diaspora-bot worker` apart."""
    settings = settings or load_settings()
    owns_engine = engine is None
    db = engine if engine is not None else create_engine(settings.sqlalchemy_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if owns_engine:
                db.dispose()

    app = FastAPI(
        title="Diaspora Bot API",
        version=_version(),
        lifespan=lifespan,
        redirect_slashes=False,  # no redirect built from the Host header: a stray slash is a 404
        # served by api.http.docs: assets from the app itself, staff-only in production
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.engine = db
    app.state.run_worker = run_worker
    app.state.metrics = health.Metrics(db)
    app.state.metrics.watch_desk(db)
    app.state.proof_key = proof_key(settings.proof_secret, settings.console_secret)
    app.state.messaging = build_messaging(
        db,
        enqueue=enqueue_replies,
        public_base_url=settings.public_base_url,
        proof_key=app.state.proof_key,
    )
    # What time it is for the routes; tests and scripts set a fixed clock here.
    app.state.clock = lambda: datetime.now(UTC)
    app.state.simulator_limits = simulator.SimulatorLimits(
        settings.simulator_messages_per_minute, settings.simulator_users_per_10_minutes
    )
    app.state.login_failures = console.login_failures_limit()

    # The last middleware added is the outermost: metrics also count the 500s of CatchAllErrors.
    app.add_middleware(BodyLimit)
    app.add_exception_handler(BodyTooLarge, too_large)
    app.add_exception_handler(StarletteHTTPException, console.unknown_url)  # console pages
    app.add_middleware(CatchAllErrors)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(health.RequestMetrics, metrics=app.state.metrics)
    app.add_middleware(RequestIds)  # every log line of the request carries its id
    # Outermost: Twilio's webhooks, the citizens' path, answered before any of the above.
    app.add_middleware(whatsapp_webhooks.TwilioWebhooks, state=app.state)

    # The message routes first: the router tries routes in order, and these carry the load.
    app.include_router(webhooks.router)
    app.include_router(simulator.router)
    app.include_router(health.router)
    app.include_router(staff.router)
    app.include_router(console.router)
    app.include_router(web_simulator.router)
    app.include_router(voice_files.router)  # voice prompts, at unguessable URLs
    app.include_router(proof_files.router)  # proofs of appointment, at signed URLs
    app.include_router(worker.router)  # its lifespan runs the worker unless run_worker=False
    docs.install(app)
    return app
