"""Conversation turns per second through HTTP, against a bare FastAPI endpoint, side by side.

    .venv/bin/python -m bench.turns [--seconds 10] [--connections 32]

Starts one uvicorn worker (SQLite demo database in a temporary folder) and loads it with wrk
(Debian package `wrk`): first the bare endpoint (a form post answered with fixed TwiML), then
the simulator endpoint running whole turns (state load, flow, booking queries, state save),
then the bare endpoint again; prints requests per second and the ratio to the mean baseline.
DESIGN.md's bar: a whole turn keeps at least half the bare throughput.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BARE_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "From=whatsapp%3A%2B2250701000001&Body=1&MessageSid=SM0"
"""

# Each connection is a citizen going round the menu: "1" (book → posts), "1" (→ services),
# "0" (→ main menu), over and over; 500 distinct citizens.
TURNS_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local texts = {"1", "1", "0"}
local n = 0
request = function()
  n = n + 1
  local user = "bench-" .. (n % 500)
  local text = texts[(math.floor(n / 500) % 3) + 1]
  return wrk.format(nil, nil, nil,
    '{"user":"' .. user .. '","text":"' .. text .. '","phone":"+2250701000001"}')
end
"""


PUBLIC = "https://bench.example"
AUTH_TOKEN = "bench-auth-token"


def whatsapp_lua(count: int) -> str:
    """`count` signed Twilio form posts, each with its own MessageSid (else dedupe would
    answer them), from 500 citizens going round the menu like the simulator load."""
    from urllib.parse import urlencode

    from twilio.request_validator import RequestValidator

    validator = RequestValidator(AUTH_TOKEN)
    texts = ("1", "1", "0")
    lines = []
    for n in range(count):
        phone = f"+22507{(n % 500):08d}"
        form = {
            "From": f"whatsapp:{phone}",
            "To": "whatsapp:+14155238886",
            "Body": texts[(n // 500) % 3],
            "MessageSid": f"SM{n:032x}",
            "AccountSid": "AC" + "0" * 32,
            "WaId": phone[1:],
            "ProfileName": "Bench",
            "NumMedia": "0",
        }
        signature = validator.compute_signature(f"{PUBLIC}/webhooks/whatsapp", form)
        lines.append(f'{{"{urlencode(form)}", "{signature}"}},')
    return (
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
        "local bodies = {\n" + "\n".join(lines) + "\n}\n"
        "local n = 0\n"
        "request = function()\n"
        "  n = n + 1\n"
        "  local b = bodies[((n - 1) % #bodies) + 1]\n"
        '  wrk.headers["X-Twilio-Signature"] = b[2]\n'
        "  return wrk.format(nil, nil, nil, b[1])\n"
        "end\n"
    )


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


def run_wrk(url: str, lua: str, seconds: int, connections: int, workdir: Path) -> float:
    script = workdir / f"s{abs(hash(lua))}.lua"
    script.write_text(lua)
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{errors.group(1)} failed requests:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise RuntimeError(out)
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--whatsapp-bodies",
        type=int,
        default=60_000,
        help="distinct signed posts for the WhatsApp run (more than it can send in --seconds)",
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{workdir}/bench.db",
            "SIMULATOR_ENABLED": "true",
            "LOG_LEVEL": "WARNING",
            "PUBLIC_BASE_URL": PUBLIC,
            "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_WHATSAPP_FROM": "whatsapp:+14155238886",
        }
        cli = [sys.executable, "-m", "api.cli"]
        subprocess.run([*cli, "db", "upgrade"], env=env, check=True, cwd=ROOT)
        subprocess.run([*cli, "seed", "demo"], env=env, check=True, cwd=ROOT)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "bench.server", "--port", str(port)], env=env, cwd=ROOT
        )
        try:
            wait_ready(port)
            base = f"http://127.0.0.1:{port}"
            run_wrk(f"{base}/bench/bare", BARE_LUA, 2, args.connections, workdir)  # warm up
            bare1 = run_wrk(f"{base}/bench/bare", BARE_LUA, args.seconds, args.connections, workdir)
            turns = run_wrk(
                f"{base}/api/v1/simulator/messages",
                TURNS_LUA,
                args.seconds,
                args.connections,
                workdir,
            )
            lua = whatsapp_lua(args.whatsapp_bodies)
            whatsapp = run_wrk(
                f"{base}/webhooks/whatsapp", lua, args.seconds, args.connections, workdir
            )
            bare2 = run_wrk(f"{base}/bench/bare", BARE_LUA, args.seconds, args.connections, workdir)
        finally:
            server.terminate()
            server.wait(timeout=10)
    baseline = (bare1 + bare2) / 2
    print(f"bare endpoint        {bare1:8.0f} req/s, then {bare2:8.0f} req/s")
    print(f"simulator turns      {turns:8.0f} turns/s   ratio {turns / baseline:5.2f}")
    print(
        f"WhatsApp webhook     {whatsapp:8.0f} turns/s   ratio {whatsapp / baseline:5.2f}"
        "   (signature, dedupe, state, flow, save, TwiML; DESIGN.md bar: >= 0.50)"
    )


if __name__ == "__main__":
    main()
