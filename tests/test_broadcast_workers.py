"""Broadcasts across real `diaspora-bot worker` processes, on PostgreSQL and Redis.

Two workers share one broadcast: both run the scheduler's clock (a second clock must do no
harm), both claim outbox rows (`FOR UPDATE SKIP LOCKED`) and both take their sending slots
from one Redis schedule. The fake providers (tests.fakes) count the calls per recipient, hold
their own rate limit and count the 429s they answer. Then a worker is SIGKILLed in the middle
of a broadcast and restarted: everybody still gets the announcement exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from api import db
from api.domain import broadcast_delivery, broadcasts
from api.models import ChannelIdentity, Citizen, OutboxMessage
from api.seed import seed_demo
from tests.conftest import _engine_for, empty_tables
from tests.fakes import FakeTelegramAPI, FakeTwilioAPI
from tests.support.topology import command

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

TOKEN = "123456:WORKERS"
SENDER = "whatsapp:+14155238886"
REDIS_DB_URL = "redis://127.0.0.1:6379/7"  # a database of its own: our keys only
WHATSAPP_LIMIT = 40
TELEGRAM_LIMIT = 20

citizen_t = cast(sa.Table, sa.inspect(Citizen).local_table)
identity_t = cast(sa.Table, sa.inspect(ChannelIdentity).local_table)
outbox_t = cast(sa.Table, sa.inspect(OutboxMessage).local_table)


@pytest.fixture
def pg(request: pytest.FixtureRequest, _migrated: dict[str, Engine]) -> Engine:
    engine = _engine_for("postgres", request, _migrated)
    empty_tables(engine)
    seed_demo(engine)
    return engine


@pytest.fixture
def redis_url() -> Iterator[str]:
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_DB_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    client.flushdb()
    yield REDIS_DB_URL
    client.flushdb()
    client.close()


def audience(engine: Engine, whatsapp: int, telegram: int) -> tuple[list[str], list[str]]:
    """Citizens in Côte d'Ivoire who wrote an hour ago (inside WhatsApp's window)."""
    wrote = datetime.now(UTC) - timedelta(hours=1)
    phones = [f"+22507{n:08d}" for n in range(1, whatsapp + 1)]
    chats = [str(7_000_000 + n) for n in range(1, telegram + 1)]
    with db.write(engine) as conn:
        for channel, addresses in (("whatsapp", phones), ("telegram", chats)):
            for address in addresses:
                cid = conn.execute(
                    sa.insert(citizen_t)
                    .values(country="CI", lang="fr", created_at=wrote)
                    .returning(citizen_t.c.id)
                ).scalar_one()
                conn.execute(
                    sa.insert(identity_t).values(
                        channel=channel, address=address, citizen_id=cid, last_inbound_at=wrote
                    )
                )
    return phones, chats


def send_now(engine: Engine) -> int:
    now = datetime.now(UTC)
    with db.write(engine) as conn:
        record = broadcasts.create(
            conn,
            title="Mission consulaire",
            texts={"fr": "Mission consulaire à Bouaké le 12 décembre."},
            segment=broadcasts.Segment(posts=["ABJ", "BKE"]),
            created_by=None,
            now=now,
        )
        broadcasts.schedule(conn, record.id, None, now)
    return record.id


class Workers:
    """`diaspora-bot worker` processes pointed at the fakes, PostgreSQL and Redis."""

    def __init__(
        self, engine: Engine, redis_url: str, tw: FakeTwilioAPI, tg: FakeTelegramAPI, cwd: Path
    ) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DATABASE_", "TWILIO_", "TELEGRAM_", "REDIS_", "WHATSAPP_"))
        }
        env.update(
            DATABASE_URL=engine.url.render_as_string(hide_password=False),
            REDIS_URL=redis_url,
            TWILIO_ACCOUNT_SID=tw.account_sid,
            TWILIO_AUTH_TOKEN=tw.auth_token,
            TWILIO_WHATSAPP_FROM=SENDER,
            TWILIO_API_BASE_URL=tw.base_url,
            TELEGRAM_BOT_TOKEN=tg.token,
            TELEGRAM_API_BASE_URL=tg.url,
            WHATSAPP_RATE_PER_SECOND=str(WHATSAPP_LIMIT),
            TELEGRAM_RATE_PER_SECOND=str(TELEGRAM_LIMIT),
            SIMULATOR_ENABLED="false",
            LOG_LEVEL="WARNING",
            PTB_TIMEDELTA="true",
        )
        self.env = env
        self.cwd = cwd
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = (self.cwd / f"worker-{len(self.processes)}.log").open("wb")
        process = subprocess.Popen(
            [*command(), "worker"],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        log.close()
        self.processes.append(process)
        return process

    def check_alive(self) -> None:
        for index, process in enumerate(self.processes):
            if process.returncode is None and process.poll() is not None:
                log = (self.cwd / f"worker-{index}.log").read_text(errors="replace")
                raise AssertionError(f"worker {index} died ({process.returncode}):\n{log}")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture
def fakes() -> Iterator[tuple[FakeTwilioAPI, FakeTelegramAPI]]:
    with (
        FakeTwilioAPI(rate_limit_per_second=WHATSAPP_LIMIT) as tw,
        FakeTelegramAPI(token=TOKEN, rate_limit_per_second=TELEGRAM_LIMIT) as tg,
    ):
        yield tw, tg


@pytest.fixture
def workers(
    pg: Engine,
    redis_url: str,
    fakes: tuple[FakeTwilioAPI, FakeTelegramAPI],
    tmp_path: Path,
) -> Iterator[Workers]:
    tw, tg = fakes
    group = Workers(pg, redis_url, tw, tg, tmp_path)
    try:
        yield group
    finally:
        group.stop()


def sent_to(fake: Any, method: str, key: str) -> Counter[str]:
    """Successful calls per recipient."""
    return Counter(
        str(c.params.get(key)).removeprefix("whatsapp:")
        for c in list(fake.calls)
        if c.method == method and c.ok
    )


def wait_until_everyone_is_served(
    engine: Engine, broadcast_id: int, total: int, workers: Workers, timeout: float
) -> None:
    """Until the broadcast's rows have all left the outbox (sent, or anything final)."""
    deadline = time.monotonic() + timeout
    left = (
        sa.select(sa.func.count())
        .select_from(outbox_t)
        .where(outbox_t.c.broadcast_id == broadcast_id)
        .where(outbox_t.c.status.in_(("pending", "sending")))
    )
    written = (
        sa.select(sa.func.count())
        .select_from(outbox_t)
        .where(outbox_t.c.broadcast_id == broadcast_id)
    )
    while True:
        workers.check_alive()
        with db.read(engine) as conn:
            if conn.execute(written).scalar_one() == total and conn.execute(left).scalar_one() == 0:
                return
        assert time.monotonic() < deadline, "the broadcast did not go out in time"
        time.sleep(0.2)


def achieved_rate(fake: Any, method: str) -> float:
    times = [c.time for c in fake.calls if c.method == method and c.ok]
    return float((len(times) - 1) / (times[-1] - times[0]))


def test_two_workers_send_each_recipient_once_within_the_shared_limit(
    pg: Engine, workers: Workers, fakes: tuple[FakeTwilioAPI, FakeTelegramAPI]
) -> None:
    tw, tg = fakes
    phones, chats = audience(pg, whatsapp=300, telegram=100)
    broadcast_id = send_now(pg)
    workers.start()
    workers.start()

    wait_until_everyone_is_served(pg, broadcast_id, 400, workers, timeout=90)
    time.sleep(1.0)  # anything sent twice would arrive now

    assert sent_to(tw, "messages.create", "To") == Counter(dict.fromkeys(phones, 1))
    assert sent_to(tg, "sendMessage", "chat_id") == Counter(dict.fromkeys(chats, 1))
    assert tw.count_429 == 0
    assert tg.count_429 == 0
    assert tw.max_per_second("messages.create") <= WHATSAPP_LIMIT
    assert tg.max_per_second("sendMessage") <= TELEGRAM_LIMIT
    assert achieved_rate(tw, "messages.create") <= WHATSAPP_LIMIT
    assert achieved_rate(tg, "sendMessage") <= TELEGRAM_LIMIT
    with db.read(pg) as conn:
        statuses = Counter(
            conn.execute(
                sa.select(outbox_t.c.status).where(outbox_t.c.broadcast_id == broadcast_id)
            ).scalars()
        )
        stats = broadcast_delivery.stats(conn, broadcast_id)
    assert statuses == {"sent": 400}
    assert (stats.status, stats.queued, stats.sent, stats.pending) == ("sent", 400, 400, 0)


def test_a_worker_killed_mid_broadcast_and_restarted_sends_everyone_exactly_once(
    pg: Engine, workers: Workers, fakes: tuple[FakeTwilioAPI, FakeTelegramAPI]
) -> None:
    tw, tg = fakes
    phones, chats = audience(pg, whatsapp=300, telegram=60)
    broadcast_id = send_now(pg)
    victim = workers.start()
    survivor = workers.start()

    # Mid-broadcast: a few seconds into sending at 40/s, when about a third has gone out.
    tw.wait_for(lambda calls: any(c.method == "messages.create" for c in calls), timeout=30)
    time.sleep(2.5)
    workers.check_alive()
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    sent_before = sum(sent_to(tw, "messages.create", "To").values())
    assert 0 < sent_before < len(phones)

    # The dead worker's claims are held until their lease (5 minutes) runs out: let it run out
    # now rather than wait, by ageing those claims; the restarted worker reclaims them.
    with db.write(pg) as conn:
        held_chats = {
            str(address)
            for address in conn.execute(
                sa.select(outbox_t.c.address)
                .where(outbox_t.c.status == "sending")
                .where(outbox_t.c.channel == "telegram")
                .where(outbox_t.c.claimed_by.like(f"%-{victim.pid}-%"))
            ).scalars()
        }
        aged = conn.execute(
            sa.update(outbox_t)
            .where(outbox_t.c.status == "sending")
            .where(outbox_t.c.claimed_by.like(f"%-{victim.pid}-%"))
            .values(claimed_at=datetime.now(UTC) - timedelta(minutes=10))
        ).rowcount
    workers.start()

    wait_until_everyone_is_served(pg, broadcast_id, 360, workers, timeout=120)
    time.sleep(1.0)
    assert survivor.poll() is None

    per_phone = sent_to(tw, "messages.create", "To")
    twice = sorted(phone for phone, n in per_phone.items() if n > 1)
    assert twice == [], f"sent twice after the kill ({aged} claims were held): {twice}"
    assert per_phone == Counter(dict.fromkeys(phones, 1))
    # Telegram cannot be asked what a bot already sent: a message in flight at the kill may
    # go twice (documented in bot/outbox.py); nothing else may, and nobody is missed.
    per_chat = sent_to(tg, "sendMessage", "chat_id")
    assert set(per_chat) == set(chats)
    doubled = {str(chat) for chat, n in per_chat.items() if n > 1}
    assert doubled <= held_chats, (
        f"sent twice without having been in flight: {doubled - held_chats}"
    )
    assert all(n <= 2 for n in per_chat.values())
    with db.read(pg) as conn:
        stats = broadcast_delivery.stats(conn, broadcast_id)
    assert (stats.sent, stats.pending, stats.failed) == (360, 0, 0)
