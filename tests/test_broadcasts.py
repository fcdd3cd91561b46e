"""Broadcasts on both stores: segments (each criterion, the belongs-to rule), the live count,
fan-out (once per citizen, last-used channel, opt-outs and unreachable channels skipped and
counted, French fallback, resumable), the scheduler's claim, cancel, duplicate, statistics,
and the staff API with both roles.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Connection, Engine

from api import db
from api.domain import broadcast_delivery, broadcasts
from api.domain.broadcasts import Segment
from api.domain.requests import RequestService
from api.models import (
    Appointment,
    Broadcast,
    ChannelIdentity,
    Citizen,
    ConsularRequest,
    OutboxMessage,
    Post,
    PostService,
    Service,
    Slot,
)

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)

citizen_t = cast(sa.Table, sa.inspect(Citizen).local_table)
identity_t = cast(sa.Table, sa.inspect(ChannelIdentity).local_table)
appointment_t = cast(sa.Table, sa.inspect(Appointment).local_table)
request_t = cast(sa.Table, sa.inspect(ConsularRequest).local_table)
slot_t = cast(sa.Table, sa.inspect(Slot).local_table)
offer_t = cast(sa.Table, sa.inspect(PostService).local_table)
post_t = cast(sa.Table, sa.inspect(Post).local_table)
service_t = cast(sa.Table, sa.inspect(Service).local_table)
outbox_t = cast(sa.Table, sa.inspect(OutboxMessage).local_table)
broadcast_t = cast(sa.Table, sa.inspect(Broadcast).local_table)

TEXTS = {
    "fr": "Mission consulaire à Bouaké le 12.",
    "en": "Consular mission in Bouaké on the 12th.",
}


# --- test data ------------------------------------------------------------------------------------


@dataclass
class People:
    """Citizens, their channels, appointments and requests, written straight to the tables."""

    engine: Engine
    posts: dict[str, int] = field(default_factory=dict)
    _serial: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        with db.read(self.engine) as conn:
            self.posts = {
                code: id_ for id_, code in conn.execute(sa.select(post_t.c.id, post_t.c.code))
            }

    def citizen(
        self,
        *,
        country: str | None = "CI",
        lang: str | None = "fr",
        opted_out: bool = False,
        phone: str | None = None,
        verified: bool = False,
        whatsapp: timedelta | None = timedelta(hours=1),
        telegram: timedelta | None = None,
        unreachable: tuple[str, ...] = (),
        erased: bool = False,
    ) -> int:
        """A citizen with an identity per channel whose age (time since the last message) is
        given; `unreachable` names channels that refused the bot."""
        n = next(self._serial)
        with db.write(self.engine) as conn:
            cid = _insert(
                conn,
                citizen_t,
                phone=phone,
                phone_verified=verified,
                country=country,
                lang=lang,
                opted_out=opted_out,
                created_at=NOW - timedelta(days=30),
                erased_at=NOW if erased else None,
            )
            for channel, age in (("whatsapp", whatsapp), ("telegram", telegram)):
                if age is None:
                    continue
                address = f"+22507{n:08d}" if channel == "whatsapp" else str(900000 + n)
                _insert(
                    conn,
                    identity_t,
                    channel=channel,
                    address=address,
                    citizen_id=cid,
                    last_inbound_at=NOW - age,
                    unreachable_at=NOW - timedelta(days=1) if channel in unreachable else None,
                )
        return cid

    def simulator_only(self) -> int:
        with db.write(self.engine) as conn:
            cid = _insert(conn, citizen_t, country="CI", lang="fr", created_at=NOW)
            _insert(
                conn,
                identity_t,
                channel="simulator",
                address=f"sim-{cid}",
                citizen_id=cid,
                last_inbound_at=NOW,
            )
        return cid

    def appointment(
        self, citizen_id: int, post: str, starts_at: datetime, status: str = "booked"
    ) -> None:
        n = next(self._serial)
        with db.write(self.engine) as conn:
            offer = conn.execute(
                sa.select(offer_t.c.id, offer_t.c.service_id)
                .where(offer_t.c.post_id == self.posts[post])
                .order_by(offer_t.c.id)
                .limit(1)
            ).one()
            slot = conn.execute(
                sa.select(slot_t.c.id).where(
                    slot_t.c.post_service_id == offer.id, slot_t.c.starts_at == starts_at
                )
            ).scalar()
            if slot is None:
                slot = _insert(
                    conn,
                    slot_t,
                    post_service_id=offer.id,
                    starts_at=starts_at,
                    capacity=50,
                    booked=1,
                )
            _insert(
                conn,
                appointment_t,
                reference=f"RDV-T{n:05d}",
                citizen_id=citizen_id,
                post_id=self.posts[post],
                service_id=offer.service_id,
                slot_id=slot,
                starts_at=starts_at,
                full_name="Test",
                status=status,
                created_at=NOW,
                updated_at=NOW,
            )

    def request(
        self,
        post: str,
        status: str = "received",
        *,
        citizen_id: int | None = None,
        phone: str | None = None,
    ) -> str:
        n = next(self._serial)
        with db.write(self.engine) as conn:
            service = conn.execute(sa.select(service_t.c.id).limit(1)).scalar_one()
            _insert(
                conn,
                request_t,
                reference=f"{post}-2026-{n:06d}",
                post_id=self.posts[post],
                service_id=service,
                citizen_id=citizen_id,
                phone=phone,
                full_name="Test",
                reason="",
                status=status,
                created_at=NOW,
                updated_at=NOW,
            )
        return f"{post}-2026-{n:06d}"


def _insert(conn: Connection, table: sa.Table, **values: Any) -> int:
    return int(conn.execute(sa.insert(table).values(**values).returning(table.c.id)).scalar_one())


@pytest.fixture
def people(demo_engine: Engine) -> People:
    return People(demo_engine)


def audience(engine: Engine, **segment: Any) -> set[int]:
    """The citizen ids a segment reaches, through a real fan-out of a throwaway broadcast."""
    bid = new_broadcast(engine, Segment.model_validate(segment))
    start_now(engine, bid)
    broadcast_delivery.fan_out(engine, bid, NOW)
    with db.read(engine) as conn:
        ids = set(
            conn.execute(
                sa.select(outbox_t.c.citizen_id).where(outbox_t.c.broadcast_id == bid)
            ).scalars()
        )
        conn.execute(sa.delete(outbox_t).where(outbox_t.c.broadcast_id == bid))
    return ids


def counted(engine: Engine, **segment: Any) -> broadcasts.AudienceCount:
    with db.read(engine) as conn:
        return broadcasts.count(conn, Segment.model_validate(segment))


def new_broadcast(
    engine: Engine, segment: Segment | None = None, texts: dict[str, str] | None = None
) -> int:
    with db.write(engine) as conn:
        record = broadcasts.create(
            conn,
            title="Annonce",
            texts=texts or TEXTS,
            segment=segment or Segment(),
            created_by=None,
            now=NOW,
        )
    return record.id


def start_now(engine: Engine, broadcast_id: int) -> None:
    with db.write(engine) as conn:
        broadcasts.schedule(conn, broadcast_id, None, NOW)
        assert broadcast_delivery.start(conn, broadcast_id, NOW)


def outbox_rows(engine: Engine, broadcast_id: int) -> list[Any]:
    with db.read(engine) as conn:
        return list(
            conn.execute(
                sa.select(outbox_t)
                .where(outbox_t.c.broadcast_id == broadcast_id)
                .order_by(outbox_t.c.citizen_id)
            )
        )


def record(engine: Engine, broadcast_id: int) -> broadcasts.BroadcastRecord:
    with db.read(engine) as conn:
        return broadcasts.get(conn, broadcast_id)


# --- segments -------------------------------------------------------------------------------------


def test_posts_follow_the_belongs_to_rule(people: People, demo_engine: Engine) -> None:
    in_ci = people.citizen(country="CI")  # neither booking nor request: CI's posts
    booked_abj = people.citizen(country="GH")
    people.appointment(booked_abj, "ABJ", NOW + timedelta(days=3))
    request_bke = people.citizen(country="CI")
    people.request("BKE", citizen_id=request_bke)
    cancelled_abj = people.citizen(country="FR")  # a cancelled booking still says where
    people.appointment(cancelled_abj, "ABJ", NOW + timedelta(days=3), status="cancelled")
    by_phone = people.citizen(country="CI", phone="+22507999000", verified=True)
    # lodged with their phone but not linked (typed at a desk): it proves nothing yet
    unlinked = people.request("ACC", phone="+22507999000")
    unverified = people.citizen(country="CI", phone="+22507999001")
    people.request("ACC", phone="+22507999001")  # an unverified number proves nothing
    in_gh = people.citizen(country="GH")

    ci = {in_ci, unverified, by_phone}
    assert audience(demo_engine, posts=["ABJ"]) == ci | {booked_abj, cancelled_abj}
    assert audience(demo_engine, posts=["BKE"]) == ci | {request_bke}
    assert audience(demo_engine, posts=["ACC"]) == {in_gh}
    # once they open it from their verified phone, it is theirs: they belong to Accra
    with db.write(demo_engine) as conn:
        RequestService(conn).lookup(unlinked, None, "+22507999000", NOW, sender=by_phone)
    assert audience(demo_engine, posts=["ACC"]) == {by_phone, in_gh}
    assert audience(demo_engine, posts=["abj", "ACC"]) == {
        in_ci,
        booked_abj,
        cancelled_abj,
        unverified,
        by_phone,
        in_gh,
    }
    assert audience(demo_engine, posts=["PAR"]) == set()  # booked elsewhere: not Paris'


def test_countries_languages_and_channels(people: People, demo_engine: Engine) -> None:
    ci_fr = people.citizen(country="CI", lang="fr")
    ci_none = people.citizen(country="CI", lang=None)  # no language chosen yet: French
    gh_en = people.citizen(country="GH", lang="en", whatsapp=None, telegram=timedelta(hours=2))
    it_mos = people.citizen(country="IT", lang="mos", telegram=timedelta(hours=3))

    assert audience(demo_engine, countries=["CI"]) == {ci_fr, ci_none}
    assert audience(demo_engine, countries=["ci", "IT"]) == {ci_fr, ci_none, it_mos}
    assert audience(demo_engine, languages=["fr"]) == {ci_fr, ci_none}
    assert audience(demo_engine, languages=["en", "mos"]) == {gh_en, it_mos}
    assert audience(demo_engine, channels=["telegram"]) == {gh_en, it_mos}
    assert audience(demo_engine, channels=["whatsapp"]) == {ci_fr, ci_none, it_mos}
    assert audience(demo_engine, countries=["IT"], languages=["fr"]) == set()


def test_appointment_between_dates_optionally_at_posts(people: People, demo_engine: Engine) -> None:
    on_11_abj = people.citizen()
    people.appointment(on_11_abj, "ABJ", datetime(2026, 12, 11, 9, 30, tzinfo=UTC))
    on_12_bke = people.citizen()
    people.appointment(on_12_bke, "BKE", datetime(2026, 12, 12, 14, 0, tzinfo=UTC))
    cancelled = people.citizen()
    people.appointment(cancelled, "ABJ", datetime(2026, 12, 11, 10, 0, tzinfo=UTC), "cancelled")
    attended = people.citizen()
    people.appointment(attended, "ABJ", datetime(2026, 12, 11, 8, 0, tzinfo=UTC), "attended")
    later = people.citizen()
    people.appointment(later, "ABJ", datetime(2026, 12, 13, 0, 0, tzinfo=UTC))
    people.citizen()  # no appointment

    both_days = {"start": "2026-12-11", "end": "2026-12-12"}
    assert audience(demo_engine, appointment=both_days) == {on_11_abj, on_12_bke, attended}
    one_day = {"start": "2026-12-11", "end": "2026-12-11"}
    assert audience(demo_engine, appointment=one_day) == {on_11_abj, attended}
    at_bke = {**both_days, "posts": ["BKE"]}
    assert audience(demo_engine, appointment=at_bke) == {on_12_bke}


def test_request_in_statuses(people: People, demo_engine: Engine) -> None:
    ready_abj = people.citizen()
    people.request("ABJ", "ready", citizen_id=ready_abj)
    ready_acc = people.citizen(country="GH")
    people.request("ACC", "ready", citizen_id=ready_acc)
    received = people.citizen()
    people.request("ABJ", "received", citizen_id=received)
    by_phone = people.citizen(phone="+22507888000", verified=True)
    unlinked = people.request("ABJ", "ready", phone="+22507888000")  # not theirs until opened

    assert audience(demo_engine, request={"statuses": ["ready"]}) == {ready_abj, ready_acc}
    with db.write(demo_engine) as conn:
        RequestService(conn).lookup(unlinked, None, "+22507888000", NOW, sender=by_phone)
    assert audience(demo_engine, request={"statuses": ["ready"]}) == {
        ready_abj,
        ready_acc,
        by_phone,
    }
    assert audience(demo_engine, request={"statuses": ["ready"], "posts": ["ABJ"]}) == {
        ready_abj,
        by_phone,
    }
    assert audience(demo_engine, request={"statuses": ["ready", "received"], "posts": ["ABJ"]}) == {
        ready_abj,
        received,
        by_phone,
    }


def test_erased_and_simulator_only_citizens_are_not_in_the_audience(
    people: People, demo_engine: Engine
) -> None:
    kept = people.citizen()
    people.citizen(erased=True)
    people.simulator_only()
    assert audience(demo_engine) == {kept}
    assert counted(demo_engine).total == 1


def test_count_is_live_and_splits_who_cannot_receive(people: People, demo_engine: Engine) -> None:
    for _ in range(3):
        people.citizen()
    people.citizen(opted_out=True)
    people.citizen(unreachable=("whatsapp",))
    people.citizen(opted_out=True, unreachable=("whatsapp",))  # counted once, as opted out
    people.citizen(country="GH")

    assert counted(demo_engine, countries=["CI"]) == broadcasts.AudienceCount(
        total=6, reachable=3, opted_out=2, unreachable=1
    )
    people.citizen()
    assert counted(demo_engine, countries=["CI"]).reachable == 4
    assert counted(demo_engine).total == 8


def test_segment_validation() -> None:
    with pytest.raises(ValueError, match="extra"):
        Segment.model_validate({"postz": ["ABJ"]})
    with pytest.raises(ValueError, match="end is before start"):
        Segment.model_validate({"appointment": {"start": "2026-12-12", "end": "2026-12-11"}})
    with pytest.raises(ValueError, match="literal_error"):
        Segment.model_validate({"languages": ["de"]})
    with pytest.raises(ValueError, match="literal_error"):
        Segment.model_validate({"channels": ["simulator"]})
    with pytest.raises(ValueError, match="too_short"):
        Segment.model_validate({"request": {"statuses": []}})
    assert Segment.model_validate({"posts": [" abj "], "countries": ["ci"]}).to_json() == {
        "posts": ["ABJ"],
        "countries": ["CI"],
    }


def test_unknown_posts_and_texts_are_refused(demo_engine: Engine) -> None:
    with db.write(demo_engine) as conn, pytest.raises(broadcasts.UnknownPosts, match="XYZ"):
        broadcasts.create(
            conn,
            title="t",
            texts=TEXTS,
            segment=Segment(posts=["ABJ", "XYZ"]),
            created_by=None,
            now=NOW,
        )
    with db.write(demo_engine) as conn, pytest.raises(ValueError, match="French"):
        broadcasts.create(
            conn, title="t", texts={"en": "Hello"}, segment=Segment(), created_by=None, now=NOW
        )
    with db.write(demo_engine) as conn, pytest.raises(ValueError, match="unknown language"):
        broadcasts.create(
            conn,
            title="t",
            texts={"fr": "Bonjour", "xx": "?"},
            segment=Segment(),
            created_by=None,
            now=NOW,
        )


# --- fan-out --------------------------------------------------------------------------------------


def test_fan_out_once_per_citizen_on_the_last_used_channel(
    people: People, demo_engine: Engine
) -> None:
    whatsapp_last = people.citizen(whatsapp=timedelta(minutes=5), telegram=timedelta(days=2))
    telegram_last = people.citizen(whatsapp=timedelta(days=3), telegram=timedelta(hours=1))
    # The last used refused the bot: the other channel carries it.
    blocked_last = people.citizen(
        whatsapp=timedelta(days=3), telegram=timedelta(hours=1), unreachable=("telegram",)
    )
    bid = new_broadcast(demo_engine)
    start_now(demo_engine, bid)

    result = broadcast_delivery.fan_out(demo_engine, bid, NOW)

    assert result.finished
    assert result.queued == 3
    rows = outbox_rows(demo_engine, bid)
    assert [(r.citizen_id, r.channel) for r in rows] == [
        (whatsapp_last, "whatsapp"),
        (telegram_last, "telegram"),
        (blocked_last, "whatsapp"),
    ]
    assert {r.lane for r in rows} == {2}
    assert {r.kind for r in rows} == {"broadcast"}
    assert {r.status for r in rows} == {"pending"}
    assert [r.dedupe_key for r in rows] == [
        f"broadcast:{bid}:citizen:{cid}" for cid in (whatsapp_last, telegram_last, blocked_last)
    ]
    # Restricted to one channel, the last used of that channel.
    only_tg = new_broadcast(demo_engine, Segment(channels=["telegram"]))
    start_now(demo_engine, only_tg)
    broadcast_delivery.fan_out(demo_engine, only_tg, NOW)
    tg_rows = outbox_rows(demo_engine, only_tg)
    assert [(r.citizen_id, r.channel, r.status) for r in tg_rows] == [
        (whatsapp_last, "telegram", "pending"),
        (telegram_last, "telegram", "pending"),
        (blocked_last, "telegram", "skipped"),
    ]


def test_opt_outs_and_unreachable_are_skipped_and_counted(
    people: People, demo_engine: Engine
) -> None:
    reachable = people.citizen()
    stopped = people.citizen(opted_out=True, telegram=timedelta(minutes=1))
    blocked = people.citizen(whatsapp=timedelta(hours=2), unreachable=("whatsapp",))
    bid = new_broadcast(demo_engine)
    start_now(demo_engine, bid)

    broadcast_delivery.fan_out(demo_engine, bid, NOW)

    rows = {r.citizen_id: r for r in outbox_rows(demo_engine, bid)}
    assert rows[reachable].status == "pending"
    assert (rows[stopped].status, rows[stopped].skip_reason) == ("skipped", "opted_out")
    assert (rows[blocked].status, rows[blocked].skip_reason) == ("skipped", "unreachable")
    done = record(demo_engine, bid)
    assert done.status == "sent"
    assert done.queued == 1
    assert done.skipped == {"opted_out": 1, "unreachable": 1}
    with db.read(demo_engine) as conn:
        stats = broadcast_delivery.stats(conn, bid)
    assert stats.audience == 3
    assert stats.queued == 1
    assert stats.pending == 1
    assert stats.skipped == {"opted_out": 1, "unreachable": 1}


def test_each_citizen_gets_their_language_or_french(people: People, demo_engine: Engine) -> None:
    en = people.citizen(lang="en")
    mos = people.citizen(lang="mos")  # no Mooré text: French
    none = people.citizen(lang=None)
    bid = new_broadcast(demo_engine)
    start_now(demo_engine, bid)
    broadcast_delivery.fan_out(demo_engine, bid, NOW)

    rows = {r.citizen_id: r for r in outbox_rows(demo_engine, bid)}
    assert (rows[en].lang, rows[en].payload) == ("en", {"text": TEXTS["en"]})
    assert (rows[mos].lang, rows[mos].payload) == ("fr", {"text": TEXTS["fr"]})
    assert (rows[none].lang, rows[none].payload) == ("fr", {"text": TEXTS["fr"]})


def test_fan_out_resumes_where_it_stopped_without_duplicates(
    people: People, demo_engine: Engine
) -> None:
    ids = [people.citizen() for _ in range(7)]
    people.citizen(opted_out=True)
    bid = new_broadcast(demo_engine)
    start_now(demo_engine, bid)

    first = broadcast_delivery.fan_out(demo_engine, bid, NOW, batch=3, max_batches=1)

    assert (first.batches, first.queued, first.finished) == (1, 3, False)
    with db.read(demo_engine) as conn:
        cursor = conn.execute(
            sa.select(broadcast_t.c.cursor).where(broadcast_t.c.id == bid)
        ).scalar_one()
    assert cursor == ids[2]
    assert record(demo_engine, bid).status == "sending"

    rest = broadcast_delivery.fan_out(demo_engine, bid, NOW, batch=3)
    again = broadcast_delivery.fan_out(demo_engine, bid, NOW, batch=3)

    assert (rest.finished, rest.queued, rest.skipped) == (True, 4, {"opted_out": 1})
    assert (again.batches, again.stopped) == (0, "sent")
    rows = outbox_rows(demo_engine, bid)
    assert [r.citizen_id for r in rows] == [*ids, ids[-1] + 1]
    done = record(demo_engine, bid)
    assert (done.status, done.queued, done.skipped) == ("sent", 7, {"opted_out": 1})


def test_a_crash_mid_batch_loses_nothing_and_duplicates_nothing(
    people: People, demo_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [people.citizen() for _ in range(10)]
    bid = new_broadcast(demo_engine)
    start_now(demo_engine, bid)
    real = broadcast_delivery._outbox_rows
    calls = itertools.count()

    def dies_in_the_second_batch(*args: Any) -> list[Any]:
        if next(calls) == 1:
            raise RuntimeError("killed")
        return real(*args)

    monkeypatch.setattr(broadcast_delivery, "_outbox_rows", dies_in_the_second_batch)
    with pytest.raises(RuntimeError):
        broadcast_delivery.fan_out(demo_engine, bid, NOW, batch=4)
    assert [r.citizen_id for r in outbox_rows(demo_engine, bid)] == ids[:4]
    monkeypatch.setattr(broadcast_delivery, "_outbox_rows", real)

    # The scheduler's next run picks the interrupted fan-out up.
    assert broadcast_delivery.due_broadcasts_job(demo_engine, NOW + timedelta(seconds=5)) == [bid]

    assert [r.citizen_id for r in outbox_rows(demo_engine, bid)] == ids
    assert record(demo_engine, bid).queued == 10


def test_rows_already_written_are_not_written_twice(people: People, demo_engine: Engine) -> None:
    """The dedupe key is the backstop if the cursor were ever behind (e.g. restored)."""
    ids = [people.citizen() for _ in range(4)]
    bid = new_broadcast(demo_engine)
    start_now(demo_engine, bid)
    broadcast_delivery.fan_out(demo_engine, bid, NOW)
    with db.write(demo_engine) as conn:
        conn.execute(
            sa.update(broadcast_t)
            .where(broadcast_t.c.id == bid)
            .values(status="sending", cursor=0, queued=0, skipped={})
        )
    again = broadcast_delivery.fan_out(demo_engine, bid, NOW)
    assert again.queued == 0
    assert [r.citizen_id for r in outbox_rows(demo_engine, bid)] == ids


def test_two_fan_outs_at_once_write_each_citizen_once(people: People, demo_engine: Engine) -> None:
    ids = [people.citizen() for _ in range(60)]
    bid = new_broadcast(demo_engine)
    start_now(demo_engine, bid)
    results: list[broadcast_delivery.FanOutResult] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(broadcast_delivery.fan_out(demo_engine, bid, NOW, batch=5))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert not errors
    assert sum(r.queued for r in results) == 60
    assert [r.citizen_id for r in outbox_rows(demo_engine, bid)] == ids
    assert record(demo_engine, bid).queued == 60


def test_a_large_audience_streams_in_batches(people: People, demo_engine: Engine) -> None:
    with db.write(demo_engine) as conn:
        first = _insert(conn, citizen_t, country="CI", lang="fr", created_at=NOW)
        conn.execute(
            sa.insert(citizen_t),
            [{"country": "CI", "lang": "en", "created_at": NOW} for _ in range(2499)],
        )
        conn.execute(
            sa.insert(identity_t),
            [
                {
                    "channel": "telegram",
                    "address": str(cid),
                    "citizen_id": cid,
                    "last_inbound_at": NOW,
                }
                for cid in range(first, first + 2500)
            ],
        )
    bid = new_broadcast(demo_engine)
    start_now(demo_engine, bid)
    result = broadcast_delivery.fan_out(demo_engine, bid, NOW, batch=1000)
    assert (result.batches, result.queued, result.finished) == (3, 2500, True)


# --- the scheduler's job --------------------------------------------------------------------------


def test_due_job_claims_only_what_is_due(people: People, demo_engine: Engine) -> None:
    people.citizen()
    due = new_broadcast(demo_engine)
    later = new_broadcast(demo_engine)
    draft = new_broadcast(demo_engine)
    with db.write(demo_engine) as conn:
        broadcasts.schedule(conn, due, NOW + timedelta(minutes=10), NOW)
        broadcasts.schedule(conn, later, NOW + timedelta(hours=10), NOW)

    assert broadcast_delivery.due_broadcasts_job(demo_engine, NOW) == []
    assert broadcast_delivery.due_broadcasts_job(demo_engine, NOW + timedelta(minutes=10)) == [due]
    assert broadcast_delivery.due_broadcasts_job(demo_engine, NOW + timedelta(minutes=11)) == []

    assert record(demo_engine, due).status == "sent"
    assert record(demo_engine, due).started_at == NOW + timedelta(minutes=10)
    assert record(demo_engine, later).status == "scheduled"
    assert record(demo_engine, draft).status == "draft"
    assert len(outbox_rows(demo_engine, due)) == 1


def test_two_clocks_claim_a_broadcast_once(people: People, demo_engine: Engine) -> None:
    ids = [people.citizen() for _ in range(30)]
    bids = [new_broadcast(demo_engine) for _ in range(3)]
    with db.write(demo_engine) as conn:
        for bid in bids:
            broadcasts.schedule(conn, bid, None, NOW)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def clock() -> None:
        try:
            barrier.wait()
            broadcast_delivery.due_broadcasts_job(demo_engine, NOW)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=clock) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert not errors
    for bid in bids:
        assert [r.citizen_id for r in outbox_rows(demo_engine, bid)] == ids
        assert record(demo_engine, bid).queued == 30


def test_a_draft_is_not_sent_and_only_a_draft_is_scheduled(demo_engine: Engine) -> None:
    bid = new_broadcast(demo_engine)
    with db.write(demo_engine) as conn:
        # A time in the past means now.
        scheduled = broadcasts.schedule(conn, bid, NOW - timedelta(days=1), NOW)
    assert (scheduled.status, scheduled.send_at) == ("scheduled", NOW)
    with db.write(demo_engine) as conn, pytest.raises(broadcasts.WrongStatus):
        broadcasts.schedule(conn, bid, None, NOW)
    with db.write(demo_engine) as conn, pytest.raises(broadcasts.WrongStatus):
        broadcasts.update_draft(conn, bid, title="changed")


# --- control --------------------------------------------------------------------------------------


def test_cancel_stops_what_is_not_sent(people: People, demo_engine: Engine) -> None:
    ids = [people.citizen() for _ in range(5)]
    bid = new_broadcast(demo_engine)
    start_now(demo_engine, bid)
    broadcast_delivery.fan_out(demo_engine, bid, NOW)
    with db.write(demo_engine) as conn:  # a worker sent two and holds a third
        for cid, status in ((ids[0], "sent"), (ids[1], "delivered"), (ids[2], "sending")):
            conn.execute(
                sa.update(outbox_t)
                .where(outbox_t.c.broadcast_id == bid, outbox_t.c.citizen_id == cid)
                .values(status=status)
            )

    with db.write(demo_engine) as conn:
        cancelled, stopped = broadcasts.cancel(conn, bid, NOW)

    assert (cancelled.status, stopped) == ("cancelled", 2)
    statuses = [r.status for r in outbox_rows(demo_engine, bid)]
    assert statuses == ["sent", "delivered", "sending", "cancelled", "cancelled"]
    with db.write(demo_engine) as conn:  # again: nothing more to do
        assert broadcasts.cancel(conn, bid, NOW)[1] == 0
    with db.read(demo_engine) as conn:
        stats = broadcast_delivery.stats(conn, bid)
    assert (stats.sent, stats.delivered, stats.pending, stats.cancelled) == (2, 1, 1, 2)


def test_cancel_stops_a_fan_out_between_batches(people: People, demo_engine: Engine) -> None:
    for _ in range(6):
        people.citizen()
    bid = new_broadcast(demo_engine)
    start_now(demo_engine, bid)
    broadcast_delivery.fan_out(demo_engine, bid, NOW, batch=2, max_batches=1)
    with db.write(demo_engine) as conn:
        broadcasts.cancel(conn, bid, NOW)

    result = broadcast_delivery.fan_out(demo_engine, bid, NOW, batch=2)

    assert (result.batches, result.stopped) == (0, "cancelled")
    assert [r.status for r in outbox_rows(demo_engine, bid)] == ["cancelled", "cancelled"]
    assert broadcast_delivery.due_broadcasts_job(demo_engine, NOW) == []


def test_cancel_of_a_scheduled_broadcast_and_of_one_fully_sent(
    people: People, demo_engine: Engine
) -> None:
    people.citizen()
    scheduled = new_broadcast(demo_engine)
    with db.write(demo_engine) as conn:
        broadcasts.schedule(conn, scheduled, NOW + timedelta(days=1), NOW)
        assert broadcasts.cancel(conn, scheduled, NOW)[0].status == "cancelled"
    assert broadcast_delivery.due_broadcasts_job(demo_engine, NOW + timedelta(days=2)) == []

    gone = new_broadcast(demo_engine)
    start_now(demo_engine, gone)
    broadcast_delivery.fan_out(demo_engine, gone, NOW)
    with db.write(demo_engine) as conn:
        conn.execute(
            sa.update(outbox_t).where(outbox_t.c.broadcast_id == gone).values(status="sent")
        )
    with db.write(demo_engine) as conn, pytest.raises(broadcasts.WrongStatus):
        broadcasts.cancel(conn, gone, NOW)


def test_duplicate_makes_a_new_draft(demo_engine: Engine) -> None:
    bid = new_broadcast(demo_engine, Segment(posts=["ABJ"], languages=["fr"]))
    start_now(demo_engine, bid)
    with db.write(demo_engine) as conn:
        copy = broadcasts.duplicate(conn, bid, created_by=None, now=NOW + timedelta(days=1))
    source = record(demo_engine, bid)
    assert copy.id != bid
    assert copy.status == "draft"
    assert (copy.title, copy.texts, copy.segment) == (source.title, source.texts, source.segment)
    assert (copy.queued, copy.skipped, copy.send_at) == (0, {}, None)


def test_stats_follow_delivery(people: People, demo_engine: Engine) -> None:
    ids = [people.citizen() for _ in range(8)]
    people.citizen(opted_out=True)
    bid = new_broadcast(demo_engine)
    start_now(demo_engine, bid)
    broadcast_delivery.fan_out(demo_engine, bid, NOW)
    outcomes = [
        ("sent", ""),
        ("delivered", ""),
        ("delivered", ""),
        ("read", ""),
        ("failed", ""),
        ("skipped", "outside_window"),
        ("sending", ""),
    ]
    with db.write(demo_engine) as conn:
        for cid, (status, reason) in zip(ids, outcomes, strict=False):
            conn.execute(
                sa.update(outbox_t)
                .where(outbox_t.c.broadcast_id == bid, outbox_t.c.citizen_id == cid)
                .values(status=status, skip_reason=reason)
            )
    with db.read(demo_engine) as conn:
        stats = broadcast_delivery.stats(conn, bid)
    assert stats.as_dict() == {
        "broadcast_id": bid,
        "status": "sent",
        "audience": 9,
        "queued": 8,
        "pending": 2,
        "sent": 4,
        "delivered": 3,
        "read": 1,
        "failed": 1,
        "cancelled": 0,
        "skipped": {"opted_out": 1, "outside_window": 1},
    }
    with db.read(demo_engine) as conn, pytest.raises(broadcasts.BroadcastNotFound):
        broadcast_delivery.stats(conn, 999999)


# --- the staff API --------------------------------------------------------------------------------


@pytest.fixture
def api(demo_engine: Engine) -> Iterator[TestClient]:
    """The broadcast routes, as the staff API mounts them, with a fixed clock."""
    from api.http.problems import CatchAllErrors
    from api.http.staff.broadcasts import router

    app = FastAPI()
    app.state.engine = demo_engine
    app.state.clock = lambda: NOW
    app.add_middleware(CatchAllErrors)
    app.include_router(router, prefix="/api/v1")
    with TestClient(app) as client:
        yield client


def test_the_app_serves_the_broadcast_routes(demo_engine: Engine) -> None:
    from api.app import create_app
    from api.settings import Settings

    app = create_app(
        Settings(database_url=demo_engine.url.render_as_string(hide_password=False)),
        engine=demo_engine,
        run_worker=False,
    )
    paths = set(app.openapi()["paths"])
    assert {
        "/api/v1/broadcasts",
        "/api/v1/broadcasts/count",
        "/api/v1/broadcasts/{broadcast_id}",
        "/api/v1/broadcasts/{broadcast_id}/send",
        "/api/v1/broadcasts/{broadcast_id}/cancel",
        "/api/v1/broadcasts/{broadcast_id}/duplicate",
        "/api/v1/broadcasts/{broadcast_id}/stats",
    } <= paths


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _body(**segment: Any) -> dict[str, Any]:
    return {"title": "Mission consulaire", "texts": TEXTS, "segment": segment}


def test_api_compose_count_send_stats(api: TestClient, people: People, demo_engine: Engine) -> None:
    from tests.support.staff import admin_token

    admin = _auth(admin_token(demo_engine))
    for _ in range(3):
        people.citizen(country="CI")
    people.citizen(country="CI", opted_out=True)
    people.citizen(country="GH")

    counted_ = api.post("/api/v1/broadcasts/count", json={"posts": ["ABJ"]}, headers=admin)
    assert counted_.status_code == 200, counted_.text
    assert counted_.json() == {"total": 4, "reachable": 3, "opted_out": 1, "unreachable": 0}

    created = api.post("/api/v1/broadcasts", json=_body(posts=["ABJ"]), headers=admin)
    assert created.status_code == 201, created.text
    bid = created.json()["id"]
    assert created.json()["status"] == "draft"
    assert created.json()["segment"] == {
        "posts": ["ABJ"],
        "countries": [],
        "languages": [],
        "channels": [],
        "appointment": None,
        "request": None,
    }

    changed = api.patch(
        f"/api/v1/broadcasts/{bid}", json={"title": "Mission à Bouaké"}, headers=admin
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["title"] == "Mission à Bouaké"

    sent = api.post(f"/api/v1/broadcasts/{bid}/send", headers=admin)
    assert sent.status_code == 200, sent.text
    assert (sent.json()["status"], sent.json()["send_at"]) == ("scheduled", "2026-12-01T08:00:00Z")
    again = api.post(f"/api/v1/broadcasts/{bid}/send", headers=admin)
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert (
        api.patch(f"/api/v1/broadcasts/{bid}", json={"title": "x"}, headers=admin).status_code
        == 409
    )

    broadcast_delivery.due_broadcasts_job(demo_engine, NOW)

    stats = api.get(f"/api/v1/broadcasts/{bid}/stats", headers=admin)
    assert stats.status_code == 200, stats.text
    assert stats.json() == {
        "broadcast_id": bid,
        "status": "sent",
        "audience": 4,
        "queued": 3,
        "pending": 3,
        "sent": 0,
        "delivered": 0,
        "read": 0,
        "failed": 0,
        "cancelled": 0,
        "skipped": {"opted_out": 1},
    }
    got = api.get(f"/api/v1/broadcasts/{bid}", headers=admin).json()
    assert (got["status"], got["queued"], got["skipped"]) == ("sent", 3, {"opted_out": 1})

    cancelled = api.post(f"/api/v1/broadcasts/{bid}/cancel", headers=admin)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert api.get(f"/api/v1/broadcasts/{bid}/stats", headers=admin).json()["cancelled"] == 3

    copy = api.post(f"/api/v1/broadcasts/{bid}/duplicate", headers=admin)
    assert copy.status_code == 201, copy.text
    assert copy.json()["status"] == "draft"
    assert copy.json()["id"] != bid

    listed = api.get("/api/v1/broadcasts", headers=admin).json()
    assert [b["id"] for b in listed["items"]] == [copy.json()["id"], bid]
    assert listed["total"] == 2
    only_drafts = api.get("/api/v1/broadcasts?status=draft", headers=admin).json()
    assert [b["id"] for b in only_drafts["items"]] == [copy.json()["id"]]

    with db.read(demo_engine) as conn:
        actions = conn.execute(
            sa.text("SELECT action FROM audit_log WHERE entity = 'broadcast' ORDER BY id")
        ).scalars()
        assert list(actions) == ["create", "update", "schedule", "cancel", "create"]


def test_api_schedules_for_later(api: TestClient, demo_engine: Engine) -> None:
    from tests.support.staff import admin_token

    admin = _auth(admin_token(demo_engine))
    bid = api.post("/api/v1/broadcasts", json=_body(), headers=admin).json()["id"]
    later = api.post(
        f"/api/v1/broadcasts/{bid}/send",
        json={"send_at": "2026-12-10T09:00:00+01:00"},
        headers=admin,
    )
    assert later.status_code == 200, later.text
    assert later.json()["send_at"] == "2026-12-10T08:00:00Z"
    naive = api.post("/api/v1/broadcasts", json=_body(), headers=admin).json()["id"]
    refused = api.post(
        f"/api/v1/broadcasts/{naive}/send", json={"send_at": "2026-12-10T09:00:00"}, headers=admin
    )
    assert refused.status_code == 422


def test_api_validation_is_problem_json(api: TestClient, demo_engine: Engine) -> None:
    from tests.support.staff import admin_token

    admin = _auth(admin_token(demo_engine))
    cases = [
        {"title": "t", "texts": {"en": "Hello"}},  # French missing
        {"title": "t", "texts": {"fr": "  "}},
        {"title": "t", "texts": {"fr": "x", "de": "y"}},
        {"title": "t", "texts": {"fr": "x" * 1601}},
        {"title": "t", "texts": {"fr": "x"}, "segment": {"posts": ["XYZ"]}},
        {"title": "t", "texts": {"fr": "x"}, "segment": {"languages": ["de"]}},
        {"title": "", "texts": {"fr": "x"}},
    ]
    for body in cases:
        answer = api.post("/api/v1/broadcasts", json=body, headers=admin)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    assert api.get("/api/v1/broadcasts/424242", headers=admin).status_code == 404
    assert api.get("/api/v1/broadcasts").status_code == 401


def test_api_agents_stay_within_their_posts(
    api: TestClient, people: People, demo_engine: Engine
) -> None:
    from tests.support.staff import admin_token, agent_token

    admin = _auth(admin_token(demo_engine))
    abidjan = _auth(agent_token(demo_engine, "ABJ", "BKE"))
    accra = _auth(agent_token(demo_engine, "ACC"))
    people.citizen(country="CI")
    people.citizen(country="GH")

    forbidden: list[dict[str, Any]] = [
        {},  # everybody
        {"countries": ["CI"]},  # no post named
        {"posts": ["ABJ", "ACC"]},
        {
            "posts": ["ABJ"],
            "appointment": {"start": "2026-12-11", "end": "2026-12-11", "posts": ["ACC"]},
        },
        {"posts": ["ABJ"], "request": {"statuses": ["ready"], "posts": ["ACC"]}},
    ]
    for segment in forbidden:
        answer = api.post("/api/v1/broadcasts", json=_body(**segment), headers=abidjan)
        assert answer.status_code == 403, (segment, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert (
            api.post("/api/v1/broadcasts/count", json=segment, headers=abidjan).status_code == 403
        )

    assert (
        api.post("/api/v1/broadcasts/count", json={"posts": ["ABJ"]}, headers=abidjan).json()[
            "total"
        ]
        == 1
    )
    mine = api.post("/api/v1/broadcasts", json=_body(posts=["ABJ", "BKE"]), headers=abidjan)
    assert mine.status_code == 201, mine.text
    mine_id = mine.json()["id"]
    theirs = api.post("/api/v1/broadcasts", json=_body(posts=["ACC"]), headers=accra).json()["id"]
    everyone = api.post("/api/v1/broadcasts", json=_body(), headers=admin).json()["id"]

    # Another post's broadcast is answered as one that does not exist.
    for path in ("", "/stats"):
        assert api.get(f"/api/v1/broadcasts/{theirs}{path}", headers=abidjan).status_code == 404
        assert api.get(f"/api/v1/broadcasts/{everyone}{path}", headers=abidjan).status_code == 404
        assert api.get(f"/api/v1/broadcasts/{mine_id}{path}", headers=abidjan).status_code == 200
    for action in ("send", "cancel", "duplicate"):
        answer = api.post(f"/api/v1/broadcasts/{theirs}/{action}", headers=abidjan)
        assert answer.status_code == 404, action
    assert (
        api.patch(f"/api/v1/broadcasts/{theirs}", json={"title": "x"}, headers=abidjan).status_code
        == 404
    )
    # Widening one's own draft beyond one's posts is refused.
    widened = api.patch(
        f"/api/v1/broadcasts/{mine_id}", json={"segment": {"posts": ["ACC"]}}, headers=abidjan
    )
    assert widened.status_code == 403
    assert [b["id"] for b in api.get("/api/v1/broadcasts", headers=abidjan).json()["items"]] == [
        mine_id
    ]
    assert {b["id"] for b in api.get("/api/v1/broadcasts", headers=admin).json()["items"]} == {
        mine_id,
        theirs,
        everyone,
    }
    assert api.post(f"/api/v1/broadcasts/{mine_id}/send", headers=abidjan).status_code == 200
    assert api.post(f"/api/v1/broadcasts/{mine_id}/duplicate", headers=abidjan).status_code == 201
