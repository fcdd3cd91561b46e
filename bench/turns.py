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
            bare2 = run_wrk(f"{base}/bench/bare", BARE_LUA, args.seconds, args.connections, workdir)
        finally:
            server.terminate()
            server.wait(timeout=10)
    baseline = (bare1 + bare2) / 2
    print(f"bare endpoint        {bare1:8.0f} req/s, then {bare2:8.0f} req/s")
    print(f"simulator turns      {turns:8.0f} turns/s")
    print(f"ratio turns / bare   {turns / baseline:8.2f}   (DESIGN.md bar: >= 0.50)")


if __name__ == "__main__":
    main()
