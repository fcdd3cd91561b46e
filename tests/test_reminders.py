"""Appointment reminders: the day before and two hours before, in the citizen's language and
the post's local time, each sent once however many clocks run and however often they restart."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from api import db
from api.domain.reminders import send_reminders
from api.models import InboundMessage
from api.settings import Settings
from api.worker import Worker, purge_inbound_ids
from bot.channels.telegram import TelegramSender
from bot.i18n import Renderer
from flows.choices import service_name
from flows.messages import Msg, msg
from tests.fakes import FakeTelegramAPI
from tests.support.offline import offline  # noqa: F401  (fixture)
from tests.support.people import add_appointment, add_citizen, appointment, outbox_rows

pytestmark = pytest.mark.usefixtures("offline")

inbound_message = InboundMessage.__table__  # type: ignore[attr-defined]


class Recording(Renderer):
    """The real catalogs, and a note of every message rendered (to check its parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.rendered: list[tuple[Msg, str]] = []

    def render(self, message: Msg, lang: str) -> str:
        self.rendered.append((message, lang))
        return super().render(message, lang)


MOMENT = datetime(2030, 1, 15, 10, 0, tzinfo=UTC)  # a Tuesday, 10:00 in Abidjan (UTC)


def now() -> datetime:
    """The clock of these tests: fixed, so that "tomorrow" does not depend on the hour."""
    return MOMENT


def real_now() -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0)


@pytest.fixture
def network(demo_engine: Engine) -> Engine:
    return demo_engine


def reminders(engine: Engine, at: datetime, renderer: Renderer | None = None) -> int:
    return send_reminders(engine, at, renderer=renderer or Recording())


def test_the_day_before_in_the_citizens_language_and_the_posts_time(network: Engine) -> None:
    moment = now()
    citizen_id = add_citizen(network, lang="en", identities=(("telegram", "31", moment),))
    starts = moment + timedelta(hours=20)
    appointment_id, reference = add_appointment(network, citizen_id, starts, post_code="PAR")
    renderer = Recording()

    assert reminders(network, moment, renderer) == 1
    assert reminders(network, moment + timedelta(minutes=1)) == 0  # the next minute: done

    (row,) = outbox_rows(network)
    (message, lang) = renderer.rendered[0]
    local = starts.astimezone(ZoneInfo("Europe/Paris"))
    assert message == msg(
        "reminder.day_before",
        reference=reference,
        service=service_name("passport"),
        post="Consulat général, Paris",
        day=local.date(),
        time=time(local.hour, local.minute),
    )
    assert lang == "en"
    assert row.payload["text"] == Renderer().render(message, "en")
    assert (row.channel, row.address, row.lang, row.lane, row.kind) == (
        "telegram",
        "31",
        "en",
        1,
        "reminder",
    )
    assert row.dedupe_key == f"reminder:day:{appointment_id}"
    with network.connect() as conn:
        marked = conn.execute(
            sa.select(
                appointment.c.reminded_day_before_at, appointment.c.reminded_two_hours_at
            ).where(appointment.c.id == appointment_id)
        ).one()
    assert marked == (moment, None)


def test_two_hours_before_and_the_day_before_each_once(network: Engine) -> None:
    moment = now()
    citizen_id = add_citizen(network, identities=(("whatsapp", "+2250701000041", moment),))
    tomorrow, _ = add_appointment(network, citizen_id, moment + timedelta(hours=23))
    soon, _ = add_appointment(network, citizen_id, moment + timedelta(minutes=90))

    assert reminders(network, moment) == 2
    keys = {r.dedupe_key for r in outbox_rows(network)}
    assert keys == {f"reminder:day:{tomorrow}", f"reminder:2h:{soon}"}
    # 22 hours later the first one is two hours away: its second reminder, once.
    later = moment + timedelta(hours=21, minutes=30)
    assert reminders(network, later) == 1
    assert reminders(network, later) == 0
    keys = {r.dedupe_key for r in outbox_rows(network)}
    assert f"reminder:2h:{tomorrow}" in keys
    assert len(keys) == 3


def test_opted_out_citizens_are_still_reminded_of_their_own_appointments(
    network: Engine,
) -> None:
    moment = now()
    citizen_id = add_citizen(
        network, opted_out=True, identities=(("telegram", "32", moment - timedelta(days=1)),)
    )
    add_appointment(network, citizen_id, moment + timedelta(hours=20))
    assert reminders(network, moment) == 1


def test_an_appointment_later_today_gets_only_the_two_hours_reminder(network: Engine) -> None:
    moment = now()  # 10:00 in Abidjan
    citizen_id = add_citizen(network, identities=(("telegram", "34", moment),))
    evening, _ = add_appointment(network, citizen_id, moment + timedelta(hours=8))  # 18:00
    assert reminders(network, moment) == 0  # "tomorrow" would be wrong
    assert reminders(network, moment + timedelta(hours=6, minutes=30)) == 1
    (row,) = outbox_rows(network)
    assert row.dedupe_key == f"reminder:2h:{evening}"


def test_no_reminder_when_not_due(network: Engine) -> None:
    moment = now()
    citizen_id = add_citizen(network, identities=(("telegram", "33", moment),))
    add_appointment(network, citizen_id, moment + timedelta(hours=30))  # later than 24 h
    add_appointment(network, citizen_id, moment - timedelta(minutes=5))  # started already
    add_appointment(network, citizen_id, moment + timedelta(hours=3), status="cancelled")
    add_appointment(  # booked a moment ago: the confirmation said it all
        network, citizen_id, moment + timedelta(hours=20), created_at=moment - timedelta(minutes=5)
    )
    unreachable = add_citizen(network)  # no channel at all
    nobody, _ = add_appointment(network, unreachable, moment + timedelta(hours=21))
    assert reminders(network, moment) == 0
    assert outbox_rows(network) == []
    with network.connect() as conn:  # no channel to push to: claimed all the same, not retried
        claimed = conn.execute(
            sa.select(appointment.c.reminded_day_before_at).where(appointment.c.id == nobody)
        ).scalar_one()
    assert claimed == moment


def test_two_clocks_at_once_send_each_reminder_once(network: Engine) -> None:
    moment = now()
    for i in range(6):
        citizen_id = add_citizen(network, identities=(("telegram", str(40 + i), moment),))
        add_appointment(network, citizen_id, moment + timedelta(hours=16 + i))
    with ThreadPoolExecutor(max_workers=2) as pool:
        counts = list(pool.map(lambda _: reminders(network, moment), range(2)))
    assert sum(counts) == 6
    rows = outbox_rows(network)
    assert len(rows) == len({r.dedupe_key for r in rows}) == 6


@pytest.fixture
def telegram(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTelegramAPI]:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    with FakeTelegramAPI(token="123456:TEST") as fake:
        yield fake


def test_a_restarted_worker_does_not_remind_twice(
    network: Engine, telegram: FakeTelegramAPI
) -> None:
    moment = real_now()  # the worker's job reads the real clock
    citizen_id = add_citizen(network, identities=(("telegram", "51", moment),))
    add_appointment(network, citizen_id, moment + timedelta(minutes=90))
    settings = Settings(database_url=network.url.render_as_string(hide_password=False))

    async def life() -> int:
        """One life of a worker: start, run the reminders job, let the outbox work, stop."""
        sender = await TelegramSender.connect(telegram.token, telegram.url)
        worker = Worker(settings, network, senders=[sender], scheduler=False, poll_interval=0.05)
        await worker.start()
        try:
            queued = await worker.reminders_job()
            await asyncio.sleep(0.5)
            return queued
        finally:
            await worker.stop()

    assert asyncio.run(life()) == 1
    assert asyncio.run(life()) == 0  # restarted: nothing due any more
    assert len(telegram.sent_messages(51)) == 1
    (row,) = outbox_rows(network)
    assert row.status == "sent"


def test_the_scheduler_registers_its_jobs_under_fixed_ids(sqlite_engine: Engine) -> None:
    settings = Settings(database_url=sqlite_engine.url.render_as_string(hide_password=False))

    async def scenario() -> list[str]:
        worker = Worker(settings, sqlite_engine)
        await worker.start()
        try:
            assert worker.scheduler is not None
            return sorted(job.id for job in worker.scheduler.get_jobs())
        finally:
            await worker.stop()

    assert asyncio.run(scenario()) == [
        "broadcasts.due",
        "draws.close",
        "inbound.purge",
        "privacy.retention",
        "reminders.send",
        "waitlist.offers",
    ]


def test_provider_ids_are_forgotten_after_48_hours(engine: Engine) -> None:
    moment = real_now()
    with db.write(engine) as conn:
        conn.execute(
            sa.insert(inbound_message),
            [
                {
                    "channel": "whatsapp",
                    "provider_id": "old",
                    "received_at": moment - timedelta(hours=49),
                },
                {
                    "channel": "whatsapp",
                    "provider_id": "new",
                    "received_at": moment - timedelta(hours=47),
                },
            ],
        )
    assert purge_inbound_ids(engine, moment) == 1
    with engine.connect() as conn:
        left = conn.execute(sa.select(inbound_message.c.provider_id)).scalars().all()
    assert left == ["new"]
