"""The production topology (compose.yaml) as processes: two web processes behind a round-robin
balancer, two workers, PostgreSQL, a Redis of the test's own, fake providers
(tests/support/topology.py).

Conversations go over both web processes (each message may land on either), the last seat is
raced across them, and a broadcast reaches every recipient once within the provider's limits.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa

from api import db
from tests.support.topology import (
    TELEGRAM_LIMIT,
    WHATSAPP_LIMIT,
    TelegramCitizen,
    Topology,
    WhatsAppCitizen,
    audience,
    book,
    broadcast,
    outbox_t,
    sent_to,
    started,
    wait_served,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

LAISSEZ_PASSER = 6  # the service with one seat per slot (menu order)
PASSPORT = 1


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    with started(tmp_path_factory.mktemp("topology")) as running:
        yield running


def appointments(topology: Topology) -> list[tuple[str, str, str]]:
    with db.read(topology.admin) as conn:
        rows = conn.execute(
            sa.text(
                "SELECT a.reference, c.phone, s.code FROM appointment a "
                "JOIN citizen c ON c.id = a.citizen_id JOIN service s ON s.id = a.service_id "
                "WHERE a.status = 'booked'"
            )
        ).all()
    return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]


def test_conversations_go_over_both_web_processes(topology: Topology) -> None:
    used_before = dict(topology.balancer.used)
    citizens = [WhatsAppCitizen(topology, f"+2250701{n:06d}") for n in range(1, 5)]
    for n, citizen in enumerate(citizens):
        question = book(citizen, PASSPORT, f"Awa Ouédraogo{'' if n == 0 else ' ' + 'ABCD'[n]}")
        assert "awa" in question.lower()
        assert "RDV-" in citizen.send("1")
    telegram = TelegramCitizen(topology, 7_100_001)
    assert "1" in telegram.send("/start")
    assert "rendez-vous" in telegram.send("1").lower()  # Français: the main menu

    used = {k: v - used_before.get(k, 0) for k, v in topology.balancer.used.items()}
    assert sorted(used) == [0, 1]
    assert min(used.values()) >= 10
    booked = {phone for _ref, phone, service in appointments(topology) if service == "passport"}
    assert {c.phone for c in citizens} <= booked
    topology.check_alive()


def test_the_last_seat_raced_across_both_web_processes(topology: Topology) -> None:
    racers = [WhatsAppCitizen(topology, f"+2250702{n:06d}") for n in range(1, 9)]
    questions = [
        book(r, LAISSEZ_PASSER, f"Racer Kaboré {'ABCDEFGH'[i]}") for i, r in enumerate(racers)
    ]
    answers: list[str] = [""] * len(racers)
    gate = threading.Barrier(len(racers))

    def confirm(index: int) -> None:
        gate.wait()
        answers[index] = racers[index].send("1")

    threads = [threading.Thread(target=confirm, args=(i,)) for i in range(len(racers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    winners = [a for a in answers if "RDV-" in a]
    laissez = [a for a in appointments(topology) if a[2] == "laissez_passer"]
    # Every racer was offered the same seat (the first time of the first day): one wins.
    same_seat = len({q.split("\n")[-1] for q in questions}) == 1
    if same_seat:
        assert len(winners) == 1, answers
    assert len(winners) == len(laissez) >= 1
    assert all(a for a in answers), "every racer got an answer"
    with db.read(topology.admin) as conn:
        over = conn.execute(sa.text("SELECT count(*) FROM slot WHERE booked > capacity"))
        assert over.scalar_one() == 0
    topology.check_alive()


def test_a_broadcast_reaches_everyone_once_within_the_limits(topology: Topology) -> None:
    text = "Mission consulaire à Accra le 12 décembre."
    phones, chats = audience(
        topology.admin, "GH", "+23320", whatsapp=240, telegram=80, first_chat=7_200_000
    )
    broadcast_id = broadcast(topology, "GH", text)
    wait_served(topology, broadcast_id, 320, timeout=180)
    time.sleep(1.0)  # anything sent twice would arrive now

    assert sent_to(topology.twilio, "messages.create", "To", text) == Counter(
        dict.fromkeys(phones, 1)
    )
    assert sent_to(topology.telegram, "sendMessage", "chat_id", text) == Counter(
        dict.fromkeys(chats, 1)
    )
    assert topology.twilio.count_429 == 0
    assert topology.telegram.count_429 == 0
    assert topology.twilio.max_per_second("messages.create") <= WHATSAPP_LIMIT
    assert topology.telegram.max_per_second("sendMessage") <= TELEGRAM_LIMIT
    with db.read(topology.admin) as conn:
        statuses = Counter(
            conn.execute(
                sa.select(outbox_t.c.status).where(outbox_t.c.broadcast_id == broadcast_id)
            ).scalars()
        )
    assert statuses == {"sent": 320}
    stats = topology.api("GET", f"/broadcasts/{broadcast_id}/stats").json()
    assert (stats["sent"], stats["pending"]) == (320, 0)


def test_metrics_of_the_web_processes_and_the_workers(topology: Topology) -> None:
    assert topology.readiness() == [200, 200]
    for n in range(2):  # a turn on each web process
        WhatsAppCitizen(topology, f"+2250705{n:06d}").send("Bonjour")
    telegram = TelegramCitizen(topology, 7_100_099)
    telegram.send("/start")
    for client in topology.balancer.clients:
        metrics = client.get("/metrics").text
        assert 'diaspora_http_requests_total{route="/webhooks/whatsapp",status="200"}' in metrics
        assert 'diaspora_turns_total{channel="whatsapp",lang="fr"}' in metrics
        assert 'diaspora_turn_seconds_bucket{channel="whatsapp",le="0.1"}' in metrics
        assert "diaspora_database_up 1.0" in metrics
        assert "diaspora_bookings_total" in metrics
        assert "diaspora_outbox_depth" in metrics
    sends = 0.0
    for name, port in topology.metrics_ports.items():
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
        assert "diaspora_rate_limits_local 0.0" in text, name
        assert "diaspora_scheduler_lag_seconds" in text, name
        sends += sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith('diaspora_outbox_sends_total{channel="telegram",outcome="sent"')
        )
    assert sends >= 1  # the answers to /start went out through a worker


def test_no_log_line_carries_personal_data(topology: Topology) -> None:
    """A whole conversation, a status lookup and a broadcast, then every line that every
    process wrote: JSON objects, and not one phone number, name, birth date or text."""
    phone = "+2250704000777"
    name = "Salimata Zongo"
    citizen = WhatsAppCitizen(topology, phone)
    book(citizen, PASSPORT, name)
    assert "RDV-" in citizen.send("1")

    created = topology.api(
        "POST",
        "/requests",
        json={
            "post": "ABJ",
            "service": "passport",
            "full_name": "Boukary Sawadogo",
            "birth_date": "1987-03-14",
        },
    )
    assert created.status_code == 201, created.text
    reference = created.json()["reference"]
    looker = WhatsAppCitizen(topology, "+2250704000888")
    looker.send("Bonjour")
    looker.send("1")
    looker.send("2")  # track a request
    looker.send(reference)
    status = looker.send("14/03/1987")
    assert "Votre dossier est enregistré" in status  # the status of the request, received

    TelegramCitizen(topology, 7_100_777).send("/start")  # answered through the outbox

    text = "Permanence consulaire samedi au lycée Zinda de Lomé."
    phones, chats = audience(
        topology.admin, "TG", "+22890", whatsapp=20, telegram=5, first_chat=7_800_000
    )
    broadcast_id = broadcast(topology, "TG", text)
    wait_served(topology, broadcast_id, 25, timeout=120)
    time.sleep(1.0)  # the last outcomes' log lines

    lines = [line for line in topology.logs() if line.strip()]
    assert lines, "the processes log"
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"ts", "level", "logger", "msg"} <= set(e) for e in entries)
    # One id from the webhook to the provider: the Telegram turn's, on the worker's send.
    turns = {e["request_id"] for e in entries if e["msg"] == "turn on telegram: ok"}
    sends = {e.get("request_id") for e in entries if e.get("outbox_id") and e["lane"] == 0}
    assert turns & sends
    forbidden = [phone, phone.removeprefix("+"), "+2250704000888", *phones, *chats]
    forbidden += [name, "Salimata", "Zongo", "Boukary", "Sawadogo", "Ouédraogo", "Kaboré"]
    forbidden += ["1987-03-14", "14/03/1987", text, "Mission consulaire", reference]
    everything = "\n".join(lines)
    found = sorted({word for word in forbidden if word in everything})
    assert found == [], f"personal data in the logs: {found}"
