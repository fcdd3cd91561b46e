"""Conversation turns through the WhatsApp webhook, against a separate bare app, as DESIGN.md
defines the bar.

    .venv/bin/python -m bench.turns [--seconds 10] [--connections 32] [--rounds 2]
                                    [--store sqlite|postgres|both] [--profile DIR]

The baseline is `bench.bare_app`, a separate minimal FastAPI app (one route: parse the form,
answer fixed TwiML) on the same uvicorn settings as `diaspora-bot serve`. The product is
`diaspora-bot serve --no-worker` on the demo network (SQLite in a temporary folder, or a
temporary PostgreSQL database). The load is real citizens walking a real booking
conversation through signed Twilio webhooks, each message with its own `MessageSid`:

    Bonjour → 1 (Français) → 1 (book) → 1 (a post) → 1 (a service) → 1 (a day) → 1 (a time)
    → 0 (back to the menu)

Citizens go in cohorts of `--cohort`, their steps interleaved, so that each citizen's
messages arrive in order and each sends 8 messages in all (well under the flood rule of 20 a
minute). The same wrk (Debian package `wrk`) loads both servers, alternating bare and
product `--rounds` times; each product run has citizens and ids of its own. The ratio is
product turns/s over bare requests/s (means over the rounds). Then both are loaded at one
fixed arrival rate below saturation (`--rate` × the product's throughput) by an open-loop
client, and p50/p99 latencies are printed, measured from each request's scheduled time.

DESIGN.md's bar: ≥ 0.50 on SQLite, ≥ 0.35 on PostgreSQL. `--profile DIR` also records the
product under py-spy (folded stacks per store in DIR; `python -m bench.profile_summary FILE`
prints where the time goes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = "https://bench.example"
AUTH_TOKEN = "bench-auth-token"
ACCOUNT_SID = "AC" + "0" * 32
WALK = ("Bonjour", "1", "1", "1", "1", "1", "1", "0")
OPEN_LOOP_CONNECTIONS = 64
PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
PG_ADMIN = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass(frozen=True)
class Run:
    rate: float  # requests (turns) per second
    requests: int


def signed_bodies(run: int, citizens: int, cohort: int) -> list[tuple[str, str]]:
    """(form body, X-Twilio-Signature) for `citizens` walking WALK, in cohort order."""
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(AUTH_TOKEN)
    url = f"{PUBLIC}/webhooks/whatsapp"
    bodies = []
    for first in range(0, citizens, cohort):
        members = range(first, min(first + cohort, citizens))
        for step, text in enumerate(WALK):
            for c in members:
                phone = f"+225{700000000 + run * 1_000_000 + c:010d}"
                form = {
                    "From": f"whatsapp:{phone}",
                    "To": "whatsapp:+14155238886",
                    "Body": text,
                    "MessageSid": f"SM{run:08x}{c:08x}{step:016x}",
                    "AccountSid": ACCOUNT_SID,
                    "WaId": phone[1:],
                    "ProfileName": "Bench",
                    "NumMedia": "0",
                    "MessageType": "text",
                }
                bodies.append((urlencode(form), validator.compute_signature(url, form)))
    return bodies


def fresh(run: int, count: int, cohort: int) -> list[tuple[str, str]]:
    """The first `count` messages of enough new citizens' walks."""
    return signed_bodies(run, count // len(WALK) + 1, cohort)[:count]


def wrk_script(bodies: list[tuple[str, str]], script: Path) -> None:
    """Write `script` and its bodies beside it (`<script>.bodies`, one "body signature" per
    line: a Lua table literal that large would pass LuaJIT's constant limit). Each wrk thread
    takes every `threads`-th body, in order, and never wraps around."""
    data = script.with_suffix(".bodies")
    data.write_text("".join(f"{b} {s}\n" for b, s in bodies))
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
        "local counter = 0\n"
        "function setup(thread)\n"
        "  thread:set('id', counter)\n"
        "  counter = counter + 1\n"
        "end\n"
        "local bodies = {}\n"
        "local n = 0\n"
        "function init(args)\n"
        "  n = id\n"
        f'  for line in io.lines("{data}") do\n'
        '    local b, s = line:match("^(%S+) (%S+)$")\n'
        "    bodies[#bodies + 1] = {b, s}\n"
        "  end\n"
        "end\n"
        "request = function()\n"
        "  local b = bodies[(n % #bodies) + 1]\n"
        "  n = n + 2\n"
        '  wrk.headers["X-Twilio-Signature"] = b[2]\n'
        "  return wrk.format(nil, nil, nil, b[1])\n"
        "end\n"
    )


def run_wrk(url: str, script: Path, seconds: int, connections: int) -> Run:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{errors.group(1)} failed requests:\n{out}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    if not rate or not count:
        raise RuntimeError(out)
    return Run(float(rate.group(1)), int(count.group(1)))


# --- the open-loop client: a fixed arrival rate, latencies from the scheduled times -----------


async def _open_loop(port: int, bodies: list[tuple[str, str]], rate: float) -> list[float]:
    """Requests due at `i / rate`, sent on up to CONNECTIONS kept-alive connections (plain
    asyncio streams: the client must cost far less than the servers); a request that finds
    no free connection waits, and its latency counts from when it was due."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
    start = time.perf_counter() + 0.2
    for i, (body, signature) in enumerate(bodies):
        head = (
            f"POST /webhooks/whatsapp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"X-Twilio-Signature: {signature}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        queue.put_nowait((start + i / rate, (head + body).encode()))
    latencies: list[float] = []

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while not queue.empty():
                at, request = queue.get_nowait()
                await asyncio.sleep(max(0.0, at - time.perf_counter()))
                writer.write(request)
                status = await reader.readline()
                if b" 200 " not in status:
                    raise RuntimeError(status.decode(errors="replace"))
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - at)
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(OPEN_LOOP_CONNECTIONS)))
    return latencies


def latency(port: int, bodies: list[tuple[str, str]], rate: float) -> tuple[float, float]:
    found = sorted(asyncio.run(_open_loop(port, bodies, rate)))
    return statistics.median(found), found[min(len(found) - 1, int(len(found) * 0.99))]


# --- servers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server did not start")


@contextmanager
def server(command: list[str], env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(command, env=env, cwd=ROOT)
    try:
        wait_ready(port)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=15)


@contextmanager
def database(store: str, workdir: Path) -> Iterator[str]:
    """A fresh demo database URL for the product, dropped afterwards."""
    if store == "sqlite":
        yield f"sqlite:///{workdir}/bench.db"
        return
    import sqlalchemy as sa

    name = f"diaspora_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def profile(pid: int, args: argparse.Namespace, store: str) -> subprocess.Popen[bytes]:
    """py-spy on the product for one wrk run: folded stacks in `--profile`."""
    folded = Path(args.profile) / f"turns-{store}.folded"
    command = [PY_SPY, "record", "--pid", str(pid), "--format", "raw", "--nonblocking"]
    return subprocess.Popen([*command, "--duration", str(args.seconds), "-o", str(folded)])


def measure(store: str, args: argparse.Namespace, workdir: Path) -> None:
    with database(store, workdir) as url:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "LOG_LEVEL": "WARNING",
            "PUBLIC_BASE_URL": PUBLIC,
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_WHATSAPP_FROM": "whatsapp:+14155238886",
            "SIMULATOR_ENABLED": "false",
        }
        cli = [sys.executable, "-m", "api.cli"]
        subprocess.run([*cli, "db", "upgrade"], env=env, check=True, cwd=ROOT)
        subprocess.run([*cli, "seed", "demo"], env=env, check=True, cwd=ROOT)
        bare_port, product_port = free_port(), free_port()
        product_cmd = [*cli, "serve", "--no-worker", "--port", str(product_port)]
        warm = workdir / "warm.lua"
        wrk_script(signed_bodies(90, 400, args.cohort), warm)
        bare_runs: list[Run] = []
        product_runs: list[Run] = []
        bare_cmd = [sys.executable, "-m", "bench.bare_app", "--port", str(bare_port)]
        with server(bare_cmd, env, bare_port), server(product_cmd, env, product_port) as served:
            bare_url = f"http://127.0.0.1:{bare_port}/webhooks/whatsapp"
            product_url = f"http://127.0.0.1:{product_port}/webhooks/whatsapp"
            run_wrk(bare_url, warm, 2, args.connections)
            run_wrk(product_url, warm, 2, args.connections)
            for round_ in range(args.rounds):
                script = workdir / f"round{round_}.lua"
                bodies = signed_bodies(round_, args.citizens, args.cohort)
                wrk_script(bodies, script)
                bare_runs.append(run_wrk(bare_url, script, args.seconds, args.connections))
                spy = profile(served.pid, args, store) if args.profile and round_ == 0 else None
                product = run_wrk(product_url, script, args.seconds, args.connections)
                if spy is not None:
                    spy.wait(timeout=30)
                if product.requests > len(bodies):
                    raise RuntimeError("the product ran out of fresh messages: raise --citizens")
                product_runs.append(product)
            bare_rate = statistics.mean(r.rate for r in bare_runs)
            product_rate = statistics.mean(r.rate for r in product_runs)
            fixed = product_rate * args.rate
            count = max(100, int(fixed * args.latency_seconds))
            bare_p50, bare_p99 = latency(bare_port, fresh(50, count, args.cohort), fixed)
            product_p50, product_p99 = latency(product_port, fresh(51, count, args.cohort), fixed)
    print(f"--- {store}: {args.citizens} citizens a round, {len(WALK)} turns each")
    print("bare app   " + "  ".join(f"{r.rate:7.0f}" for r in bare_runs) + "  req/s")
    print("product    " + "  ".join(f"{r.rate:7.0f}" for r in product_runs) + "  turns/s")
    print(
        f"at {fixed:.0f}/s (x{args.rate} of the product's throughput): bare p50 "
        f"{bare_p50 * 1000:.1f} ms p99 {bare_p99 * 1000:.1f} ms; product p50 "
        f"{product_p50 * 1000:.1f} ms p99 {product_p99 * 1000:.1f} ms"
    )
    bar = 0.5 if store == "sqlite" else 0.35
    print(
        f"turn ratio {product_rate / bare_rate:.2f} on {store} (product {product_rate:.0f} "
        f"turns/s, bare {bare_rate:.0f} req/s; DESIGN.md bar >= {bar:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--citizens", type=int, default=10000, help="citizens per round")
    parser.add_argument("--cohort", type=int, default=100)
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--rate", type=float, default=0.5, help="fixed rate, x throughput")
    parser.add_argument("--latency-seconds", type=float, default=5.0)
    parser.add_argument("--profile", help="a folder for py-spy flame graphs of the product")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    if args.profile and not Path(PY_SPY).exists():
        sys.exit("py-spy is needed for --profile: pip install py-spy")
    stores = ("sqlite", "postgres") if args.store == "both" else (args.store,)
    with tempfile.TemporaryDirectory() as tmp:
        for store in stores:
            measure(store, args, Path(tmp))


if __name__ == "__main__":
    main()
