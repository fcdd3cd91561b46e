"""Liveness, readiness and Prometheus metrics: `/healthz`, `/readyz`, `/metrics` (behind
`METRICS_TOKEN` when it is set).

Each app has a metrics registry of its own (`app.state.metrics`), so that several apps in one
process (the tests) never share counters. `RequestMetrics` counts requests by route template,
never by raw path: the label set stays small and no reference or phone number ends up in it.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Iterator

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.db import read
from api.domain import desk_conversations
from api.http.problems import problem, route_template
from api.models import utcnow

logger = logging.getLogger("api.http")

router = APIRouter(tags=["operations"])
_BEARER = {"WWW-Authenticate": 'Bearer realm="metrics"'}


class Metrics:
    """The app's own registry and the instruments that later work adds to it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "diaspora_http_requests",
            "HTTP requests answered, by route template and status code.",
            ["route", "status"],
            registry=self.registry,
        )

    def watch_desk(self, engine: Engine) -> None:
        self.registry.register(DeskCollector(engine))


class DeskCollector:
    """The desk's numbers, read from the database at each scrape: conversations waiting for
    an answer and the median first-response time (30 days), per post."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The families alone, so that registering reads nothing from the database."""
        return iter(self._families())

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        waiting = GaugeMetricFamily(
            "diaspora_desk_waiting_conversations",
            "Desk conversations whose citizen waits for an agent's answer, by post.",
            labels=["post"],
        )
        median = GaugeMetricFamily(
            "diaspora_desk_first_response_median_seconds",
            "Median time to an agent's first answer, conversations of the last 30 days, by post.",
            labels=["post"],
        )
        return waiting, median

    def collect(self) -> Iterator[GaugeMetricFamily]:
        waiting, median = self._families()
        try:
            with read(self.engine) as conn:
                rows = desk_conversations.numbers(conn, utcnow())
        except SQLAlchemyError:
            logger.warning("desk numbers unavailable for /metrics")
            rows = []
        for row in rows:
            waiting.add_metric([row.post_code], row.waiting)
            if row.median_first_response is not None:
                median.add_metric([row.post_code], row.median_first_response.total_seconds())
        yield waiting
        yield median


class RequestMetrics:
    """ASGI middleware counting every HTTP response in `diaspora_http_requests_total`."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            self.metrics.http_requests.labels(route_template(scope), str(status)).inc()


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the database answers",
    responses={503: {"description": "The database does not answer"}},
)
def readyz(request: Request) -> JSONResponse:
    engine: Engine = request.app.state.engine
    started = time.monotonic()
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        logger.warning(
            "readiness check failed after %.1fs: %s",
            time.monotonic() - started,
            type(exc).__name__,
        )
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """With METRICS_TOKEN set, only a scraper presenting it (constant-time compare)."""
    expected = request.app.state.settings.metrics_token
    if expected:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
            return problem(401, "Unauthorized", "metrics token needed", headers=_BEARER)
    registry: CollectorRegistry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
