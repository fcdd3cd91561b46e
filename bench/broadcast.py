"""Broadcast fan-out and sending through fake providers: throughput, memory, rate limits.

    .venv/bin/python -m bench.broadcast [--store postgres|sqlite] [--sizes 10000,100000]
                                        [--limited-seconds 20] [--skip-unlimited]

Each scenario runs in fresh processes, so that their figures do not mix:
- the fake provider (tests.fakes: FakeTwilioAPI or FakeTelegramAPI) in a process of its own,
  recording every call, enforcing `rate_limit_per_second` when given and counting its 429s;
  its logic answers behind a keep-alive asyncio HTTP server (`_FastHTTP`), not the fakes'
  stdlib one, which would cap the figures near 500 calls a second;
- one worker process doing what `diaspora-bot worker` does for a broadcast: the scheduler's
  job (`api.domain.broadcast_delivery.due_broadcasts_job`: claim, fan-out in batches) on a thread,
  and the outbox sender (`bot.outbox.OutboxSender` over `api.domain.outbox.SqlOutboxStore`)
  on the event loop, at the same time — sending starts as soon as the first batch is written.
  Its peak memory is its `ru_maxrss`: the audience is written to the database by this
  script beforehand, not by the worker.

Unlimited: N recipients on WhatsApp (Twilio's REST API, the heavier SDK) with no rate limit →
messages per second per worker, end to end (fan-out + send), and the fan-out alone; peak RSS
at each N. Limited: Telegram at 30/s and WhatsApp at 80/s for `--limited-seconds` worth of
recipients, the limit shared through Redis (`REDIS_URL`, default redis://127.0.0.1:6379/0)
as with several workers → achieved rate (over the sending span, and the most in any
one-second window, as the provider counts) as a fraction of the limit, and 429s provoked.
DESIGN.md's bars: ≥ 2,000 messages/s per worker, memory flat in the audience, within 5 %
under the limit and no 429.

The worker runs on the event loop `diaspora-bot worker` runs on (`api.worker.run_loop`:
uvloop when installed). Knobs to locate a bottleneck (all off by default, the figures are the
code's as deployed): `BENCH_CONCURRENCY=N` messages in flight per channel (the worker's
default otherwise); `BENCH_FAKE_STDLIB=1` serves the fake from the fakes' own stdlib server
(with `BENCH_FAKE_KEEPALIVE=1`, answering HTTP/1.1 with keep-alive; it closes every
connection otherwise); `BENCH_SNIFFIO_SHIM=1` stands in for the `sniffio` package (now a
dependency: without it httpcore's lookup of it, for every lock it sets up, searched sys.path).

PostgreSQL comes from `BENCH_POSTGRES_URL` (default postgresql://postgres@127.0.0.1:5432/postgres):
a database is created per scenario and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TELEGRAM_TOKEN = "123456:BENCH"  # a fake's token
POSTGRES_ADMIN = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
SEND_METHOD = {"whatsapp": "messages.create", "telegram": "sendMessage"}


# --- the fake provider, in its own process ------------------------------------------------------


def fake_main(channel: str, rate: float | None) -> None:
    """Serve a fake provider; print its URL; on each line of stdin print its figures (JSON);
    stop at end of input.

    The fake's own logic (tests.fakes: routes, wire format, call log, rate limit, 429s)
    answers every request, but behind `_FastHTTP`, a keep-alive HTTP/1.1 server on one
    asyncio loop (uvloop when installed), instead of the fakes' stdlib threaded server, which
    closes every connection and tops out near 500 calls a second: the provider must not be
    the bottleneck of the worker it measures. `BENCH_FAKE_STDLIB=1` puts the stdlib server
    back (with `BENCH_FAKE_KEEPALIVE=1`, keep-alive on it)."""
    from tests.fakes import FakeTelegramAPI, FakeTwilioAPI, _base

    fake: Any
    if channel == "whatsapp":
        fake = FakeTwilioAPI(rate_limit_per_second=rate)
    else:
        fake = FakeTelegramAPI(token=TELEGRAM_TOKEN, rate_limit_per_second=rate)
    if os.environ.get("BENCH_FAKE_STDLIB"):
        if os.environ.get("BENCH_FAKE_KEEPALIVE"):
            _base._Handler.protocol_version = "HTTP/1.1"
            _base._Handler.disable_nagle_algorithm = True
        with fake:
            _serve_figures(fake, channel, fake.url)
        return
    server = _FastHTTP(fake)
    server.start()
    try:
        _serve_figures(fake, channel, server.url)
    finally:
        server.stop()


def _serve_figures(fake: Any, channel: str, url: str) -> None:
    print(json.dumps({"url": url}), flush=True)
    for _line in sys.stdin:
        print(json.dumps(_fake_figures(fake, channel)), flush=True)


class _FastHTTP:
    """Just enough HTTP/1.1 for the SDKs' calls (Content-Length bodies, keep-alive), on an
    event loop in a thread of its own, handing each request to `fake.dispatch` (a
    tests.fakes.FakeServer) and writing back its JSON answer."""

    def __init__(self, fake: Any) -> None:
        self.fake = fake
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-http", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        self._thread.join(5)

    def _run(self) -> None:
        try:
            import uvloop

            loop = uvloop.new_event_loop()
        except ImportError:
            loop = asyncio.new_event_loop()  # type: ignore[assignment]
        self._loop = loop
        server = loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", 0, backlog=1024)
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        loop.run_forever()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import http.client
        import io
        from urllib.parse import parse_qs, urlsplit

        from tests.fakes._base import Request

        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                line, _, rest = head.partition(b"\r\n")
                verb, target, _version = line.decode("latin-1").split(" ", 2)
                headers = http.client.parse_headers(io.BytesIO(rest))
                body = await reader.readexactly(int(headers.get("Content-Length") or 0))
                url = urlsplit(target)
                query = parse_qs(url.query, keep_blank_values=True)
                request = Request(verb, url.path, query, headers, body)
                status, payload = self.fake.dispatch(request)
                data = json.dumps(payload).encode()
                close = (headers.get("Connection") or "").lower() == "close"
                writer.write(
                    f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
                    "Content-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\n"
                    f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
                if close:
                    return
        finally:
            writer.close()


_REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}
_REASONS |= {404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}


def _fake_figures(fake: Any, channel: str) -> dict[str, Any]:
    method = SEND_METHOD[channel]
    calls = [c for c in list(fake.calls) if c.method == method]
    ok = [c for c in calls if c.ok]
    key = "To" if channel == "whatsapp" else "chat_id"
    per_address = Counter(str(c.params.get(key)) for c in ok)
    span = ok[-1].time - ok[0].time if len(ok) > 1 else 0.0
    return {
        "calls": len(calls),
        "ok": len(ok),
        "addresses": len(per_address),
        "duplicates": sum(n - 1 for n in per_address.values() if n > 1),
        "count_429": fake.count_429,
        "span": span,
        "rate": (len(ok) - 1) / span if span else 0.0,
        "max_per_second": fake.max_per_second(method),
        "errors": len(fake.errors),
    }


class FakeProcess:
    def __init__(self, channel: str, rate: float | None) -> None:
        args = [sys.executable, "-m", "bench.broadcast", "_fake", channel, str(rate or 0)]
        self.proc = subprocess.Popen(  # our own interpreter and script
            args, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.url = json.loads(self.proc.stdout.readline())["url"]

    def figures(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write("figures\n")
        self.proc.stdin.flush()
        return dict(json.loads(self.proc.stdout.readline()))

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=10)


# --- the database -------------------------------------------------------------------------------


@contextmanager
def fresh_database(store: str) -> Iterator[URL]:
    from api import migrate
    from api.db import create_engine
    from api.seed import seed_demo

    if store == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            url = make_url(f"sqlite:///{folder}/bench.db")
            _prepare(url, migrate, create_engine, seed_demo)
            yield url
        return
    admin_url = make_url(POSTGRES_ADMIN).set(drivername="postgresql+psycopg")
    name = f"diaspora_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        url = admin_url.set(database=name)
        _prepare(url, migrate, create_engine, seed_demo)
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _prepare(url: URL, migrate: Any, create_engine: Any, seed_demo: Any) -> None:
    engine = create_engine(url)
    try:
        migrate.upgrade(engine)
        seed_demo(engine)
    finally:
        engine.dispose()


def seed_audience(url: URL, channel: str, n: int, now: datetime) -> int:
    """N citizens in Côte d'Ivoire on `channel`, who wrote an hour ago; a broadcast to them,
    due now. Returns its id."""
    from api import db
    from api.db import create_engine
    from api.domain import broadcasts
    from api.models import ChannelIdentity, Citizen

    citizen = cast(sa.Table, sa.inspect(Citizen).local_table)
    identity = cast(sa.Table, sa.inspect(ChannelIdentity).local_table)
    engine = create_engine(url)
    try:
        chunk = 10_000
        for start in range(1, n + 1, chunk):
            ids = range(start, min(n, start + chunk - 1) + 1)
            with db.write(engine) as conn:
                conn.execute(
                    sa.insert(citizen),
                    [
                        {
                            "id": i,
                            "phone": f"+22507{i:08d}",
                            "phone_verified": True,
                            "country": "CI",
                            "lang": "en" if i % 3 == 0 else "fr",
                            "opted_out": False,
                            "created_at": now,
                        }
                        for i in ids
                    ],
                )
                conn.execute(
                    sa.insert(identity),
                    [
                        {
                            "channel": channel,
                            "address": f"+22507{i:08d}" if channel == "whatsapp" else str(i),
                            "citizen_id": i,
                            "last_inbound_at": now - timedelta(hours=1),
                        }
                        for i in ids
                    ],
                )
        if engine.dialect.name == "postgresql":
            with db.write(engine) as conn:
                conn.exec_driver_sql(
                    "SELECT setval(pg_get_serial_sequence('citizen', 'id'), "
                    "(SELECT max(id) FROM citizen))"
                )
                conn.exec_driver_sql("ANALYZE")
        with db.write(engine) as conn:
            record = broadcasts.create(
                conn,
                title="Bench",
                texts={
                    "fr": "Mission consulaire à Bouaké le 12 décembre : venez avec votre CNIB.",
                    "en": "Consular mission in Bouaké on 12 December: bring your CNIB.",
                },
                segment=broadcasts.Segment(countries=["CI"]),
                created_by=None,
                now=now,
            )
            broadcasts.schedule(conn, record.id, None, now)
        return record.id
    finally:
        engine.dispose()


# --- the worker, in its own process -------------------------------------------------------------


def worker_main(url: str, channel: str, provider_url: str, rate: float | None, redis: bool) -> None:
    """Fan out the due broadcast and send it all; print the worker's figures (JSON)."""
    if os.environ.get("BENCH_SNIFFIO_SHIM"):
        _shim_sniffio()
    from api.worker import run_loop

    # on the event loop `diaspora-bot worker` and `serve` run on (uvloop when installed)
    figures = run_loop(_work(make_url(url), channel, provider_url, rate, redis))
    figures["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(figures), flush=True)


def _knobs() -> dict[str, Any]:
    """`BENCH_CONCURRENCY=N`: messages in flight per channel (the worker's default otherwise)."""
    value = os.environ.get("BENCH_CONCURRENCY")
    return {"concurrency": int(value)} if value else {}


def _shim_sniffio() -> None:
    """httpcore imports `sniffio` for every lock it sets up; without the package installed
    each of those imports fails after a search of sys.path. A stand-in measures the cost."""
    import types

    module = types.ModuleType("sniffio")
    module.current_async_library = lambda: "asyncio"  # type: ignore[attr-defined]
    sys.modules["sniffio"] = module


async def _work(
    url: URL, channel: str, provider_url: str, rate: float | None, redis: bool
) -> dict[str, Any]:
    from api.db import create_engine
    from api.domain import broadcast_delivery
    from api.domain.outbox import SqlOutboxStore
    from api.models import OutboxMessage
    from bot.outbox import OutboxSender
    from bot.rate_limits import LocalRateLimiter, RateLimiter, RedisRateLimiter

    outbox = cast(sa.Table, sa.inspect(OutboxMessage).local_table)
    engine = create_engine(url)
    sender_: Any
    if channel == "whatsapp":
        from bot.channels.whatsapp import WhatsAppSender
        from tests.fakes.twilio_api import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN

        sender_ = WhatsAppSender.create(
            DEFAULT_ACCOUNT_SID,
            DEFAULT_AUTH_TOKEN,
            "whatsapp:+14155238886",
            api_base_url=provider_url,
        )
    else:
        from bot.channels.telegram import TelegramSender

        sender_ = await TelegramSender.connect(TELEGRAM_TOKEN, provider_url)
    rates = {channel: rate} if rate else {}
    limiter: RateLimiter
    if redis and rates:
        limiter = RedisRateLimiter.from_url(REDIS_URL, rates, prefix=f"bench-{uuid.uuid4().hex}")
    else:
        limiter = LocalRateLimiter(rates)
    sender = OutboxSender(
        SqlOutboxStore(engine),
        [sender_],
        limiter,
        rates=rates,
        poll_interval=0.05,
        **_knobs(),
    )
    running = asyncio.create_task(sender.run())
    started = time.perf_counter()
    fan_out_done = threading.Event()
    fan_out_seconds = 0.0

    def fan_out() -> None:
        nonlocal fan_out_seconds
        broadcast_delivery.due_broadcasts_job(engine)
        fan_out_seconds = time.perf_counter() - started
        fan_out_done.set()
        sender.nudge(channel)

    fanning = asyncio.create_task(asyncio.to_thread(fan_out))
    # Is anything left? One row is enough to know (a count would scan the whole backlog).
    left = sa.select(outbox.c.id).where(outbox.c.status.in_(("pending", "sending"))).limit(1)
    while True:
        await asyncio.sleep(0.1)
        if not fan_out_done.is_set():
            continue
        with engine.connect() as conn:
            if conn.execute(left).first() is None:
                break
    total_seconds = time.perf_counter() - started
    await fanning
    sender.stop()
    await running
    await sender.close()
    with engine.connect() as conn:
        by_status: dict[str, int] = dict(
            conn.execute(sa.select(outbox.c.status, sa.func.count()).group_by(outbox.c.status))
            .tuples()
            .all()
        )
    engine.dispose()
    return {
        "fan_out_seconds": fan_out_seconds,
        "total_seconds": total_seconds,
        "outbox": by_status,
    }


def run_worker(
    url: URL, channel: str, provider_url: str, rate: float | None, redis: bool
) -> dict[str, Any]:
    args = [
        sys.executable,
        "-m",
        "bench.broadcast",
        "_worker",
        url.render_as_string(hide_password=False),
        channel,
        provider_url,
        str(rate or 0),
        "redis" if redis else "local",
    ]
    done = subprocess.run(  # our own interpreter and script
        args, cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"worker failed ({done.returncode})")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# --- scenarios ----------------------------------------------------------------------------------


def scenario(store: str, channel: str, n: int, rate: float | None, redis: bool) -> dict[str, Any]:
    now = datetime.now(UTC)
    with fresh_database(store) as url:
        seed_audience(url, channel, n, now)
        fake = FakeProcess(channel, rate)
        try:
            worker = run_worker(url, channel, fake.url, rate, redis)
            provider = fake.figures()
        finally:
            fake.close()
    return {"store": store, "channel": channel, "n": n, "limit": rate, **worker, **provider}


def _print_unlimited(rows: list[dict[str, Any]]) -> None:
    print()
    print("Unlimited provider: one worker, fan-out and sending at once")
    print(
        f"{'store':<9}{'channel':<10}{'recipients':>11}{'fan-out/s':>11}{'end-to-end/s':>14}"
        f"{'sent':>9}{'dup':>5}{'429':>5}{'peak RSS MB':>13}"
    )
    for r in rows:
        print(
            f"{r['store']:<9}{r['channel']:<10}{r['n']:>11,}"
            f"{r['n'] / r['fan_out_seconds']:>11,.0f}{r['n'] / r['total_seconds']:>14,.0f}"
            f"{r['addresses']:>9,}{r['duplicates']:>5}{r['count_429']:>5}{r['maxrss_mb']:>13.0f}"
        )


def _print_limited(rows: list[dict[str, Any]]) -> None:
    print()
    print("Provider limit enforced by the fake, shared limiter in Redis")
    print(
        f"{'store':<9}{'channel':<10}{'limit/s':>8}{'recipients':>11}{'achieved/s':>11}"
        f"{'of limit':>10}{'max in 1 s':>11}{'429':>5}{'dup':>5}"
    )
    for r in rows:
        print(
            f"{r['store']:<9}{r['channel']:<10}{r['limit']:>8.0f}{r['n']:>11,}"
            f"{r['rate']:>11.1f}{r['rate'] / r['limit']:>10.1%}{r['max_per_second']:>11}"
            f"{r['count_429']:>5}{r['duplicates']:>5}"
        )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_fake":
        fake_main(sys.argv[2], float(sys.argv[3]) or None)
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        _, _, url, channel, provider, limit, limiter = sys.argv
        worker_main(url, channel, provider, float(limit) or None, limiter == "redis")
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--store", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--channels", default="whatsapp")
    parser.add_argument("--limited-seconds", type=float, default=20.0)
    parser.add_argument("--skip-unlimited", action="store_true")
    parser.add_argument("--skip-limited", action="store_true")
    args = parser.parse_args()

    unlimited: list[dict[str, Any]] = []
    if not args.skip_unlimited:
        for channel in args.channels.split(","):
            for n in (int(s) for s in args.sizes.split(",")):
                row = scenario(args.store, channel, n, None, redis=False)
                unlimited.append(row)
                print(json.dumps(row), file=sys.stderr)
    limited: list[dict[str, Any]] = []
    if not args.skip_limited:
        for channel, rate in (("telegram", 30.0), ("whatsapp", 80.0)):
            n = int(rate * args.limited_seconds)
            row = scenario(args.store, channel, n, rate, redis=True)
            limited.append(row)
            print(json.dumps(row), file=sys.stderr)
    if unlimited:
        _print_unlimited(unlimited)
    if limited:
        _print_limited(limited)


if __name__ == "__main__":
    main()
