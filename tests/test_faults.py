"""Faults in the production topology (tests/support/topology.py), each with the evidence that
nothing was lost and nothing was sent twice:

- PostgreSQL goes away (its connections cut, new ones refused, as in a restart or a failover)
  during conversations and a broadcast: `/readyz` says 503, webhooks answer 503 so that the
  provider delivers again, nothing is half-written, and everything resumes by itself;
- Redis stops during sending: each worker keeps to its share of the limits, never above the
  provider's limit in total, and goes back to the shared schedule when Redis returns;
- the providers answer 429, 5xx, or nothing at all for longer than the senders wait;
- a worker is SIGKILLed mid-send and restarted under its `WORKER_ID`: it takes back its own
  claims at once instead of waiting out the lease (5 minutes here, longer than the test may
  take).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from api import db
from tests.support.topology import (
    TELEGRAM_LIMIT,
    WHATSAPP_LIMIT,
    PatientCitizen,
    TelegramCitizen,
    Topology,
    WhatsAppCitizen,
    audience,
    book,
    broadcast,
    outbox_t,
    sent_to,
    started,
    twiml_bodies,
    wait_for,
    wait_served,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    with started(tmp_path_factory.mktemp("faults")) as running:
        yield running


@pytest.fixture(autouse=True)
def _whole_again(topology: Topology) -> Iterator[None]:
    """Each test leaves the topology as it found it, whatever happened."""
    yield
    topology.twilio.release_answers()
    if topology.proxy.is_cut:
        topology.proxy.restore()
    if topology.redis.process is None:
        topology.redis.start()
    for index in range(2):
        if not topology.processes[f"worker-{index + 1}"].alive():
            topology.start_worker(index)


def whatsapp_sent(topology: Topology, text: str) -> int:
    return sum(sent_to(topology.twilio, "messages.create", "To", text).values())


def assert_everyone_once(
    topology: Topology, broadcast_id: int, text: str, phones: list[str], chats: list[str]
) -> None:
    time.sleep(1.0)  # anything sent twice would arrive now
    per_phone = sent_to(topology.twilio, "messages.create", "To", text)
    assert sorted(p for p, n in per_phone.items() if n > 1) == [], "sent twice on WhatsApp"
    assert per_phone == Counter(dict.fromkeys(phones, 1))
    per_chat = sent_to(topology.telegram, "sendMessage", "chat_id", text)
    assert sorted(c for c, n in per_chat.items() if n > 1) == [], "sent twice on Telegram"
    assert per_chat == Counter(dict.fromkeys(chats, 1))
    with db.read(topology.admin) as conn:
        statuses = Counter(
            conn.execute(
                sa.select(outbox_t.c.status).where(outbox_t.c.broadcast_id == broadcast_id)
            ).scalars()
        )
    assert statuses == {"sent": len(phones) + len(chats)}


OUTAGES = {
    # (country, phone prefix, first chat id, Telegram user, WhatsApp citizen, update id)
    "network_cut": ("GA", "+24106", 7_300_000, 7_399_001, "+2250703000001", 90_000_001),
    "database_restarting": ("CM", "+23767", 7_350_000, 7_399_002, "+2250703000002", 90_000_002),
}


@pytest.mark.parametrize("outage", sorted(OUTAGES))
def test_postgres_away_during_conversations_and_a_broadcast(
    topology: Topology, outage: str
) -> None:
    """Both sides of a restart: the connections cut on the way (a failover, a network
    fault), and the server terminating every session and refusing new ones."""
    country, prefix, first_chat, user_id, phone, update_id = OUTAGES[outage]
    text = f"Fermeture de l'ambassade le 11 décembre ({country})."
    phones, chats = audience(topology.admin, country, prefix, 200, 60, first_chat=first_chat)
    citizen = WhatsAppCitizen(topology, phone)
    citizen.send("Bonjour")
    assert "rendez-vous" in citizen.send("1").lower()  # Français: the main menu
    chat = TelegramCitizen(topology, user_id)
    chat.send("/start")
    broadcast_id = broadcast(topology, country, text)
    wait_for("sending begins", lambda: whatsapp_sent(topology, text) >= 20, timeout=120)

    # Conversation traffic through the outage: citizens walking a booking, each message
    # delivered again while it is answered 503. Each is held before its fourth message until
    # the database is away (so that no turn is half-way through its commit at that moment),
    # then goes on into the outage and out of it.
    may_go = threading.Event()
    series = sorted(OUTAGES).index(outage)
    walkers: list[PatientCitizen] = []

    def hold(index: int) -> Callable[[], None]:
        def before_each() -> None:
            if walkers[index].sent == 3:
                may_go.wait(timeout=300)

        return before_each

    walkers.extend(
        PatientCitizen(topology, f"+22507060{series}{n:04d}", before_each=hold(n)) for n in range(4)
    )
    references: dict[str, str] = {}

    def walk(walker: PatientCitizen) -> None:
        n = walkers.index(walker)  # each a time of its own: no seat taken by another walker
        # and a person of their own in each outage (one person holds one appointment per
        # service and post: the other outage's walkers booked already, in the same database)
        family = ("Ilboudo", "Sawadogo", "Kaboré", "Zongo")[series]
        book(walker, 1, f"Adama {family} {'ABCD'[n]}", time_choice=n + 1)
        references[walker.phone] = walker.send("1")

    threads = [threading.Thread(target=walk, args=(w,), daemon=True) for w in walkers]
    for thread in threads:
        thread.start()
    wait_for("the walkers wait", lambda: all(w.waiting and w.sent == 3 for w in walkers), 120)

    sid = f"SM{uuid.uuid4().hex}"
    with getattr(topology, outage)():
        may_go.set()  # into the outage
        wait_for("/readyz says 503", lambda: topology.readiness() == [503, 503], timeout=60)
        wait_for("every walker refused", lambda: all(w.refused for w in walkers), 60)
        # Webhooks on either process answer 503 with Retry-After: the provider delivers again.
        during = [topology.whatsapp(citizen.phone, "1", sid=sid) for _ in range(2)]
        assert [r.status_code for r in during] == [503, 503]
        assert all(r.headers.get("Retry-After") for r in during)
        telegram_during = [chat.deliver("1", update_id) for _ in range(2)]
        assert [r.status_code for r in telegram_during] == [503, 503]
        assert topology.readiness() == [503, 503]

    wait_for("/readyz says 200", lambda: topology.readiness() == [200, 200], timeout=60)
    # The provider's retry, same message id: processed now, and once.
    retried = twiml_bodies(topology.whatsapp(citizen.phone, "1", sid=sid))
    assert "abidjan" in "\n".join(retried).lower()  # the booking's first question: the posts
    assert twiml_bodies(topology.whatsapp(citizen.phone, "1", sid=sid)) == []  # a duplicate
    before = len(topology.telegram.sent_messages(chat_id=chat.user_id))
    assert chat.deliver("1", update_id).status_code == 200
    topology.telegram.wait_for(
        lambda _c: len(topology.telegram.sent_messages(chat_id=chat.user_id)) > before, 60
    )

    for thread in threads:
        thread.join(timeout=180)
    # Every walker booked, once: no message lost (each step answered in turn) or done twice.
    assert all("RDV-" in references.get(w.phone, "") for w in walkers), references
    with db.read(topology.admin) as conn:
        booked = Counter(
            conn.execute(
                sa.text(
                    "SELECT c.phone FROM appointment a JOIN citizen c ON c.id = a.citizen_id "
                    "JOIN channel_identity i ON i.citizen_id = c.id AND i.channel = 'whatsapp' "
                    "WHERE i.address = ANY(:phones)"
                ),
                {"phones": [w.phone for w in walkers]},
            ).scalars()
        )
    assert sorted(booked.values()) == [1, 1, 1, 1], booked

    wait_served(topology, broadcast_id, 260, timeout=180)
    assert_everyone_once(topology, broadcast_id, text, phones, chats)
    assert all(p.alive() for p in topology.processes.values()), "every process rode it out"


def test_redis_stopped_during_sending(topology: Topology) -> None:
    text = "Mission consulaire à Milan le 14 décembre."
    phones, chats = audience(topology.admin, "IT", "+39333", 300, 60, first_chat=7_400_000)
    broadcast_id = broadcast(topology, "IT", text)
    wait_for("sending begins", lambda: whatsapp_sent(topology, text) >= 30, timeout=120)

    topology.redis.stop()
    try:
        before = whatsapp_sent(topology, text)
        wait_for(
            "sending goes on without Redis",
            lambda: whatsapp_sent(topology, text) >= before + 60,
            timeout=120,
        )
    finally:
        topology.redis.start()

    wait_served(topology, broadcast_id, 360, timeout=180)
    assert_everyone_once(topology, broadcast_id, text, phones, chats)
    assert topology.twilio.count_429 == 0
    assert topology.telegram.count_429 == 0
    assert topology.twilio.max_per_second("messages.create") <= WHATSAPP_LIMIT
    assert topology.telegram.max_per_second("sendMessage") <= TELEGRAM_LIMIT
    # Each worker went to its share, and came back.
    for name in ("worker-1", "worker-2"):
        text_of = topology.processes[name].text()
        assert "each process keeps to 1/2 of each limit" in text_of, name
        assert "Redis answers again" in text_of, name


def test_provider_429_5xx_and_timeouts(topology: Topology) -> None:
    text = "Nouveaux horaires du consulat de New York."
    phones, chats = audience(topology.admin, "US", "+1202555", 120, 40, first_chat=7_500_000)
    topology.twilio.fail_next(3, status=429)
    topology.twilio.fail_next(3, status=500)
    topology.twilio.fail_next(2, status=503)
    topology.telegram.fail_next(2, status=429, retry_after=1)
    topology.telegram.fail_next(3, status=502)
    broadcast_id = broadcast(topology, "US", text)
    wait_for("sending begins", lambda: whatsapp_sent(topology, text) >= 30, timeout=120)

    # Twilio takes messages but its answers never come back within the senders' patience.
    created = sum(1 for c in topology.twilio.calls if c.method == "messages.create")
    topology.twilio.hold_answers()
    try:
        wait_for(
            "messages held",
            lambda: (
                sum(1 for c in topology.twilio.calls if c.method == "messages.create")
                >= created + 3
            ),
            timeout=60,
        )
        wait_for("the senders give up waiting", lambda: _timed_out(topology), 90, every=0.25)
    finally:
        topology.twilio.release_answers()

    wait_served(topology, broadcast_id, 160, timeout=240)
    # WhatsApp: the senders asked Twilio about each timed-out message before sending it again.
    assert_everyone_once(topology, broadcast_id, text, phones, chats)
    assert topology.twilio.max_per_second("messages.create") <= WHATSAPP_LIMIT
    assert topology.telegram.max_per_second("sendMessage") <= TELEGRAM_LIMIT


def _timed_out(topology: Topology) -> bool:
    with db.read(topology.admin) as conn:
        found = conn.execute(
            sa.select(sa.func.count())
            .select_from(outbox_t)
            .where(
                outbox_t.c.in_doubt_since.is_not(None),
                outbox_t.c.channel == "whatsapp",
                outbox_t.c.error.like("network%Timeout%"),
            )
        ).scalar_one()
    return bool(found)


def test_a_worker_killed_mid_send_resumes_at_once_under_its_id(topology: Topology) -> None:
    text = "Mission consulaire à Bouaké le 12 décembre."
    phones, chats = audience(topology.admin, "FR", "+33612", 300, 60, first_chat=7_600_000)
    broadcast_id = broadcast(topology, "FR", text)
    wait_for("sending begins", lambda: whatsapp_sent(topology, text) >= 40, timeout=120)

    topology.kill("worker-1")
    with db.read(topology.admin) as conn:
        held_rows = conn.execute(
            sa.select(outbox_t.c.channel, outbox_t.c.address).where(
                outbox_t.c.status == "sending", outbox_t.c.claimed_by == "worker-1"
            )
        ).all()
    held = {str(address) for channel, address in held_rows if channel == "telegram"}
    restarted = topology.start_worker(0)

    # The lease is 5 minutes: finishing well within that proves the claims were taken back.
    wait_served(topology, broadcast_id, 360, timeout=150)
    time.sleep(1.0)
    per_phone = sent_to(topology.twilio, "messages.create", "To", text)
    assert per_phone == Counter(dict.fromkeys(phones, 1)), "WhatsApp: exactly once"
    per_chat = sent_to(topology.telegram, "sendMessage", "chat_id", text)
    assert set(per_chat) == set(chats)
    doubled = {chat for chat, n in per_chat.items() if n > 1}
    assert doubled <= held, "only a message in flight at the kill may go twice on Telegram"
    if held_rows:  # what it held at the kill, it took back at its start
        assert "claims of this worker's previous run taken back" in restarted.text()
