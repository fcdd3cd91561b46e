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
from collections.abc import Iterable, Iterator
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    Metric,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.db import read
from api.domain import desk_conversations
from api.http.problems import problem, route_template
from api.models import Lane, utcnow

logger = logging.getLogger("api.http")

router = APIRouter(tags=["operations"])
_BEARER = {"WWW-Authenticate": 'Bearer realm="metrics"'}


TURN_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The app's own registry and its instruments. Labels are small closed sets (route
    templates, channels, languages, lanes, outcomes): never an address, a reference or a text.
    """

    def __init__(self, engine: Engine | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "diaspora_http_requests",
            "HTTP requests answered, by route template and status code.",
            ["route", "status"],
            registry=self.registry,
        )
        self.turns = Counter(
            "diaspora_turns",
            "Conversation turns handled by this process, by channel and the citizen's language.",
            ["channel", "lang"],
            registry=self.registry,
        )
        self.turn_failures = Counter(
            "diaspora_turn_failures",
            "Turns that failed: `error` (the citizen got an apology) or `database` (503, the "
            "provider delivers again).",
            ["channel", "reason"],
            registry=self.registry,
        )
        self.turn_seconds = Histogram(
            "diaspora_turn_seconds",
            "Time of one turn through the store (dedupe, state, flow, save), by channel.",
            ["channel"],
            buckets=TURN_BUCKETS,
            registry=self.registry,
        )
        if engine is not None:
            self.registry.register(StoreCollector(engine))
        # Each label set's child, found once: `labels()` takes a lock and checks its values
        # on every call, and every request and turn counts (label sets are small closed sets).
        self._children: dict[tuple[Any, ...], Any] = {}

    def child(self, metric: Any, *values: str) -> Any:
        key = (id(metric), *values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def turn(self, channel: str, lang: str | None, seconds: float, failure: str | None) -> None:
        self.child(self.turn_seconds, channel).observe(seconds)
        if failure is not None:
            self.child(self.turn_failures, channel, failure).inc()
        else:
            self.child(self.turns, channel, lang or "fr").inc()

    def watch_desk(self, engine: Engine) -> None:
        self.registry.register(DeskCollector(engine))


class StoreCollector(Collector):
    """What the database holds, read at each scrape (the same on every replica: aggregate
    with `max`, not `sum`): the outbox's depth per channel and lane, bookings ever made, the
    waitlists (waiting, offered), and whether the database answers."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("diaspora_database_up", "1 when the database answered the scrape.")
        depth = GaugeMetricFamily(
            "diaspora_outbox_depth",
            "Messages waiting in the outbox or being sent, by channel and lane.",
            labels=["channel", "lane"],
        )
        bookings = CounterMetricFamily(
            "diaspora_bookings", "Appointments ever booked (any status since).", labels=[]
        )
        waitlist = GaugeMetricFamily(
            "diaspora_waitlist_entries",
            "Citizens on a waitlist, by status (waiting; offered: a seat is held for them).",
            labels=["status"],
        )
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(_OUTBOX_DEPTH).all()
                booked = conn.execute(_BOOKINGS).scalar_one()
                waiting: dict[str, int] = {str(s): int(n) for s, n in conn.execute(_WAITLIST)}
        except Exception as exc:
            logger.warning("metrics: the database does not answer (%s)", type(exc).__name__)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        for channel, lane, count in rows:
            depth.add_metric([str(channel), LANES.get(int(lane), str(lane))], int(count))
        bookings.add_metric([], int(booked))
        for status in ("waiting", "offered"):
            waitlist.add_metric([status], int(waiting.get(status, 0)))
        return [up, depth, bookings, waitlist]


LANES = {lane.value: lane.name for lane in Lane}
_OUTBOX_DEPTH = sa.text(
    "SELECT channel, lane, count(*) FROM outbox "
    "WHERE status IN ('pending', 'sending') GROUP BY channel, lane"
)
_BOOKINGS = sa.text("SELECT count(*) FROM appointment")
_WAITLIST = sa.text(
    "SELECT status, count(*) FROM waitlist_entry WHERE status IN ('waiting', 'offered') "
    "GROUP BY status"
)


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
            self.metrics.child(self.metrics.http_requests, route_template(scope), str(status)).inc()


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
