"""The outbox: written with the change, claimed by workers, sent within the providers' limits,
retried, never lost, never sent against WhatsApp's 24-hour rule.

Real senders (python-telegram-bot, twilio) against the fake providers; both stores.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from api import db
from api.domain.outbox import enqueue_replies, mark_unreachable, notify
from api.domain.outbox_store import SqlOutboxStore
from api.models import Lane
from bot.channels.telegram import TelegramSender
from bot.channels.whatsapp import WhatsAppSender
from bot.i18n import RenderedReply, Renderer
from bot.outbox import (
    Completion,
    OutboxItem,
    Outcome,
    Sender,
    SendResult,
    SentLookup,
)
from bot.outbox_sender import OutboxSender
from bot.rate_limits import LocalRateLimiter, RateLimiter, RedisRateLimiter
from bot.runtime import Outbound
from flows.messages import msg
from tests.fakes import FakeTelegramAPI, FakeTwilioAPI
from tests.support.offline import offline  # noqa: F401  (fixture)
from tests.support.people import (
    add_citizen,
    add_outbox,
    citizen_row,
    identity_row,
    outbox_rows,
)

pytestmark = pytest.mark.usefixtures("offline")

TOKEN = "123456:TEST"
SENDER = "whatsapp:+14155238886"
PHONE = "+2250701000002"
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(autouse=True)
def _ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
def tg() -> Iterator[FakeTelegramAPI]:
    with FakeTelegramAPI(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def tw() -> Iterator[FakeTwilioAPI]:
    with FakeTwilioAPI() as fake:
        yield fake


def whatsapp(tw: FakeTwilioAPI, templates: dict[str, str] | None = None) -> WhatsAppSender:
    return WhatsAppSender.create(
        tw.account_sid, tw.auth_token, SENDER, api_base_url=tw.base_url, templates=templates
    )


class Clock:
    """The sender's clock, moved by hand (back-off is minutes long)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def drain(
    engine: Engine,
    make_senders: Callable[[], Any],
    *,
    clock: Callable[[], datetime] | None = None,
    limiter: RateLimiter | None = None,
    concurrency: int = 16,
    lease: timedelta = timedelta(minutes=5),
    rates: dict[str, float] | None = None,
) -> OutboxSender:
    """Send everything due once, with senders built inside the event loop."""

    async def run() -> OutboxSender:
        made = make_senders()
        senders: Sequence[Sender] = await made if asyncio.iscoroutine(made) else made
        sender = OutboxSender(
            SqlOutboxStore(engine),
            senders,
            limiter or LocalRateLimiter(rates or {}),
            rates=rates,
            concurrency=concurrency,
            lease=lease,
            clock=clock or (lambda: datetime.now(UTC)),
        )
        try:
            await sender.drain()
        finally:
            await sender.close()
        return sender

    return asyncio.run(run())


def telegram_senders(tg: FakeTelegramAPI) -> Callable[[], Any]:
    async def make() -> list[Sender]:
        return [await TelegramSender.connect(tg.token, tg.url)]

    return make


# -- writing ------------------------------------------------------------------------------------


def test_replies_are_queued_in_order_within_each_channels_limit(engine: Engine) -> None:
    long = RenderedReply("\n".join(f"ligne {i} " + "x" * 60 for i in range(80)), ("Oui", "Non"))
    with db.write(engine) as conn:
        enqueue_replies(conn, Outbound("telegram", "42", "fr", (long, RenderedReply("Fin"))))
        enqueue_replies(conn, Outbound("whatsapp", PHONE, "mos", (long,)))
    telegram = outbox_rows(engine, channel="telegram")
    assert [len(r.payload["text"]) <= 4096 for r in telegram] == [True, True, True]
    assert [r.payload["choices"] for r in telegram] == [[], ["Oui", "Non"], []]
    assert telegram[1].payload["text"].endswith("1. Oui\n2. Non")
    assert {(r.lane, r.kind, r.status) for r in telegram} == {(0, "reply", "pending")}
    wa = outbox_rows(engine, channel="whatsapp")
    assert len(wa) == 4
    assert all(len(r.payload["text"]) <= 1600 and r.lang == "mos" for r in wa)


def test_notify_renders_in_the_citizens_language_on_their_last_channel(engine: Engine) -> None:
    now = datetime.now(UTC)
    citizen_id = add_citizen(
        engine,
        lang="en",
        opted_out=True,  # STOP is about announcements: notifications still go
        identities=(
            ("whatsapp", PHONE, now - timedelta(days=3)),
            ("telegram", "4242", now - timedelta(hours=1)),
            ("telegram", "5151", now),  # the latest, but blocked: not this one
            ("simulator", "sim-1", now - timedelta(hours=2)),  # reachable too, but earlier
        ),
    )
    with db.write(engine) as conn:
        conn.execute(
            sa.text("UPDATE channel_identity SET unreachable_at = :now WHERE address = '5151'"),
            {"now": now.replace(tzinfo=None)},
        )
    message = msg("common.error")
    with db.write(engine) as conn:
        first = notify(conn, citizen_id, message, kind="notification", dedupe_key="k:1", now=now)
        again = notify(conn, citizen_id, message, kind="notification", dedupe_key="k:1", now=now)
    (row,) = outbox_rows(engine)
    assert (first, again) == (True, False)
    assert (row.channel, row.address, row.lang, row.lane) == ("telegram", "4242", "en", 1)
    assert row.payload["text"] == Renderer().render(message, "en")
    assert (row.citizen_id, row.dedupe_key, row.kind) == (citizen_id, "k:1", "notification")


def test_notify_writes_nothing_without_a_reachable_channel(engine: Engine) -> None:
    nobody = add_citizen(engine, identities=(("whatsapp", PHONE, None),))
    with db.write(engine) as conn:  # the only channel refuses the bot (blocked)
        mark_unreachable(conn, "whatsapp", PHONE, time_now())
    with db.write(engine) as conn:
        done = notify(
            conn, nobody, msg("common.error"), kind="notification", dedupe_key="k", now=time_now()
        )
    assert done is False
    assert outbox_rows(engine) == []


def time_now() -> datetime:
    return datetime.now(UTC)


# -- sending ------------------------------------------------------------------------------------


def test_replies_go_before_notifications_before_bulk(engine: Engine, tg: FakeTelegramAPI) -> None:
    for i in range(3):
        add_outbox(engine, "telegram", str(100 + i), f"bulk {i}", lane=Lane.bulk.value)
    add_outbox(engine, "telegram", "200", "notification", lane=Lane.notification.value)
    add_outbox(engine, "telegram", "300", "reply", lane=Lane.reply.value, choices=("A", "B"))
    drain(engine, telegram_senders(tg), concurrency=1)
    texts = [m["text"] for m in tg.sent_messages()]
    assert texts == ["reply", "notification", "bulk 0", "bulk 1", "bulk 2"]
    assert tg.sent_messages(300)[0]["reply_markup"]["inline_keyboard"][1] == [
        {"text": "2. B", "callback_data": "2"}
    ]
    rows = outbox_rows(engine)
    assert {r.status for r in rows} == {"sent"}
    assert all(r.provider_message_id and r.sent_at and r.claimed_by is None for r in rows)


def test_provider_errors_are_retried_with_back_off_then_given_up(
    engine: Engine, tw: FakeTwilioAPI
) -> None:
    add_citizen(engine, identities=(("whatsapp", PHONE, time_now()),))
    row_id = add_outbox(engine, "whatsapp", PHONE, "Votre dossier est prêt")
    clock = Clock()
    tw.fail_next(1, status=500)
    drain(engine, lambda: [whatsapp(tw)], clock=clock)
    (row,) = outbox_rows(engine, id=row_id)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.next_attempt_at == clock.now + timedelta(seconds=5)
    drain(engine, lambda: [whatsapp(tw)], clock=clock)  # not due yet: nothing tried
    assert len(tw.calls) == 1
    clock.advance(seconds=6)
    tw.fail_next(1, status=429)
    drain(engine, lambda: [whatsapp(tw)], clock=clock)
    (row,) = outbox_rows(engine, id=row_id)
    assert (row.status, row.attempts) == ("pending", 1)  # slowed down, not a failure
    clock.advance(seconds=2)
    drain(engine, lambda: [whatsapp(tw)], clock=clock)
    (row,) = outbox_rows(engine, id=row_id)
    assert row.status == "sent"
    assert row.provider_message_id.startswith("SM")
    assert len(tw.sent_messages(PHONE)) == 1

    doomed = add_outbox(engine, "whatsapp", PHONE, "jamais", due=clock.now)
    tw.fail_next(5, status=503)
    for _ in range(5):
        drain(engine, lambda: [whatsapp(tw)], clock=clock)
        clock.advance(minutes=11)
    (row,) = outbox_rows(engine, id=doomed)
    assert (row.status, row.attempts) == ("failed", 4)
    assert row.error.startswith("gave up: 20503")


class _PauseLog(LocalRateLimiter):
    """The local limiter, noting when each pause began (the sender's side of a 429)."""

    def __init__(self, rates: dict[str, float]) -> None:
        super().__init__(rates)
        self.paused_at: list[float] = []

    async def pause(self, channel: str, seconds: float) -> None:
        self.paused_at.append(time.monotonic())
        await super().pause(channel, seconds)


def test_telegram_retry_after_pauses_every_chat(engine: Engine, tg: FakeTelegramAPI) -> None:
    for chat in (11, 12, 13):
        add_outbox(engine, "telegram", str(chat), f"pour {chat}")
    tg.fail_next(1, status=429, retry_after=1)
    limiter = _PauseLog({"telegram": 30})
    drain(engine, telegram_senders(tg), limiter=limiter, rates={"telegram": 30})
    (paused_at,) = limiter.paused_at
    ok = [c for c in tg.calls if c.method == "sendMessage" and c.ok]
    assert len(ok) == 2
    # a call already on the wire when the 429 came back may land; none starts during the pause
    # (with several messages in flight, both others may already be on the wire: then none
    # comes after the pause, and the throttled one waits for the next drain, below)
    after = [c for c in ok if c.time >= paused_at]
    assert all(c.time - paused_at >= 0.95 for c in after)
    rows = {r.address: r for r in outbox_rows(engine)}
    assert rows["11"].status == "pending"  # the throttled one waits for its turn
    time.sleep(1.0)
    drain(engine, telegram_senders(tg))
    assert {r.status for r in outbox_rows(engine)} == {"sent"}
    assert tg.count_429 == 1


def test_a_blocked_bot_marks_the_chat_unreachable_without_retrying(
    engine: Engine, tg: FakeTelegramAPI
) -> None:
    add_citizen(engine, identities=(("telegram", "66", time_now()),))
    tg.block_chat(66)
    first = add_outbox(engine, "telegram", "66", "un")
    drain(engine, telegram_senders(tg))
    (row,) = outbox_rows(engine, id=first)
    assert (row.status, row.skip_reason, row.attempts) == ("failed", "unreachable", 0)
    assert row.error.startswith("403")
    assert identity_row(engine, "telegram", "66").unreachable_at is not None
    second = add_outbox(engine, "telegram", "66", "deux")
    calls = len(tg.calls)
    drain(engine, telegram_senders(tg))
    (row,) = outbox_rows(engine, id=second)
    assert (row.status, row.skip_reason) == ("skipped", "unreachable")
    assert len(tg.calls) == calls + 1  # getMe only: nothing sent to a chat that blocked us


def test_a_carrier_opt_out_marks_the_number_unreachable_and_opted_out(
    engine: Engine, tw: FakeTwilioAPI
) -> None:
    citizen_id = add_citizen(engine, identities=(("whatsapp", PHONE, time_now()),))
    tw.opt_out(PHONE)
    row_id = add_outbox(engine, "whatsapp", PHONE, "Bonjour")
    drain(engine, lambda: [whatsapp(tw)])
    (row,) = outbox_rows(engine, id=row_id)
    assert (row.status, row.skip_reason) == ("failed", "unreachable")
    assert row.error.startswith("21610")
    assert identity_row(engine, "whatsapp", PHONE).unreachable_at is not None
    assert citizen_row(engine, citizen_id).opted_out is True


def test_outside_the_24_hour_window_a_template_or_nothing(
    engine: Engine, tw: FakeTwilioAPI
) -> None:
    late, fresh = "+2250701000031", "+2250701000032"
    now = time_now()
    add_citizen(engine, identities=(("whatsapp", late, now - timedelta(hours=25)),))
    add_citizen(engine, identities=(("whatsapp", fresh, now - timedelta(hours=23)),))
    tw.outside_window(late)
    add_outbox(engine, "whatsapp", late, "Votre passeport est prêt", lang="mos")
    add_outbox(engine, "whatsapp", fresh, "Votre passeport est prêt")
    drain(engine, lambda: [whatsapp(tw)])  # no template configured
    skipped, sent = outbox_rows(engine)
    assert (skipped.status, skipped.skip_reason) == ("skipped", "outside_window")
    assert sent.status == "sent"
    assert tw.sent_messages(late) == []
    assert tw.sent_messages(fresh)[0]["Body"] == "Votre passeport est prêt"

    template = "HX" + "f" * 32
    add_outbox(engine, "whatsapp", late, "Votre passeport est prêt", lang="mos")
    drain(engine, lambda: [whatsapp(tw, templates={"fr": template})])
    (params,) = tw.sent_messages(late)  # Mooré has no template: the French one
    assert params["ContentSid"] == template
    assert json.loads(params["ContentVariables"]) == {"1": "Votre passeport est prêt"}
    assert "Body" not in params
    assert outbox_rows(engine)[-1].status == "sent"


def test_a_claim_whose_worker_died_is_sent_exactly_once(
    engine: Engine, tg: FakeTelegramAPI
) -> None:
    now = time_now()
    dead = add_outbox(
        engine,
        "telegram",
        "71",
        "écrit, réclamé, jamais envoyé",
        status="sending",
        claimed_by="worker-that-died",
        claimed_at=now - timedelta(minutes=6),
    )
    alive = add_outbox(
        engine,
        "telegram",
        "72",
        "en cours chez un autre",
        status="sending",
        claimed_by="worker-still-alive",
        claimed_at=now - timedelta(seconds=30),
    )
    drain(engine, telegram_senders(tg))
    drain(engine, telegram_senders(tg))
    assert [m["text"] for m in tg.sent_messages()] == ["écrit, réclamé, jamais envoyé"]
    rows = {r.id: r for r in outbox_rows(engine)}
    assert (rows[dead].status, rows[dead].attempts) == ("sent", 1)
    assert (rows[alive].status, rows[alive].claimed_by) == ("sending", "worker-still-alive")


def test_a_slow_send_that_outlived_its_lease_is_not_sent_again(engine: Engine) -> None:
    store = SqlOutboxStore(engine)
    row_id = add_outbox(engine, "telegram", "73", "lent")
    now = time_now()
    (item,) = store.claim("slow-worker", "telegram", 10, now)
    assert store.reclaim_stale(now + timedelta(minutes=6), timedelta(minutes=5)) == 1
    # The slow worker's provider call succeeds after all: recorded, so nobody sends it again.
    store.complete("slow-worker", [Completion(item, SendResult.sent("999"))], now)
    assert store.claim("other-worker", "telegram", 10, now + timedelta(minutes=7)) == []
    (row,) = outbox_rows(engine, id=row_id)
    assert (row.status, row.provider_message_id) == ("sent", "999")


def _blackhole() -> socket.socket:
    """A port that accepts connections and never answers: a provider call that hangs."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


def _command() -> list[str]:
    script = Path(sys.executable).with_name("diaspora-bot")
    if script.exists():
        return [str(script)]
    found = shutil.which("diaspora-bot")
    return [found] if found else [sys.executable, "-m", "api.cli"]


def test_a_worker_killed_between_written_and_sent_loses_nothing_and_sends_once(
    engine: Engine, tw: FakeTwilioAPI, tmp_path: Path
) -> None:
    """`diaspora-bot worker` claims the message, then hangs in the provider call (a port that
    never answers) and is SIGKILLed. The message is still there; once the dead worker's lease
    is over, another worker sends it, once."""
    add_citizen(engine, identities=(("whatsapp", PHONE, time_now()),))
    row_id = add_outbox(engine, "whatsapp", PHONE, "Votre rendez-vous est annulé")
    hole = _blackhole()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "TWILIO_", "TELEGRAM_", "REDIS_", "LOG_"))
    }
    env.update(
        DATABASE_URL=engine.url.render_as_string(hide_password=False),
        TWILIO_ACCOUNT_SID=tw.account_sid,
        TWILIO_AUTH_TOKEN=tw.auth_token,
        TWILIO_WHATSAPP_FROM=SENDER,
        TWILIO_API_BASE_URL=f"http://127.0.0.1:{hole.getsockname()[1]}",
        PTB_TIMEDELTA="true",
    )
    worker = subprocess.Popen(
        [*_command(), "worker"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while outbox_rows(engine, id=row_id)[0].status != "sending":
            assert worker.poll() is None, worker.stderr.read().decode() if worker.stderr else ""
            assert time.monotonic() < deadline, "the worker never claimed the message"
            time.sleep(0.05)
        time.sleep(0.2)  # the claim is committed and the provider call under way
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        if worker.stderr:
            worker.stderr.close()
        hole.close()
    (row,) = outbox_rows(engine, id=row_id)
    assert row.status == "sending"  # claimed by the dead worker, not sent
    assert tw.calls == []
    drain(engine, lambda: [whatsapp(tw)])  # its lease is still running: not yet
    assert tw.calls == []
    later = lambda: time_now() + timedelta(minutes=6)  # noqa: E731
    drain(engine, lambda: [whatsapp(tw)], clock=later)
    drain(engine, lambda: [whatsapp(tw)], clock=later)
    assert [p["Body"] for p in tw.sent_messages(PHONE)] == ["Votre rendez-vous est annulé"]
    (row,) = outbox_rows(engine, id=row_id)
    assert row.status == "sent"


# -- in doubt: accepted by the provider, never recorded -------------------------------------------


def send_unrecorded(tw: FakeTwilioAPI, item: OutboxItem) -> SendResult:
    """What a worker does before it is SIGKILLed: the provider takes the message, and the
    worker dies before `complete` records it."""

    async def run() -> SendResult:
        sender = whatsapp(tw)
        try:
            return await sender.send(item, time_now())
        finally:
            await sender.close()

    return asyncio.run(run())


def after_the_lease(claimed: datetime) -> Callable[[], datetime]:
    return lambda: claimed + timedelta(minutes=6)


def test_a_whatsapp_message_sent_by_a_worker_that_died_is_recorded_not_sent_again(
    engine: Engine, tw: FakeTwilioAPI
) -> None:
    add_citizen(engine, identities=(("whatsapp", PHONE, time_now()),))
    row_id = add_outbox(engine, "whatsapp", PHONE, "Mission consulaire à Bouaké le 12")
    store = SqlOutboxStore(engine)
    claimed = time_now()
    (item,) = store.claim("worker-that-dies", "whatsapp", 10, claimed)
    assert item.in_doubt_since is None
    accepted = send_unrecorded(tw, item)
    assert accepted.outcome is Outcome.sent
    (row,) = outbox_rows(engine, id=row_id)
    assert (row.status, row.provider_message_id) == ("sending", None)

    drain(engine, lambda: [whatsapp(tw)], clock=after_the_lease(claimed))
    drain(engine, lambda: [whatsapp(tw)], clock=after_the_lease(claimed))

    (row,) = outbox_rows(engine, id=row_id)
    assert (row.status, row.provider_message_id) == ("sent", accepted.provider_id)
    assert (row.attempts, row.in_doubt_since) == (1, None)
    assert len(tw.sent_messages(PHONE)) == 1  # the provider counts exactly one message
    assert [c.method for c in tw.calls] == ["messages.create", "messages.list"]


def test_a_template_sent_by_a_worker_that_died_is_found_by_its_rendered_text(
    engine: Engine, tw: FakeTwilioAPI
) -> None:
    """Outside the 24-hour window the message went out as a template: Twilio lists it with
    the template's text around ours, and that is enough to know it."""
    template = "HX" + "a" * 32
    tw.content_templates[template] = "Consulat du Burkina Faso : {{1}} Répondez 0 pour le menu."
    add_citizen(engine, identities=(("whatsapp", PHONE, time_now() - timedelta(days=3)),))
    row_id = add_outbox(engine, "whatsapp", PHONE, "Votre CNIB est prête.")
    store = SqlOutboxStore(engine)
    claimed = time_now()
    (item,) = store.claim("worker-that-dies", "whatsapp", 10, claimed)

    async def send_then_die() -> SendResult:
        sender = whatsapp(tw, templates={"fr": template})
        try:
            return await sender.send(item, time_now())
        finally:
            await sender.close()

    accepted = asyncio.run(send_then_die())
    drain(
        engine, lambda: [whatsapp(tw, templates={"fr": template})], clock=after_the_lease(claimed)
    )
    (row,) = outbox_rows(engine, id=row_id)
    assert (row.status, row.provider_message_id) == ("sent", accepted.provider_id)
    (params,) = tw.sent_messages(PHONE)
    assert params["ContentSid"] == template


def test_a_whatsapp_message_its_dead_worker_never_sent_is_sent_once(
    engine: Engine, tw: FakeTwilioAPI
) -> None:
    text = "Fermeture du consulat le 11 décembre"
    other = "+2250701000099"
    add_citizen(engine, identities=(("whatsapp", PHONE, time_now()),))
    row_id = add_outbox(engine, "whatsapp", PHONE, text)
    store = SqlOutboxStore(engine)
    claimed = time_now()
    (item,) = store.claim("worker-that-dies", "whatsapp", 10, claimed)
    # Look-alikes that are not this message: the same text to someone else, and the same text
    # to the same person an hour before the claim.
    elsewhere = send_unrecorded(tw, replace(item, id=0, address=other))
    long_ago = send_unrecorded(tw, replace(item, id=0))
    tw.backdate(str(long_ago.provider_id), claimed - timedelta(hours=1))

    drain(engine, lambda: [whatsapp(tw)], clock=after_the_lease(claimed))
    drain(engine, lambda: [whatsapp(tw)], clock=after_the_lease(claimed))

    (row,) = outbox_rows(engine, id=row_id)
    assert row.status == "sent"
    assert row.provider_message_id not in (elsewhere.provider_id, long_ago.provider_id, None)
    assert (row.attempts, row.in_doubt_since) == (1, None)
    assert [p["Body"] for p in tw.sent_messages(PHONE)] == [text, text]  # long ago, and now
    assert len(tw.sent_messages(other)) == 1
    (lookup,) = [c for c in tw.calls if c.method == "messages.list"]
    assert lookup.params["To"] == f"whatsapp:{PHONE}"
    assert lookup.params["From"] == SENDER
    assert lookup.params["DateSent>"] == (claimed - timedelta(minutes=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def test_the_doubt_lasts_until_the_provider_answers(engine: Engine) -> None:
    """A reclaimed row stays in doubt (since its first claim) while the provider cannot be
    asked, and is never sent blind; once the provider says it has nothing, it is sent."""
    row_id = add_outbox(engine, "whatsapp", PHONE, "Votre passeport est prêt")
    store = SqlOutboxStore(engine)
    claimed = time_now()
    store.claim("worker-that-dies", "whatsapp", 10, claimed)
    clock = Clock()
    clock.now = claimed + timedelta(minutes=6)

    class Unsure:
        channel = "whatsapp"

        def __init__(self, answer: str | Exception | None) -> None:
            self.answer = answer
            self.sent: list[int] = []
            self.asked: list[datetime | None] = []

        async def find_sent(self, item: OutboxItem) -> str | None:
            self.asked.append(item.in_doubt_since)
            if isinstance(self.answer, Exception):
                raise self.answer
            return self.answer

        async def send(self, item: OutboxItem, now: datetime) -> SendResult:
            self.sent.append(item.id)
            return SendResult.sent("SMnew")

        async def close(self) -> None:
            return None

    down = Unsure(ConnectionError("Twilio unreachable"))
    drain(engine, lambda: [down], clock=clock)
    (row,) = outbox_rows(engine, id=row_id)
    assert (row.status, row.attempts, row.in_doubt_since) == ("pending", 2, claimed)
    assert row.error.startswith("unknown whether sent")
    assert (down.asked, down.sent) == ([claimed], [])

    clock.advance(seconds=31)
    up = Unsure(None)
    drain(engine, lambda: [up], clock=clock)
    (row,) = outbox_rows(engine, id=row_id)
    assert (row.status, row.provider_message_id, row.in_doubt_since) == ("sent", "SMnew", None)
    assert (up.asked, up.sent) == ([claimed], [row_id])


def test_telegram_cannot_tell_so_an_unrecorded_send_goes_out_again(
    engine: Engine, tg: FakeTelegramAPI
) -> None:
    """The documented limit: the Bot API cannot list what a bot sent, so on Telegram the one
    message in flight when a worker is killed is sent twice (at-least-once)."""
    add_outbox(engine, "telegram", "74", "deux fois")
    store = SqlOutboxStore(engine)
    claimed = time_now()
    (item,) = store.claim("worker-that-dies", "telegram", 10, claimed)

    async def send_then_die() -> None:
        sender = await TelegramSender.connect(tg.token, tg.url)
        try:
            assert not isinstance(sender, SentLookup)
            await sender.send(item, time_now())
        finally:
            await sender.close()

    asyncio.run(send_then_die())
    drain(engine, telegram_senders(tg), clock=after_the_lease(claimed))
    assert [m["text"] for m in tg.sent_messages()] == ["deux fois", "deux fois"]


def test_a_worker_killed_after_twilio_accepted_its_messages_sends_each_once(
    engine: Engine, tw: FakeTwilioAPI, tmp_path: Path
) -> None:
    """The window of the kill test, made certain: `diaspora-bot worker` hands a broadcast's
    messages to Twilio, Twilio takes them all and the answers never come back (held by the
    fake); the worker is SIGKILLed with every row still `sending`. After the lease, each row
    is recorded with the SID Twilio gave it, and nobody gets the announcement twice."""
    text = "Mission consulaire à Bouaké le 12 décembre."
    phones = [f"+2250701001{n:03d}" for n in range(6)]
    rows = {}
    for phone in phones:
        add_citizen(engine, identities=(("whatsapp", phone, time_now()),))
        rows[phone] = add_outbox(engine, "whatsapp", phone, text, lane=Lane.bulk.value)
    tw.hold_answers()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "TWILIO_", "TELEGRAM_", "REDIS_", "LOG_", "WHATSAPP_"))
    }
    env.update(
        DATABASE_URL=engine.url.render_as_string(hide_password=False),
        TWILIO_ACCOUNT_SID=tw.account_sid,
        TWILIO_AUTH_TOKEN=tw.auth_token,
        TWILIO_WHATSAPP_FROM=SENDER,
        TWILIO_API_BASE_URL=tw.base_url,
        PTB_TIMEDELTA="true",
    )
    worker = subprocess.Popen(
        [*_command(), "worker"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        tw.wait_for(lambda calls: len([c for c in calls if c.ok]) == len(phones), timeout=20)
        claimed = time_now()
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        if worker.stderr:
            worker.stderr.close()
        tw.release_answers()
    sids = {_bare(str(m["to"])): sid for sid, m in tw.messages.items()}
    assert sorted(sids) == phones  # Twilio has every message…
    assert {r.status for r in outbox_rows(engine)} == {"sending"}  # …and nothing is recorded

    drain(engine, lambda: [whatsapp(tw)], clock=after_the_lease(claimed))
    drain(engine, lambda: [whatsapp(tw)], clock=after_the_lease(claimed))

    assert Counter(_bare(p["To"]) for p in tw.sent_messages()) == Counter(phones)
    for phone, row_id in rows.items():
        (row,) = outbox_rows(engine, id=row_id)
        assert (row.status, row.provider_message_id) == ("sent", sids[phone])


def _bare(address: str) -> str:
    return address.removeprefix("whatsapp:")


# -- rate limits --------------------------------------------------------------------------------


def test_the_rate_limit_is_respected_without_a_single_429(sqlite_engine: Engine) -> None:
    with FakeTelegramAPI(token=TOKEN, rate_limit_per_second=20) as tg:
        for chat in range(30):
            add_outbox(sqlite_engine, "telegram", str(1000 + chat), f"annonce {chat}", lane=2)
        started = time.monotonic()
        drain(sqlite_engine, telegram_senders(tg), rates={"telegram": 20})
        elapsed = time.monotonic() - started
        assert tg.count_429 == 0
        assert 17 <= tg.max_per_second("sendMessage") <= 20
    assert len(tg.sent_messages()) == 30
    assert elapsed >= 1.4


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    yield prefix
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()


class Counting:
    """A sender that counts what it sends (to see that both workers did their share)."""

    def __init__(self, inner: Sender) -> None:
        self.inner = inner
        self.sent = 0

    @property
    def channel(self) -> str:
        return self.inner.channel

    async def send(self, item: Any, now: datetime) -> SendResult:
        self.sent += 1
        return await self.inner.send(item, now)

    async def close(self) -> None:
        await self.inner.close()


def test_two_workers_share_the_limit_through_redis(engine: Engine, redis_prefix: str) -> None:
    """Two workers, each with its own Redis connection and each allowed the provider's 20/s:
    together they stay within it, without a 429, and each message goes out once."""
    with FakeTelegramAPI(token=TOKEN, rate_limit_per_second=20) as tg:
        for chat in range(30):
            add_outbox(engine, "telegram", str(2000 + chat), f"annonce {chat}", lane=2)
        counts: list[int] = []

        async def worker() -> None:
            limiter = RedisRateLimiter.from_url(REDIS_URL, {"telegram": 20}, prefix=redis_prefix)
            counting = Counting(await TelegramSender.connect(tg.token, tg.url))
            sender = OutboxSender(
                SqlOutboxStore(engine),
                [counting],
                limiter,
                rates={"telegram": 5},  # small claims, so that both workers get some
            )
            try:
                await sender.drain()
            finally:
                await sender.close()
                counts.append(counting.sent)

        async def both() -> None:
            await asyncio.gather(worker(), worker())

        started = time.monotonic()
        asyncio.run(both())
        elapsed = time.monotonic() - started
        assert tg.count_429 == 0
        assert tg.max_per_second("sendMessage") <= 20
        assert sorted(int(m["chat_id"]) for m in tg.sent_messages()) == list(range(2000, 2030))
    assert sorted(counts) != [0, 30]  # both workers sent
    assert elapsed >= 29 / 20


def test_a_pause_in_redis_holds_every_worker(redis_prefix: str) -> None:
    async def scenario() -> float:
        one = RedisRateLimiter.from_url(REDIS_URL, {"telegram": 1000}, prefix=redis_prefix)
        two = RedisRateLimiter.from_url(REDIS_URL, {"telegram": 1000}, prefix=redis_prefix)
        try:
            await one.acquire("telegram")
            await one.pause("telegram", 0.5)
            started = time.monotonic()
            await two.acquire("telegram")
            return time.monotonic() - started
        finally:
            await one.close()
            await two.close()

    assert 0.45 <= asyncio.run(scenario()) < 1.5


def test_a_pause_holds_a_channel_without_a_rate() -> None:
    async def scenario() -> float:
        limiter = LocalRateLimiter({})
        await limiter.pause("whatsapp", 0.3)
        started = time.monotonic()
        await limiter.acquire("whatsapp")
        return time.monotonic() - started

    assert 0.25 <= asyncio.run(scenario()) < 1.0


def test_a_limiter_that_fails_gives_the_batch_back(sqlite_engine: Engine) -> None:
    class BrokenRedis:
        async def acquire(self, channel: str) -> Any:
            raise ConnectionError("Redis is down")

        async def pause(self, channel: str, seconds: float) -> None:
            return None

        async def close(self) -> None:
            return None

    class NeverCalled:
        channel = "telegram"

        async def send(self, item: Any, now: datetime) -> SendResult:
            raise AssertionError("sent without a slot")

        async def close(self) -> None:
            return None

    for chat in (81, 82):
        add_outbox(sqlite_engine, "telegram", str(chat))

    async def scenario() -> None:
        sender = OutboxSender(
            SqlOutboxStore(sqlite_engine), [NeverCalled()], BrokenRedis(), poll_interval=0.05
        )
        running = asyncio.create_task(sender.run())
        await asyncio.sleep(0.3)
        sender.stop()
        await running

    asyncio.run(scenario())
    rows = outbox_rows(sqlite_engine)
    assert [(r.status, r.claimed_by, r.attempts) for r in rows] == [("pending", None, 0)] * 2
