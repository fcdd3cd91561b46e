"""The production topology of compose.yaml, started as processes on this machine.

PostgreSQL (a fresh database on the machine's server, reached through a TCP proxy that a test
can cut, as a restart or a failover would), a Redis server of the test's own on a free port
(never the machine's shared one), `diaspora-bot db upgrade` once, two `diaspora-bot serve
--no-worker` on two ports (reached in turn by a round-robin client, as behind Caddy), two
`diaspora-bot worker` with stable `WORKER_ID`s, and the fake Twilio and Telegram servers.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from api import db
from api.models import ChannelIdentity, Citizen, OutboxMessage
from tests.conftest import POSTGRES_ADMIN_URL
from tests.fakes import FakeTelegramAPI, FakeTwilioAPI
from tests.fakes.twilio_api import inbound_whatsapp_form, twilio_signature

PUBLIC_BASE_URL = "https://diaspora.test"
TELEGRAM_SECRET = "topology-secret"
TOKEN = "123456:TOPOLOGY"
SENDER = "whatsapp:+14155238886"
WHATSAPP_LIMIT = 40
TELEGRAM_LIMIT = 20
STARTUP = 90.0  # seconds a process may take to come up on a loaded machine

citizen_t = cast(sa.Table, sa.inspect(Citizen).local_table)
identity_t = cast(sa.Table, sa.inspect(ChannelIdentity).local_table)
outbox_t = cast(sa.Table, sa.inspect(OutboxMessage).local_table)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, condition: Callable[[], bool], timeout: float, every: float = 0.1) -> None:
    """Until `condition()` holds; a generous deadline, never a timed assertion."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


def command() -> list[str]:
    script = Path(sys.executable).with_name("diaspora-bot")
    if script.exists():
        return [str(script)]
    found = shutil.which("diaspora-bot")
    return [found] if found else [sys.executable, "-m", "api.cli"]


# -- PostgreSQL behind a proxy that can be cut ----------------------------------------------------


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target`. `cut()` drops every connection and refuses new
    ones (to the clients, the server went away, as during a restart); `restore()` listens
    again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.cuts = 0
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._thread.start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                self._close(s)

    def _close(self, s: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(s)
        with suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        s.close()

    def cut(self) -> None:
        self.cuts += 1
        if self._listener is not None:
            # shutdown wakes the accept() blocked in the other thread (close alone does not)
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            live = list(self._sockets)
        for s in live:
            self._close(s)

    def restore(self) -> None:
        self.start()

    @property
    def is_cut(self) -> bool:
        return self._listener is None

    def stop(self) -> None:
        self.cut()


# -- Redis of the test's own ----------------------------------------------------------------------


class RedisServer:
    """`redis-server` on a free port, keeping nothing on disk; stop and start it at will."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.starts += 1
        log = (self.directory / f"redis-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_for("redis-server", self.answers, STARTUP)
        return self

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None


# -- the application's processes ------------------------------------------------------------------


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def text(self) -> str:
        return self.log.read_text(errors="replace")


class RoundRobin:
    """The load balancer's part: each request to the next web process in turn."""

    def __init__(self, bases: list[str]) -> None:
        self.clients = [httpx.Client(base_url=b, timeout=30) for b in bases]
        self._next = itertools.cycle(range(len(bases)))
        self._lock = threading.Lock()
        self.used: Counter[int] = Counter()

    def pick(self) -> httpx.Client:
        with self._lock:
            index = next(self._next)
            self.used[index] += 1
        return self.clients[index]

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.pick().request(method, path, **kw)

    def close(self) -> None:
        for client in self.clients:
            client.close()


@dataclass
class Topology:
    root: Path
    admin: Engine  # direct to PostgreSQL, for the test's own reads
    proxy: TcpProxy
    redis: RedisServer
    twilio: FakeTwilioAPI
    telegram: FakeTelegramAPI
    database_url: str  # through the proxy, as the processes see it
    server: Engine | None = None  # the server's maintenance database, AUTOCOMMIT
    database: str = ""
    web_ports: list[int] = field(default_factory=list)
    processes: dict[str, Process] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=dict)  # the workers' METRICS_PORT
    lb: RoundRobin | None = None
    token: str = ""

    # -- the database going away -------------------------------------------------------------

    @contextmanager
    def database_restarting(self) -> Iterator[None]:
        """The server's side of a restart, for this database alone (the machine's server is
        shared): every session of it terminated by the server, new ones refused, until the
        block ends."""
        assert self.server is not None
        with self.server.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS false')
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{self.database}' AND pid <> pg_backend_pid()"
            )
        try:
            yield
        finally:
            with self.server.connect() as conn:
                conn.exec_driver_sql(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS true')

    @contextmanager
    def network_cut(self) -> Iterator[None]:
        """The clients' side: every connection to PostgreSQL dropped, new ones refused."""
        self.proxy.cut()
        try:
            yield
        finally:
            self.proxy.restore()

    # -- processes ----------------------------------------------------------------------------

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(
                ("DATABASE_", "TWILIO_", "TELEGRAM_", "REDIS_", "WHATSAPP_", "WORKER_", "LOG_")
            )
            and k not in {"SIMULATOR_CLOCK", "SIMULATOR_ENABLED", "PUBLIC_BASE_URL"}
        }
        env.update(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis.url,
            PUBLIC_BASE_URL=PUBLIC_BASE_URL,
            TWILIO_ACCOUNT_SID=self.twilio.account_sid,
            TWILIO_AUTH_TOKEN=self.twilio.auth_token,
            TWILIO_WHATSAPP_FROM=SENDER,
            TWILIO_API_BASE_URL=self.twilio.base_url,
            TELEGRAM_BOT_TOKEN=self.telegram.token,
            TELEGRAM_WEBHOOK_SECRET=TELEGRAM_SECRET,
            TELEGRAM_API_BASE_URL=self.telegram.url,
            WHATSAPP_RATE_PER_SECOND=str(WHATSAPP_LIMIT),
            TELEGRAM_RATE_PER_SECOND=str(TELEGRAM_LIMIT),
            WORKER_COUNT="2",
            OUTBOX_LEASE_SECONDS="300",
            SIMULATOR_ENABLED="false",
            LOG_LEVEL="INFO",
            LOG_FORMAT="json",
            PTB_TIMEDELTA="true",
        )
        env.update(extra)
        return env

    def run(self, *args: str) -> str:
        """A one-shot command (the migration job, `staff token`…); its standard output."""
        done = subprocess.run(
            [*command(), *args],
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            timeout=STARTUP,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        return done.stdout.decode().strip()

    def start(self, name: str, *args: str, **env: str) -> Process:
        old = self.processes.get(name)
        assert old is None or not old.alive(), f"{name} runs already"
        log = self.root / f"{name}.{int(time.monotonic() * 1000)}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [*command(), *args],
                cwd=self.root,
                env=self.env(**env),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        process = Process(name, popen, log)
        self.processes[name] = process
        return process

    def start_web(self, index: int) -> Process:
        port = self.web_ports[index]
        process = self.start(f"web-{index + 1}", "serve", "--port", str(port), "--no-worker")
        wait_for(f"web-{index + 1}", lambda: self.ready(port), STARTUP, every=0.25)
        return process

    def start_worker(self, index: int) -> Process:
        name = f"worker-{index + 1}"
        port = self.metrics_ports.setdefault(name, free_port())
        process = self.start(name, "worker", WORKER_ID=name, METRICS_PORT=str(port))
        wait_for(name, lambda: "started" in process.text() or not process.alive(), STARTUP)
        assert process.alive(), process.text()
        return process

    def ready(self, port: int) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def readiness(self) -> list[int]:
        """/readyz of each web process: 200 or 503."""
        return [
            httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=30).status_code
            for port in self.web_ports
        ]

    def kill(self, name: str) -> None:
        process = self.processes[name]
        process.popen.send_signal(signal.SIGKILL)
        process.popen.wait(timeout=30)

    def check_alive(self) -> None:
        for process in self.processes.values():
            if not process.alive() and process.popen.returncode not in (-signal.SIGKILL,):
                raise AssertionError(f"{process.name} died:\n{process.text()[-4000:]}")

    def stop(self) -> None:
        live = [p for p in self.processes.values() if p.alive()]
        for process in live:
            process.popen.send_signal(signal.SIGTERM)
        for process in live:
            try:
                process.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait(timeout=10)
        if self.lb is not None:
            self.lb.close()

    def logs(self) -> list[str]:
        """Every line every process wrote."""
        lines: list[str] = []
        for path in sorted(self.root.glob("*.log")):
            if not path.name.startswith("redis"):
                lines.extend(path.read_text(errors="replace").splitlines())
        return lines

    # -- the outside world --------------------------------------------------------------------

    @property
    def balancer(self) -> RoundRobin:
        assert self.lb is not None
        return self.lb

    def whatsapp(self, phone: str, text: str, *, sid: str | None = None) -> httpx.Response:
        """A signed Twilio webhook, to the next web process."""
        form = inbound_whatsapp_form(
            phone, text, message_sid=sid, account_sid=self.twilio.account_sid
        )
        signature = twilio_signature(
            self.twilio.auth_token, f"{PUBLIC_BASE_URL}/webhooks/whatsapp", form
        )
        return self.balancer.request(
            "POST", "/webhooks/whatsapp", data=form, headers={"X-Twilio-Signature": signature}
        )

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return self.balancer.request(method, f"/api/v1{path}", headers=headers, **kw)


def twiml_bodies(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    root = ET.fromstring(response.text)
    return [m.findtext("Body") or (m.text or "") for m in root.iter("Message")]


class WhatsAppCitizen:
    """A citizen on WhatsApp whose every message may land on any web process."""

    def __init__(self, topology: Topology, phone: str) -> None:
        self.topology = topology
        self.phone = phone
        self.answers: list[str] = []

    def send(self, text: str) -> str:
        bodies = twiml_bodies(self.topology.whatsapp(self.phone, text))
        self.answers.append("\n\n".join(bodies))
        return self.answers[-1]


class PatientCitizen(WhatsAppCitizen):
    """Delivered as Twilio would with retries on the webhook (`#rc=`): a message answered 503
    is posted again, same MessageSid, until it is answered. `before_each` runs before every
    message (a test holds the walk there while it takes the database away)."""

    def __init__(
        self, topology: Topology, phone: str, before_each: Callable[[], None] | None = None
    ) -> None:
        super().__init__(topology, phone)
        self.before_each = before_each
        self.refused = 0  # 503s seen
        self.sent = 0
        self.waiting = False  # held in `before_each`, no message under way

    def send(self, text: str) -> str:
        if self.before_each is not None:
            self.waiting = True
            self.before_each()
            self.waiting = False
        sid = f"SM{uuid.uuid4().hex}"
        deadline = time.monotonic() + STARTUP * 2
        while True:
            response = self.topology.whatsapp(self.phone, text, sid=sid)
            if response.status_code != 503:
                break
            self.refused += 1
            assert time.monotonic() < deadline, "the webhook never answered again"
            time.sleep(0.2)
        self.sent += 1
        self.answers.append("\n\n".join(twiml_bodies(response)))
        return self.answers[-1]


class TelegramCitizen:
    """A citizen on Telegram: Updates to the webhooks, answers sent by the workers."""

    _ids = itertools.count(1)

    def __init__(self, topology: Topology, user_id: int) -> None:
        self.topology = topology
        self.user_id = user_id

    def send(self, text: str, *, timeout: float = 60) -> str:
        fake = self.topology.telegram
        before = len(fake.sent_messages(chat_id=self.user_id))
        response = self.deliver(text, 50_000 + next(self._ids))
        assert response.status_code == 200, response.text
        fake.wait_for(
            lambda _c: len(fake.sent_messages(chat_id=self.user_id)) > before, timeout=timeout
        )
        time.sleep(0.3)  # a long answer may come as several messages
        return "\n\n".join(
            str(m["text"]) for m in fake.sent_messages(chat_id=self.user_id)[before:]
        )

    def deliver(self, text: str, update_id: int) -> httpx.Response:
        """Telegram posting one Update (again, when it retries) to the next web process."""
        n = next(self._ids)
        user = {"id": self.user_id, "is_bot": False, "first_name": "Test"}
        update = {
            "update_id": update_id,
            "message": {
                "message_id": n,
                "date": int(time.time()),
                "chat": {"id": self.user_id, "type": "private", "first_name": "Test"},
                "from": user,
                "text": text,
            },
        }
        return self.topology.balancer.request(
            "POST",
            "/webhooks/telegram",
            json=update,
            headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET},
        )


def book(
    citizen: WhatsAppCitizen | TelegramCitizen, service: int, name: str, *, time_choice: int = 1
) -> str:
    """Walk the booking conversation to its confirmation question; return that question."""
    citizen.send("Bonjour")  # French greeting: the language menu
    citizen.send("1")  # Français: the main menu
    citizen.send("1")  # book an appointment: the posts, those of the phone's country first
    citizen.send("1")  # the first post
    citizen.send(str(service))
    citizen.send("1")  # the first open day
    citizen.send(str(time_choice))  # the first open time, or a later one
    return citizen.send(name)


@contextmanager
def started(root: Path, *, workers: int = 2, webs: int = 2) -> Iterator[Topology]:
    """The whole topology, up; stopped and its database dropped afterwards."""
    name = f"diaspora_topo_{uuid.uuid4().hex[:10]}"
    admin_url = make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+psycopg")
    server = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    target = (admin_url.host or "127.0.0.1", admin_url.port or 5432)
    proxy = TcpProxy(target).start()
    redis = RedisServer(root).start()
    direct = db.create_engine(admin_url.set(database=name))
    through_proxy = make_url(POSTGRES_ADMIN_URL).set(
        drivername="postgresql", host="127.0.0.1", port=proxy.port, database=name
    )
    try:
        with (
            FakeTwilioAPI(rate_limit_per_second=WHATSAPP_LIMIT) as twilio,
            FakeTelegramAPI(token=TOKEN, rate_limit_per_second=TELEGRAM_LIMIT) as telegram,
        ):
            topology = Topology(
                root=root,
                admin=direct,
                proxy=proxy,
                redis=redis,
                twilio=twilio,
                telegram=telegram,
                database_url=through_proxy.render_as_string(hide_password=False),
                server=server,
                database=name,
                web_ports=[free_port() for _ in range(webs)],
            )
            try:
                topology.run("db", "upgrade")  # the one-shot migration job
                topology.run("seed", "demo")
                topology.run("staff", "add", "ops@mae.bf", "--role", "admin")
                topology.token = topology.run("staff", "token", "ops@mae.bf")
                for index in range(webs):
                    topology.start_web(index)
                for index in range(workers):
                    topology.start_worker(index)
                topology.lb = RoundRobin([f"http://127.0.0.1:{p}" for p in topology.web_ports])
                yield topology
            finally:
                topology.stop()
    finally:
        direct.dispose()
        redis.stop()
        proxy.stop()
        with server.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        server.dispose()


# -- broadcasts -----------------------------------------------------------------------------------


def audience(
    engine: Engine, country: str, prefix: str, whatsapp: int, telegram: int, first_chat: int
) -> tuple[list[str], list[str]]:
    """Citizens of `country` who wrote an hour ago (inside WhatsApp's window)."""
    wrote = datetime.now(UTC) - timedelta(hours=1)
    phones = [f"{prefix}{n:07d}" for n in range(1, whatsapp + 1)]
    chats = [str(first_chat + n) for n in range(1, telegram + 1)]
    with db.write(engine) as conn:
        for channel, addresses in (("whatsapp", phones), ("telegram", chats)):
            for address in addresses:
                cid = conn.execute(
                    sa.insert(citizen_t)
                    .values(country=country, lang="fr", created_at=wrote)
                    .returning(citizen_t.c.id)
                ).scalar_one()
                conn.execute(
                    sa.insert(identity_t).values(
                        channel=channel, address=address, citizen_id=cid, last_inbound_at=wrote
                    )
                )
    return phones, chats


def broadcast(topology: Topology, country: str, text: str) -> int:
    """Compose and send now through the staff API (any web process)."""
    created = topology.api(
        "POST",
        "/broadcasts",
        json={
            "title": f"Annonce {country}",
            "texts": {"fr": text},
            "segment": {"countries": [country]},
        },
    )
    assert created.status_code == 201, created.text
    broadcast_id = int(created.json()["id"])
    sent = topology.api("POST", f"/broadcasts/{broadcast_id}/send")
    assert sent.status_code in (200, 202), sent.text
    return broadcast_id


def served(engine: Engine, broadcast_id: int, total: int) -> bool:
    """Every row of the broadcast written and out of the outbox's hands."""
    with db.read(engine) as conn:
        written = conn.execute(
            sa.select(sa.func.count())
            .select_from(outbox_t)
            .where(outbox_t.c.broadcast_id == broadcast_id)
        ).scalar_one()
        left = conn.execute(
            sa.select(sa.func.count())
            .select_from(outbox_t)
            .where(outbox_t.c.broadcast_id == broadcast_id)
            .where(outbox_t.c.status.in_(("pending", "sending")))
        ).scalar_one()
    return bool(written == total and left == 0)


def wait_served(topology: Topology, broadcast_id: int, total: int, timeout: float) -> None:
    """Until the broadcast has left the outbox; fails at once if a process died."""
    wait_for(
        "the broadcast",
        lambda: topology.check_alive() or served(topology.admin, broadcast_id, total),
        timeout=timeout,
        every=0.25,
    )


def sent_to(fake: Any, method: str, key: str, text: str) -> Counter[str]:
    """Successful calls carrying `text`, per recipient."""
    body = "Body" if method == "messages.create" else "text"
    return Counter(
        str(c.params.get(key)).removeprefix("whatsapp:")
        for c in list(fake.calls)
        if c.method == method and c.ok and text in str(c.params.get(body, ""))
    )


def json_lines(lines: list[str]) -> list[dict[str, Any]]:
    found = []
    for line in lines:
        if line.startswith("{"):
            found.append(json.loads(line))
    return found
