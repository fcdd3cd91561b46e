"""Broadcast fan-out and sending through fake providers: throughput against the wire, memory,
rate limits.

    .venv/bin/python -m bench.broadcast [--store postgres|sqlite] [--sizes 10000,100000]
                                        [--channels whatsapp,telegram] [--limited-seconds 20]
                                        [--skip-unlimited] [--skip-limited]
    .venv/bin/python -m bench.broadcast --fan-out-only --sizes 100000,1000000

Each scenario runs in fresh processes, so that their figures do not mix:
- the fake provider (tests.fakes: FakeTwilioAPI or FakeTelegramAPI) in a process of its own,
  recording every call, enforcing `rate_limit_per_second` when given and counting its 429s;
  its logic answers behind a keep-alive asyncio HTTP server (`_FastHTTP`), not the fakes'
  stdlib one, which would cap the figures near 500 calls a second;
- one worker process doing what `diaspora-bot worker` does for a broadcast: the scheduler's
  job (`api.domain.broadcast_delivery.due_broadcasts_job`: claim, fan-out in batches) on a
  thread, and the outbox sender (`bot.outbox_sender.OutboxSender` over
  `api.domain.outbox_store.SqlOutboxStore`) on the event loop, at the same time — sending
  starts as soon as the first batch is written. Its peak memory is its `ru_maxrss`: the
  audience is written to the database by this script beforehand (on PostgreSQL one
  `INSERT … SELECT generate_series` per table), not by the worker;
- the bare client (`_bare`), in a process of its own: a bare asyncio loop on as many
  keep-alive connections as the worker keeps messages in flight, posting the worker's form
  (same fields, text, credentials) to the same fake provider process and reading each answer.
  It sends N/2 messages before the worker and N/2 after (the fake forgets its calls in
  between), so that a machine whose load drifts weighs on both alike. It is the wire limit of
  this machine, the bar's baseline.

Unlimited: N recipients per channel with no rate limit → the worker's end-to-end rate
(fan-out + send), the bare client's rate, their ratio, the fan-out alone, peak RSS of the
worker and of the PostgreSQL backends (their private memory, sampled twice a second), CPU
time per message of the worker, the fake and the bare client (load-independent where the
rates are not). Printed last, one line per channel at its largest N:
`bulk ratio R (worker W msg/s, bare client B req/s, N recipients) on CHANNEL`, after the
memory growth from the smallest to the largest N. Limited: Telegram at 30/s and WhatsApp at
80/s for `--limited-seconds` worth of recipients, the limit shared through Redis
(`REDIS_URL`, default redis://127.0.0.1:6379/0) as with several workers → achieved rate
(over the sending span, and the most in any one-second window, as the provider counts) as a
fraction of the limit, and 429s provoked. `--fan-out-only`: the scheduler's job alone at each
size, nothing sent → rate, peak RSS of the worker and of PostgreSQL's backends.
DESIGN.md's bars: ratio ≥ 0.5, memory flat in the audience, within 5 % under the limit and
no 429.

The worker runs on the event loop `diaspora-bot worker` runs on (`api.worker.run_loop`:
uvloop when installed). Knobs (all off by default, the figures are the code's as deployed):
`BENCH_CONCURRENCY=N` messages in flight per channel (the worker's default otherwise; the
bare client follows); `BENCH_PROFILE=DIR` runs each worker under py-spy (stacks in DIR, for
`python -m bench.profile_summary`); `BENCH_FAKE_STDLIB=1` serves the fake from the fakes' own
stdlib server (with `BENCH_FAKE_KEEPALIVE=1`, answering HTTP/1.1 with keep-alive; it closes
every connection otherwise); `BENCH_SNIFFIO_SHIM=1` stands in for the `sniffio` package.

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
from collections.abc import Callable, Iterator
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
TEXTS = {
    "fr": "Mission consulaire à Bouaké le 12 décembre : venez avec votre CNIB.",
    "en": "Consular mission in Bouaké on 12 December: bring your CNIB.",
}
WHATSAPP_FROM = "whatsapp:+14155238886"


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
    """Answer each line of stdin: `figures` with the figures (JSON), `reset` by forgetting
    the calls so far (the bare client's, before the worker's)."""
    print(json.dumps({"url": url}), flush=True)
    for line in sys.stdin:
        if line.strip() == "reset":
            with fake._cond:
                fake.calls.clear()
                fake.count_429 = 0
            print(json.dumps({"fake_cpu": _cpu_seconds()}), flush=True)
            continue
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
        "fake_cpu": _cpu_seconds(),
    }


def _cpu_seconds() -> float:
    """CPU time of this process so far (user and system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class FakeProcess:
    def __init__(self, channel: str, rate: float | None) -> None:
        args = [sys.executable, "-m", "bench.broadcast", "_fake", channel, str(rate or 0)]
        self.proc = subprocess.Popen(  # our own interpreter and script
            args, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.url = json.loads(self.proc.stdout.readline())["url"]

    def figures(self, command: str = "figures") -> dict[str, Any]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(f"{command}\n")
        self.proc.stdin.flush()
        return dict(json.loads(self.proc.stdout.readline()))

    def reset(self) -> float:
        """Forget the calls so far; the fake's CPU time so far."""
        return float(self.figures("reset")["fake_cpu"])

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
        if engine.dialect.name == "postgresql":
            _seed_generated(engine, citizen, identity, channel, n, now)
        else:
            _seed_rows(engine, citizen, identity, channel, n, now)
        with db.write(engine) as conn:
            record = broadcasts.create(
                conn,
                title="Bench",
                texts=dict(TEXTS),
                segment=broadcasts.Segment(countries=["CI"]),
                created_by=None,
                now=now,
            )
            broadcasts.schedule(conn, record.id, None, now)
        return record.id
    finally:
        engine.dispose()


def _seed_generated(
    engine: sa.Engine, citizen: sa.Table, identity: sa.Table, channel: str, n: int, now: datetime
) -> None:
    """PostgreSQL: the audience written by the server itself, one `INSERT … SELECT` over
    `generate_series` per table (a million citizens in seconds, nothing through Python)."""
    from api import db

    i = sa.column("i", sa.BigInteger)
    series = sa.func.generate_series(1, n).table_valued("i").render_derived()
    phone = sa.literal("+22507") + sa.func.lpad(sa.cast(i, sa.String), 8, "0")
    people = sa.select(
        i,
        phone,
        sa.true(),
        sa.literal("CI"),
        sa.case((i % 3 == 0, "en"), else_="fr"),
        sa.false(),
        sa.literal(now, citizen.c.created_at.type),
    ).select_from(series)
    names = ["id", "phone", "phone_verified", "country", "lang", "opted_out", "created_at"]
    address = phone if channel == "whatsapp" else sa.cast(i, sa.String)
    seen = sa.literal(now - timedelta(hours=1), identity.c.last_inbound_at.type)
    identities = sa.select(sa.literal(channel), address, i, seen).select_from(series)
    with db.write(engine) as conn:
        conn.execute(sa.insert(citizen).from_select(names, people))
        conn.execute(
            sa.insert(identity).from_select(
                ["channel", "address", "citizen_id", "last_inbound_at"], identities
            )
        )
        conn.exec_driver_sql(
            "SELECT setval(pg_get_serial_sequence('citizen', 'id'), (SELECT max(id) FROM citizen))"
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")


def _seed_rows(
    engine: sa.Engine, citizen: sa.Table, identity: sa.Table, channel: str, n: int, now: datetime
) -> None:
    """SQLite: the audience in chunks of 10,000 rows."""
    from api import db

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


# --- the worker, in its own process -------------------------------------------------------------


def worker_main(url: str, channel: str, provider_url: str, rate: float | None, redis: bool) -> None:
    """Fan out the due broadcast and send it all (with no provider URL: fan out only); print
    the worker's figures (JSON)."""
    if os.environ.get("BENCH_SNIFFIO_SHIM"):
        _shim_sniffio()
    from api.worker import run_loop

    if not provider_url:
        figures = _fan_out_only(make_url(url))
    else:
        # on the event loop `diaspora-bot worker` and `serve` run on (uvloop when installed)
        figures = run_loop(_work(make_url(url), channel, provider_url, rate, redis))
    figures["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures["worker_cpu"] = _cpu_seconds()  # start-up, fan-out and sending
    print(json.dumps(figures), flush=True)


def concurrency() -> int:
    """`BENCH_CONCURRENCY=N`: messages in flight per channel (the worker's default otherwise);
    the bare client keeps as many requests in flight."""
    from bot.outbox_sender import DEFAULT_CONCURRENCY

    return int(os.environ.get("BENCH_CONCURRENCY") or DEFAULT_CONCURRENCY)


def _fan_out_only(url: URL) -> dict[str, Any]:
    """The scheduler's job alone (claim, fan-out in batches), nothing sent."""
    from api.db import create_engine
    from api.domain import broadcast_delivery

    engine = create_engine(url)
    started = time.perf_counter()
    broadcast_delivery.due_broadcasts_job(engine)
    seconds = time.perf_counter() - started
    engine.dispose()
    return {"fan_out_seconds": seconds, "total_seconds": seconds}


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
    from api.domain.outbox_store import SqlOutboxStore
    from api.models import OutboxMessage
    from bot.outbox_sender import OutboxSender
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
            WHATSAPP_FROM,
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
        concurrency=concurrency(),
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
    url: URL, channel: str, provider_url: str | None, rate: float | None, redis: bool
) -> dict[str, Any]:
    args = [
        sys.executable,
        "-m",
        "bench.broadcast",
        "_worker",
        url.render_as_string(hide_password=False),
        channel,
        provider_url or "",
        str(rate or 0),
        "redis" if redis else "local",
    ]
    profile = os.environ.get("BENCH_PROFILE")
    if profile:  # py-spy's stacks of the whole worker, for bench.profile_summary
        Path(profile).mkdir(parents=True, exist_ok=True)
        out = Path(profile) / f"worker-{channel}-{url.get_backend_name()}-{uuid.uuid4().hex[:6]}"
        args = ["py-spy", "record", "--format", "raw", "-o", f"{out}.folded", "--", *args]
    return run_json(args, "worker")


def run_json(args: list[str], what: str) -> dict[str, Any]:
    """Run one of this script's processes; the JSON object it printed last."""
    done = subprocess.run(  # our own interpreter and script
        args, cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"{what} failed ({done.returncode})")
    return dict(json.loads([ln for ln in done.stdout.splitlines() if ln.startswith("{")][-1]))


# --- the bare client, in its own process --------------------------------------------------------


def bare_main(channel: str, provider_url: str, n: int, concurrency: int, first: int) -> None:
    """Send `n` messages as a bare asyncio loop would, print its figures (JSON)."""
    from api.worker import run_loop

    figures = run_loop(_bare(channel, provider_url, n, concurrency, first))
    print(json.dumps(figures), flush=True)


def bare_requests(channel: str, host: str) -> Callable[[int], bytes]:
    """The HTTP request of recipient `i` (as the seeded audience numbers them): the form the
    worker posts for that message (the same fields, text and credentials), on keep-alive.
    What does not change from one message to the next is encoded once."""
    from urllib.parse import quote_plus, urlencode

    texts = {lang: quote_plus(text) for lang, text in TEXTS.items()}
    if channel == "whatsapp":
        import base64

        from tests.fakes.twilio_api import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN

        path = f"/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages.json"
        secret = base64.b64encode(f"{DEFAULT_ACCOUNT_SID}:{DEFAULT_AUTH_TOKEN}".encode())
        extra = f"Authorization: Basic {secret.decode()}\r\n"
        before, after = "To=whatsapp%3A%2B22507", "&" + urlencode({"From": WHATSAPP_FROM})
        number = "{:08d}"
        field = "Body"
    else:
        path = f"/bot{TELEGRAM_TOKEN}/sendMessage"
        extra = ""
        before, after, number, field = "chat_id=", "", "{}", "text"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n{extra}"
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: "
    )

    def request(i: int) -> bytes:
        body = f"{before}{number.format(i)}{after}&{field}={texts['en' if i % 3 == 0 else 'fr']}"
        data = body.encode()
        return f"{head}{len(data)}\r\n\r\n".encode() + data

    return request


async def _bare(
    channel: str, provider_url: str, n: int, concurrency: int, first: int = 1
) -> dict[str, Any]:
    """`concurrency` keep-alive connections, each sending its next request as soon as the
    answer to the previous one is read (status line, Content-Length, the JSON decoded): the
    most this machine's wire and the fake provider allow with that many requests in flight."""
    from urllib.parse import urlsplit

    where = urlsplit(provider_url)
    host, port = where.hostname or "127.0.0.1", where.port or 80
    numbers = iter(range(first, first + n))
    ok = Counter[int]()
    request = bare_requests(channel, f"{host}:{port}")

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for i in numbers:
                writer.write(request(i))
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                json.loads(await reader.readexactly(length))
                ok[status] += 1
        finally:
            writer.close()

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    sent = sum(count for status, count in ok.items() if 200 <= status < 300)
    cpu = time.process_time() - cpu
    return {"bare_seconds": seconds, "bare_ok": sent, "bare_rate": sent / seconds, "bare_cpu": cpu}


def run_bare(
    channel: str, provider_url: str, n: int, concurrency: int, first: int = 1
) -> dict[str, Any]:
    args = [sys.executable, "-m", "bench.broadcast", "_bare", channel, provider_url]
    args += [str(n), str(concurrency), str(first)]
    return run_json(args, "bare client")


# --- scenarios ----------------------------------------------------------------------------------


class PostgresMemory:
    """Samples, twice a second, the private memory (`RssAnon`) of the PostgreSQL backends
    serving one database, while a run lasts: their peak, alone and added up. Needs the
    server on this machine (its processes readable under /proc); figures are None otherwise."""

    def __init__(self, url: URL) -> None:
        self.database = url.database
        self.admin = sa.create_engine(make_url(POSTGRES_ADMIN).set(drivername="postgresql+psycopg"))
        self.peak_backend_kb = 0
        self.peak_total_kb = 0
        self.readable = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PostgresMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.admin.dispose()

    def _sample(self) -> None:
        pids = sa.text("SELECT pid FROM pg_stat_activity WHERE datname = :db")
        while not self._stop.wait(0.5):
            with self.admin.connect() as conn:
                backends = conn.execute(pids, {"db": self.database}).scalars().all()
            sizes = [size for pid in backends if (size := _rss_anon_kb(pid)) is not None]
            if backends and not sizes:
                self.readable = False
                return
            self.peak_backend_kb = max([self.peak_backend_kb, *sizes])
            self.peak_total_kb = max(self.peak_total_kb, sum(sizes))

    def figures(self) -> dict[str, Any]:
        if not self.readable:
            return {"pg_backend_mb": None, "pg_total_mb": None}
        return {
            "pg_backend_mb": self.peak_backend_kb / 1024,
            "pg_total_mb": self.peak_total_kb / 1024,
        }


def _rss_anon_kb(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    return None


@contextmanager
def postgres_memory(store: str, url: URL) -> Iterator[PostgresMemory | None]:
    if store != "postgres":
        yield None
        return
    with PostgresMemory(url) as sampler:
        yield sampler


def scenario(
    store: str, channel: str, n: int, rate: float | None, redis: bool, *, fan_out_only: bool = False
) -> dict[str, Any]:
    """One run in fresh processes: seed, then the worker (and, unlimited, the bare client
    against the same fake provider process once the worker is done)."""
    now = datetime.now(UTC)
    row: dict[str, Any] = {"store": store, "channel": channel, "n": n, "limit": rate}
    with fresh_database(store) as url:
        seed_audience(url, channel, n, now)
        if fan_out_only:
            with postgres_memory(store, url) as pg:
                worker = run_worker(url, channel, None, None, redis=False)
            return {**row, **worker, **(pg.figures() if pg else {})}
        fake = FakeProcess(channel, rate)
        try:
            if rate is None:  # the bare client's first half: the machine as the worker finds it
                before = run_bare(channel, fake.url, n // 2, concurrency())
                fake_cpu = fake.reset()
            with postgres_memory(store, url) as pg:
                worker = run_worker(url, channel, fake.url, rate, redis)
            provider = fake.figures()
            if rate is None:  # the fake's CPU while the worker sent
                provider["fake_cpu"] -= fake_cpu
            bare: dict[str, Any] = {}
            if rate is None:  # and its second half, as the worker left it
                after = run_bare(channel, fake.url, n - n // 2, concurrency(), n // 2 + 1)
                seconds = before["bare_seconds"] + after["bare_seconds"]
                sent = before["bare_ok"] + after["bare_ok"]
                cpu = before["bare_cpu"] + after["bare_cpu"]
                bare = {"bare_seconds": seconds, "bare_ok": sent, "bare_rate": sent / seconds}
                bare["bare_cpu"] = cpu
        finally:
            fake.close()
    return {**row, **worker, **provider, **bare, **(pg.figures() if pg else {})}


def _mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _print_unlimited(rows: list[dict[str, Any]]) -> None:
    print()
    print("Unlimited provider: one worker, fan-out and sending at once; the bare client after it")
    print(
        f"{'store':<9}{'channel':<10}{'recipients':>11}{'fan-out/s':>11}{'end-to-end/s':>14}"
        f"{'bare/s':>9}{'ratio':>7}{'sent':>9}{'dup':>5}{'429':>5}{'RSS MB':>8}{'PG MB':>7}"
        f"{'CPU µs/msg: worker':>20}{'fake':>6}{'bare':>6}"
    )
    for r in rows:
        print(
            f"{r['store']:<9}{r['channel']:<10}{r['n']:>11,}"
            f"{r['n'] / r['fan_out_seconds']:>11,.0f}{r['n'] / r['total_seconds']:>14,.0f}"
            f"{r['bare_rate']:>9,.0f}{r['n'] / r['total_seconds'] / r['bare_rate']:>7.2f}"
            f"{r['addresses']:>9,}{r['duplicates']:>5}{r['count_429']:>5}{r['maxrss_mb']:>8.0f}"
            f"{_mb(r.get('pg_backend_mb')):>7}{1e6 * r['worker_cpu'] / r['n']:>20.0f}"
            f"{1e6 * r['fake_cpu'] / r['n']:>6.0f}{1e6 * r['bare_cpu'] / r['n']:>6.0f}"
        )
    _print_memory(rows, "worker")


def _print_memory(rows: list[dict[str, Any]], what: str) -> None:
    """Peak memory at the smallest and the largest audience of each channel, and its growth."""
    by_channel: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_channel.setdefault(r["channel"], []).append(r)
    for channel, runs in by_channel.items():
        small, large = min(runs, key=lambda r: r["n"]), max(runs, key=lambda r: r["n"])
        if small is large:
            continue
        line = (
            f"memory {channel} ({what}) {small['n']:,} -> {large['n']:,} recipients: worker "
            f"{small['maxrss_mb']:.0f} -> {large['maxrss_mb']:.0f} MB "
            f"({large['maxrss_mb'] / small['maxrss_mb']:.2f}x)"
        )
        if small.get("pg_backend_mb") and large.get("pg_backend_mb"):
            line += (
                f", PostgreSQL backend {small['pg_backend_mb']:.0f} -> "
                f"{large['pg_backend_mb']:.0f} MB "
                f"({large['pg_backend_mb'] / small['pg_backend_mb']:.2f}x)"
            )
        print(line)


def _print_fan_out(rows: list[dict[str, Any]]) -> None:
    print()
    print("Fan-out alone (the scheduler's job: audience -> outbox), nothing sent")
    print(
        f"{'store':<9}{'channel':<10}{'recipients':>11}{'seconds':>9}{'fan-out/s':>11}"
        f"{'worker RSS MB':>15}{'PG backend MB':>15}{'PG total MB':>13}"
    )
    for r in rows:
        print(
            f"{r['store']:<9}{r['channel']:<10}{r['n']:>11,}{r['fan_out_seconds']:>9.1f}"
            f"{r['n'] / r['fan_out_seconds']:>11,.0f}{r['maxrss_mb']:>15.0f}"
            f"{_mb(r.get('pg_backend_mb')):>15}{_mb(r.get('pg_total_mb')):>13}"
        )
    _print_memory(rows, "fan-out alone")


def _print_ratios(rows: list[dict[str, Any]]) -> None:
    """Last: the bar's line per channel, at its largest audience."""
    largest: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["n"] >= largest.get(r["channel"], {"n": -1})["n"]:
            largest[r["channel"]] = r
    for channel, r in largest.items():
        worker = r["n"] / r["total_seconds"]
        print(
            f"bulk ratio {worker / r['bare_rate']:.2f} (worker {worker:.0f} msg/s, "
            f"bare client {r['bare_rate']:.0f} req/s, {r['n']} recipients) on {channel}"
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
    if len(sys.argv) > 1 and sys.argv[1] == "_bare":
        _, _, channel, provider, count, in_flight, first = sys.argv
        bare_main(channel, provider, int(count), int(in_flight), int(first))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--store", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--channels", default="whatsapp,telegram")
    parser.add_argument("--limited-seconds", type=float, default=20.0)
    parser.add_argument("--skip-unlimited", action="store_true")
    parser.add_argument("--skip-limited", action="store_true")
    parser.add_argument(
        "--fan-out-only",
        action="store_true",
        help="the fan-out alone at each size (e.g. --sizes 100000,1000000), nothing sent",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    channels = args.channels.split(",")

    if args.fan_out_only:
        rows = []
        for n in sizes:
            row = scenario(args.store, channels[0], n, None, redis=False, fan_out_only=True)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
        _print_fan_out(rows)
        return
    unlimited: list[dict[str, Any]] = []
    if not args.skip_unlimited:
        for channel in channels:
            for n in sizes:
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
    if unlimited:
        print()
        _print_ratios(unlimited)


if __name__ == "__main__":
    main()
