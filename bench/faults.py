"""The production topology under faults, measured (by hand, never in the suite):

    .venv/bin/python -m bench.faults [--outage 8]

Starts the topology of tests/support/topology.py (two `serve --no-worker`, two `worker`,
PostgreSQL behind a TCP proxy, a Redis of its own, fake providers limited to 40/s WhatsApp and
20/s Telegram) and, one broadcast each:
- no fault: the rate achieved by the two workers against the limits;
- Redis stopped for `--outage` seconds mid-broadcast: the rate while it is away (each worker on
  its half of the limits), the most in any second, 429s;
- PostgreSQL cut for `--outage` seconds: how long after it returns until both /readyz say 200
  and sending goes on;
- a worker SIGKILLed and restarted at once under its WORKER_ID: how long until the broadcast
  is done, against the 5-minute lease.
Every scenario ends with each recipient counted: sent once, or the figures say otherwise.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.support.topology import (
    TELEGRAM_LIMIT,
    WHATSAPP_LIMIT,
    Topology,
    audience,
    broadcast,
    sent_to,
    started,
    wait_for,
    wait_served,
)


def _times(fake: Any, method: str, text: str) -> list[float]:
    body = "Body" if method == "messages.create" else "text"
    return sorted(
        c.time
        for c in list(fake.calls)
        if c.method == method and c.ok and text in str(c.params.get(body, ""))
    )


def _rate(times: list[float], start: float, end: float) -> float:
    inside = [t for t in times if start <= t <= end]
    return len(inside) / (end - start) if end > start else 0.0


def _once(topology: Topology, text: str, phones: list[str], chats: list[str]) -> str:
    wa = sent_to(topology.twilio, "messages.create", "To", text)
    tg = sent_to(topology.telegram, "sendMessage", "chat_id", text)
    ok = wa == Counter(dict.fromkeys(phones, 1)) and tg == Counter(dict.fromkeys(chats, 1))
    twice = [sum(1 for n in sent.values() if n > 1) for sent in (wa, tg)]
    missed = len(set(phones) - set(wa)) + len(set(chats) - set(tg))
    if ok:
        return "everyone once"
    return f"twice: {twice[0]} on WhatsApp, {twice[1]} on Telegram; {missed} missed"


def _scenario(topology: Topology, n: int, country: str, prefix: str) -> tuple[Any, ...]:
    text = f"Annonce {country} {time.time_ns()}"
    phones, chats = audience(topology.admin, country, prefix, 300, 60, 8_000_000 + n * 1000)
    return text, phones, chats, broadcast(topology, country, text)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--outage", type=float, default=8.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root, started(Path(root)) as topology:
        tw, tg = topology.twilio, topology.telegram

        text, phones, chats, bid = _scenario(topology, 1, "GH", "+23320")
        wait_served(topology, bid, 360, timeout=300)
        wa = _times(tw, "messages.create", text)
        print(
            f"no fault: WhatsApp {(len(wa) - 1) / (wa[-1] - wa[0]):.1f}/s of {WHATSAPP_LIMIT}, "
            f"most in a second {tw.max_per_second('messages.create')}; "
            f"{_once(topology, text, phones, chats)}"
        )

        text, phones, chats, bid = _scenario(topology, 2, "IT", "+39333")
        wait_for("sending", lambda: len(_times(tw, "messages.create", text)) >= 30, 120)
        topology.redis.stop()
        down = time.monotonic()
        time.sleep(args.outage)
        topology.redis.start()
        up = time.monotonic()
        wait_served(topology, bid, 360, timeout=300)
        wa = _times(tw, "messages.create", text)
        print(
            f"Redis away {up - down:.1f} s: WhatsApp {_rate(wa, down, up):.1f}/s while away "
            f"(2 workers x {WHATSAPP_LIMIT / 2:.0f}/s, minus the quiet times), "
            f"{_rate(wa, up + 4, wa[-1]):.1f}/s after; most in a second "
            f"{tw.max_per_second('messages.create')} (limit {WHATSAPP_LIMIT}), Telegram "
            f"{tg.max_per_second('sendMessage')} (limit {TELEGRAM_LIMIT}); 429s "
            f"{tw.count_429 + tg.count_429}; {_once(topology, text, phones, chats)}"
        )

        text, phones, chats, bid = _scenario(topology, 3, "GA", "+24106")
        wait_for("sending", lambda: len(_times(tw, "messages.create", text)) >= 30, 120)
        topology.proxy.cut()
        time.sleep(args.outage)
        readiness = topology.readiness()
        topology.proxy.restore()
        back = time.monotonic()
        wait_for("ready", lambda: topology.readiness() == [200, 200], 120, every=0.05)
        ready = time.monotonic() - back
        sent = len(_times(tw, "messages.create", text))
        wait_for("sending again", lambda: len(_times(tw, "messages.create", text)) > sent, 120)
        resumed = time.monotonic() - back
        wait_served(topology, bid, 360, timeout=300)
        print(
            f"PostgreSQL cut {args.outage:.0f} s: /readyz {readiness} meanwhile; both ready "
            f"{ready:.2f} s after it returned, sending again after {resumed:.2f} s; "
            f"{_once(topology, text, phones, chats)}"
        )

        text, phones, chats, bid = _scenario(topology, 4, "FR", "+33612")
        wait_for("sending", lambda: len(_times(tw, "messages.create", text)) >= 60, 120)
        topology.kill("worker-1")
        killed = time.monotonic()
        topology.start_worker(0)
        restarted = time.monotonic() - killed
        wait_served(topology, bid, 360, timeout=300)
        done = time.monotonic() - killed
        print(
            f"worker SIGKILLed: restarted in {restarted:.1f} s, broadcast done {done:.1f} s "
            f"after the kill (lease 300 s); {_once(topology, text, phones, chats)}"
        )


if __name__ == "__main__":
    main()
