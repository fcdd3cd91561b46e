"""Draws: through the chat (the pure flows on MemoryWorld, then a whole transcript on the
real store), and on the real store (SQLite and PostgreSQL): registering interest, the period
kept from first-come booking, the draw reproducible from its recorded seed, seats offered in
turn and expiring to the next, those not reached told, the job run twice (and on two clocks
at once), cancelling, and the staff API's rules."""

from __future__ import annotations

import random
import threading
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from api import db
from api.domain import draws, waitlist
from api.domain.booking import BookingService
from api.domain.tables import table
from api.models import Draw, DrawEntry, PostService, Service, Slot, WaitlistEntry
from api.world import SqlWorld
from flows.world import BookingOutcome, DrawOutcome
from tests.support.dialog import NAME, Dialog, at_menu, book_for
from tests.support.memory_world import MemoryWorld
from tests.support.sql_world import TxWorld
from tests.support.staff_api import NOW, StaffApi, staff_api

draw_t = table(Draw)
reg_t = table(DrawEntry)
entry_t = table(WaitlistEntry)
slot_t = table(Slot)
offer_t = table(PostService)
service_t = table(Service)

DAY = date(2026, 12, 14)  # the mission's day: a Monday, two weeks ahead
CLOSE = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)  # Abidjan is on UTC
HOLD = timedelta(hours=2)
BODY = {
    "service": "passport",
    "opens_at": "2026-12-01T08:00:00",
    "closes_at": "2026-12-04T18:00:00",
    "first_day": DAY.isoformat(),
    "last_day": DAY.isoformat(),
}
NAMES = ("Awa Ouédraogo", "Issa Sawadogo", "Rasmané Kaboré", "Fatim Zongo", "Moussa Traoré")


@pytest.fixture
def api(demo_engine: Engine) -> StaffApi:
    return staff_api(demo_engine)


def world(engine: Engine, action: Any) -> Any:
    with db.write(engine) as conn:
        return action(SqlWorld(conn))


def open_draw(api: StaffApi, who: str = "abj", **changes: Any) -> dict[str, Any]:
    response = api.post("/posts/ABJ/draws", who=who, json={**BODY, **changes})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def period_seats(engine: Engine, n: int) -> list[datetime]:
    """Abidjan's passport has `n` seats in all on the mission's day (one per slot), none else."""
    with db.write(engine) as conn:
        offer_id = conn.execute(
            sa.select(offer_t.c.id)
            .join(service_t, service_t.c.id == offer_t.c.service_id)
            .where(service_t.c.code == "passport", offer_t.c.post_id == 1)
        ).scalar_one()
        conn.execute(sa.update(offer_t).where(offer_t.c.id == offer_id).values(seats_per_slot=0))
        starts = [datetime.combine(DAY, time(8), UTC) + timedelta(minutes=30 * i) for i in range(n)]
        for starts_at in starts:
            conn.execute(
                sa.insert(slot_t).values(
                    post_service_id=offer_id, starts_at=starts_at, capacity=1, booked=0
                )
            )
    return starts


def registered(api: StaffApi, draw_id: int, count: int) -> list[int]:
    """`count` citizens, each registered under a name of their own."""
    citizens = []
    for n in range(count):
        citizen = api.citizen(f"+22507010001{n:02d}")
        with db.write(api.engine) as conn:
            outcome = SqlWorld(conn).register_for_draw(citizen, draw_id, NAMES[n], NOW)
        assert outcome is DrawOutcome.registered
        citizens.append(citizen)
    return citizens


def in_line(engine: Engine, draw_id: int) -> list[Any]:
    """The draw's line of the waitlist, in the drawn order."""
    with db.read(engine) as conn:
        return list(
            conn.execute(sa.select(entry_t).where(entry_t.c.draw_id == draw_id).order_by("id"))
        )


def told(api: StaffApi, citizen: int, dedupe: str) -> list[dict[str, Any]]:
    return [m for m in api.outbox(citizen) if m["dedupe_key"].startswith(dedupe)]


# -- registering, and the period kept from first-come booking ---------------------------------


def test_registering_interest_once_per_phone_and_per_person(api: StaffApi) -> None:
    draw = open_draw(api)
    awa, issa, moussa = (
        api.citizen(p) for p in ("+2250701000001", "+2250701000002", "+2250701000003")
    )

    def register(citizen: int, name: str, now: datetime = NOW) -> DrawOutcome:
        return world(api.engine, lambda w: w.register_for_draw(citizen, draw["id"], name, now))  # type: ignore[no-any-return]

    assert register(awa, "Awa Ouédraogo") is DrawOutcome.registered
    assert register(awa, "Awa Ouédraogo") is DrawOutcome.already  # twice: refused
    assert register(awa, "Aminata Ouédraogo") is DrawOutcome.already  # one per phone
    assert register(issa, "OUEDRAOGO awa") is DrawOutcome.already  # one per person
    assert register(issa, "Issa Sawadogo") is DrawOutcome.registered
    assert register(moussa, "Moussa Traoré", CLOSE) is DrawOutcome.closed  # the window closed
    pending = world(api.engine, lambda w: w.pending_draw(awa, "ABJ", "passport", NOW))
    assert (pending.id, pending.registered, pending.first_day) == (draw["id"], True, DAY)
    assert (
        world(api.engine, lambda w: w.pending_draw(moussa, "ABJ", "passport", NOW)).registered
        is False
    )
    assert world(api.engine, lambda w: w.pending_draw(awa, "ABJ", "cnib", NOW)) is None
    shown = api.get(f"/draws/{draw['id']}", who="abj").json()
    assert shown["registrants_count"] == 2
    assert [(r["full_name"], r["rank"], r["result"]) for r in shown["registrants"]] == [
        ("Awa Ouédraogo", None, "registered"),
        ("Issa Sawadogo", None, "registered"),
    ]


def test_the_period_is_not_sold_first_come_while_the_draw_is_pending(api: StaffApi) -> None:
    citizen = api.citizen("+2250701000001")
    with db.read(api.engine) as conn:
        mission_day = BookingService(conn).open_times("ABJ", "passport", DAY, NOW)
    assert mission_day  # bookable first come before the draw is opened
    draw = open_draw(api)
    with db.write(api.engine) as conn:
        booking = BookingService(conn)
        assert booking.open_times("ABJ", "passport", DAY, NOW) == []
        assert DAY not in booking.open_days("ABJ", "passport", NOW, 30)
        assert booking.open_times("ABJ", "passport", DAY + timedelta(days=1), NOW)  # the others
        result = booking.book(
            citizen, "ABJ", "passport", mission_day[0].starts_at, "Awa Ouédraogo", NOW
        )
    assert result.outcome is BookingOutcome.unavailable
    # Cancelled: the day is sold first come again.
    assert api.post(f"/draws/{draw['id']}/cancel", who="abj").status_code == 200
    with db.read(api.engine) as conn:
        assert BookingService(conn).open_times("ABJ", "passport", DAY, NOW) == mission_day


# -- the draw: reproducible, offered in turn, expiring to the next ----------------------------


def test_the_order_is_the_seeds_shuffle_of_the_sorted_ids() -> None:
    assert draws.order("7d1c2e", [5, 3, 1, 4, 2]) == draws.order("7d1c2e", [1, 2, 3, 4, 5])
    expected = [1, 2, 3, 4, 5]
    random.Random("7d1c2e").shuffle(expected)
    assert draws.order("7d1c2e", [4, 2, 5, 1, 3]) == expected
    assert draws.order("seed-1", range(1, 9)) == [3, 1, 6, 5, 2, 8, 4, 7]  # stable in time


def test_the_draw_is_reproducible_from_its_recorded_seed_and_audited(api: StaffApi) -> None:
    period_seats(api.engine, 2)
    draw = open_draw(api)
    registered(api, draw["id"], 5)
    assert draws.run(api.engine, CLOSE - timedelta(seconds=1)) == 0  # not yet
    assert draws.run(api.engine, CLOSE) == 1
    with db.read(api.engine) as conn:
        row = conn.execute(sa.select(draw_t).where(draw_t.c.id == draw["id"])).one()
        regs = list(conn.execute(sa.select(reg_t).where(reg_t.c.draw_id == draw["id"])))
    assert row.status == "drawn"
    assert len(row.seed) == 32
    by_rank = [r.id for r in sorted(regs, key=lambda r: r.rank)]
    assert draws.order(row.seed, [r.id for r in regs]) == by_rank  # the same seed, the same order
    [audited] = [a for a in api.audit() if a["action"] == "draw"]
    assert audited["staff_id"] is None
    assert audited["after"]["seed"] == row.seed
    assert audited["after"]["order"] == by_rank
    shown = api.get(f"/draws/{draw['id']}", who="abj").json()
    assert shown["seed"] == row.seed
    assert [r["rank"] for r in shown["registrants"]] == [1, 2, 3, 4, 5]
    assert [r["result"] for r in shown["registrants"]] == ["offered", "offered"] + ["waiting"] * 3
    # The line follows the drawn order: the first two hold the day's two seats.
    line = in_line(api.engine, draw["id"])
    assert [e.citizen_id for e in line] == [
        next(r.citizen_id for r in regs if r.id == i) for i in by_rank
    ]


def test_seats_are_offered_in_turn_and_expire_to_the_next(api: StaffApi) -> None:
    starts = period_seats(api.engine, 1)
    draw = open_draw(api)
    registered(api, draw["id"], 3)
    draws.run(api.engine, CLOSE)
    first, second, third = in_line(api.engine, draw["id"])
    assert (first.status, second.status, third.status) == ("offered", "waiting", "waiting")
    assert (first.offered_starts_at, first.offer_expires_at) == (starts[0], CLOSE + HOLD)
    [offer] = told(api, first.citizen_id, f"waitlist:{first.id}")
    assert "tiré au sort" in offer["payload"]["text"]
    # Nobody answers in time: the seat goes to the next; the next declines: to the third.
    late = CLOSE + HOLD
    assert waitlist.run(api.engine, late) == 1
    first, second, third = in_line(api.engine, draw["id"])
    assert (first.status, second.status) == ("expired", "offered")
    assert second.offered_starts_at == starts[0]
    assert (
        world(api.engine, lambda w: w.answer_offer(first.citizen_id, first.id, True, late)).outcome
        is BookingOutcome.unavailable
    )
    world(api.engine, lambda w: w.answer_offer(second.citizen_id, second.id, False, late))
    first, second, third = in_line(api.engine, draw["id"])
    assert (second.status, third.status) == ("declined", "offered")
    taken = world(api.engine, lambda w: w.answer_offer(third.citizen_id, third.id, True, late))
    assert taken.outcome is BookingOutcome.booked
    assert (taken.appointment.starts_at, taken.appointment.full_name) == (
        starts[0],
        third.full_name,
    )
    # Every seat given, nobody left: the draw is done and its result kept.
    assert draws.run(api.engine, late) == 1
    shown = api.get(f"/draws/{draw['id']}").json()
    assert shown["status"] == "done"
    assert [r["result"] for r in shown["registrants"]] == ["expired", "declined", "booked"]


def test_those_not_reached_are_told_and_the_day_is_sold_first_come_after(
    api: StaffApi,
) -> None:
    starts = period_seats(api.engine, 1)
    draw = open_draw(api)
    citizens = registered(api, draw["id"], 3)
    draws.run(api.engine, CLOSE)
    first, *rest = in_line(api.engine, draw["id"])
    assert draws.run(api.engine, CLOSE) == 0  # a seat is held: nothing to settle yet
    assert (
        world(api.engine, lambda w: w.answer_offer(first.citizen_id, first.id, True, CLOSE)).outcome
        is BookingOutcome.booked
    )
    assert draws.run(api.engine, CLOSE) == 1
    assert [e.status for e in in_line(api.engine, draw["id"])] == ["booked"] + ["not_reached"] * 2
    for entry in rest:
        [message] = told(api, entry.citizen_id, f"draw:{draw['id']}:not_reached")
        assert "avant votre tour" in message["payload"]["text"]
    assert told(api, first.citizen_id, f"draw:{draw['id']}:not_reached") == []
    assert len(citizens) == 3
    # A seat that frees now is sold first come again, not kept for the draw.
    with db.write(api.engine) as conn:
        conn.execute(sa.update(slot_t).where(slot_t.c.starts_at == starts[0]).values(capacity=2))
        assert [
            s.starts_at for s in BookingService(conn).open_times("ABJ", "passport", DAY, CLOSE)
        ] == starts
    settled = [a for a in api.audit() if a["action"] == "settle"]
    assert [a["after"]["not_reached"] for a in settled] == [2]


def test_the_job_run_twice_or_on_two_clocks_draws_once(api: StaffApi) -> None:
    period_seats(api.engine, 2)
    draw = open_draw(api)
    registered(api, draw["id"], 4)
    results: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def clock() -> None:
        try:
            barrier.wait()
            results.append(draws.run(api.engine, CLOSE))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=clock) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(results) == [0, 1]
    assert draws.run(api.engine, CLOSE + timedelta(minutes=1)) == 0  # and once more, later
    line = in_line(api.engine, draw["id"])
    assert len(line) == 4
    assert [e.status for e in line] == ["offered", "offered", "waiting", "waiting"]
    assert len([a for a in api.audit() if a["action"] == "draw"]) == 1
    for entry in line[:2]:
        assert len(told(api, entry.citizen_id, f"waitlist:{entry.id}")) == 1


def test_a_draw_without_registrants_is_done_at_once(api: StaffApi) -> None:
    draw = open_draw(api)
    assert draws.run(api.engine, CLOSE) == 2  # drawn, then settled: nobody to offer
    assert api.get(f"/draws/{draw['id']}").json()["status"] == "done"
    with db.read(api.engine) as conn:
        assert BookingService(conn).open_times("ABJ", "passport", DAY, CLOSE)


# -- the staff API ----------------------------------------------------------------------------


def test_staff_open_list_show_and_cancel_draws(api: StaffApi) -> None:
    draw = open_draw(api)
    assert (draw["status"], draw["post"], draw["service"]) == ("open", "ABJ", "passport")
    assert draw["closes_at"] == "2026-12-04T18:00:00Z"
    assert (draw["seed"], draw["registrants_count"]) == (None, 0)
    [created] = [a for a in api.audit() if a["entity"] == "draw"]
    assert (created["action"], created["after"]["first_day"]) == ("create", "2026-12-14")
    awa = registered(api, draw["id"], 1)[0]
    listed = api.get("/posts/ABJ/draws", who="abj").json()
    assert [(d["id"], d["registrants_count"]) for d in listed] == [(draw["id"], 1)]
    # Another post's agent sees none of it, nor may cancel it.
    assert api.get("/posts/ABJ/draws", who="acc").status_code == 404
    assert api.get(f"/draws/{draw['id']}", who="acc").status_code == 404
    assert api.post(f"/draws/{draw['id']}/cancel", who="acc").status_code == 404
    assert api.post("/posts/ABJ/draws", who="acc", json=BODY).status_code == 404
    cancelled = api.post(f"/draws/{draw['id']}/cancel", who="abj")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    [notice] = told(api, awa, f"draw:{draw['id']}:cancelled")
    assert "annulé" in notice["payload"]["text"]
    again = api.post(f"/draws/{draw['id']}/cancel", who="abj")
    assert again.status_code == 409
    assert draws.run(api.engine, CLOSE) == 0  # a cancelled draw is never drawn
    assert api.audit()[-1]["action"] == "cancel"


def test_a_drawn_draw_cannot_be_cancelled_and_periods_do_not_overlap(api: StaffApi) -> None:
    draw = open_draw(api)
    overlapping = {**BODY, "first_day": "2026-12-10", "last_day": DAY.isoformat()}
    assert api.post("/posts/ABJ/draws", json=overlapping).status_code == 409
    draws.run(api.engine, CLOSE)
    assert api.post(f"/draws/{draw['id']}/cancel").status_code == 409


@pytest.mark.parametrize(
    "changes",
    [
        {"closes_at": "2026-12-01T07:00:00"},  # closes before it opens
        {"opens_at": "2026-11-20T08:00:00", "closes_at": "2026-11-30T18:00:00"},  # in the past
        {"first_day": "2026-12-15", "last_day": "2026-12-14"},  # the period backwards
        {"first_day": "2026-12-04"},  # the period starts before the registration closes
        {"last_day": "2027-06-30"},  # too long
        {"service": "nonsense"},  # not offered there: 404
        {"first_day": "1800-01-01"},  # not a day of the calendar: schema
    ],
)
def test_a_draw_that_makes_no_sense_is_refused(api: StaffApi, changes: dict[str, str]) -> None:
    response = api.post("/posts/ABJ/draws", who="abj", json={**BODY, **changes})
    expected = 404 if changes.get("service") else 422
    assert response.status_code == expected, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [a for a in api.audit() if a["entity"] == "draw"] == []


def test_times_are_read_in_the_posts_local_time(api: StaffApi) -> None:
    """Paris is UTC+1 in December: 18:00 there is 17:00 UTC; an explicit offset is kept."""
    body = {**BODY, "closes_at": "2026-12-04T18:00:00", "opens_at": "2026-12-01T09:00:00+01:00"}
    response = api.post("/posts/PAR/draws", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["closes_at"] == "2026-12-04T17:00:00Z"
    assert response.json()["opens_at"] == "2026-12-01T08:00:00Z"


# -- through the chat ---------------------------------------------------------------------------


def test_the_chat_tells_of_the_draw_and_registers_interest_once() -> None:
    memory = MemoryWorld()
    memory.open_draw()
    dialog = at_menu(memory)
    for text in ("1", "1", "1"):  # book, Abidjan, passport
        dialog.say(text)
    assert dialog.keys == ["booking.draw.question"]
    assert dialog.values == ["register", "other"]
    said = dialog.line("booking.draw.question").params
    assert (said["first"], said["last"], said["closes"]) == (DAY, date(2026, 12, 15), CLOSE)
    assert "tirage au sort" in dialog.rendered()[0]
    dialog.say("aide")
    assert dialog.keys[0] == "booking.draw.help"
    dialog.say("1")
    assert dialog.keys == ["booking.name.question"]
    dialog.say(NAME)
    assert dialog.keys == ["booking.draw.registered", "menu.main.question"]
    assert memory.draw_names == {1: {1: NAME}}
    # Registering twice: told kindly, and the other days are still there, first come.
    for text in ("1", "1", "1"):
        dialog.say(text)
    assert dialog.keys == ["booking.draw.already", "booking.day.question"]
    # Another phone, the same person: refused at the confirmation.
    other = at_menu(memory, citizen_id=2, phone="+2250701000002")
    for text in ("1", "1", "1", "1", NAME.upper()):
        other.say(text)
    assert other.keys == ["booking.draw.already", "menu.main.question"]


def test_the_other_days_and_a_registration_not_open_yet() -> None:
    memory = MemoryWorld()
    memory.open_draw(opens_at=NOW + timedelta(days=1))
    dialog = at_menu(memory)
    for text in ("1", "1", "1"):
        dialog.say(text)
    assert dialog.keys == ["booking.draw.soon", "booking.day.question"]
    assert dialog.line("booking.draw.soon").params["opens"] == NOW + timedelta(days=1)
    later = at_menu(memory, now=NOW + timedelta(days=2), citizen_id=2, phone="+2250701000002")
    for text in ("1", "1", "1"):
        later.say(text)
    assert later.keys == ["booking.draw.question"]
    later.say("2")  # the other days
    assert later.keys == ["booking.day.question"]
    later.say("0")
    assert later.step == "menu.main"


def test_the_booking_limits_still_apply_to_a_registration() -> None:
    memory = MemoryWorld()
    book_for(memory, citizen_id=2)  # this person holds a passport appointment at Abidjan
    memory.open_draw()
    dialog = at_menu(memory)
    for text in ("1", "1", "1", "1", NAME):
        dialog.say(text)
    assert dialog.keys == ["booking.limit.name_held", "booking.name.question"]
    assert memory.draw_names == {}


def test_register_then_take_the_drawn_seat_through_the_chat(api: StaffApi) -> None:
    txworld = TxWorld(api.engine)
    draw = open_draw(api)
    citizen = txworld.citizen("+2250701000001")
    dialog = Dialog(txworld, phone="+2250701000001", citizen_id=citizen)  # type: ignore[arg-type]
    for text in ("Hello", "1", "ABJ", "1"):
        dialog.say(text)
    assert dialog.keys == ["booking.draw.question"]
    dialog.say("1")
    dialog.say(NAME)
    assert dialog.keys == ["booking.draw.registered", "menu.main.question"]
    for text in ("1", "ABJ", "1"):
        dialog.say(text)
    assert dialog.keys == ["booking.draw.already", "booking.day.question"]
    assert draws.run(api.engine, CLOSE) == 1
    [entry] = in_line(api.engine, draw["id"])
    assert entry.status == "offered"
    dialog.stored = {  # the conversation as the back office left it on its channel
        "lang": "en", "flow": "waitlist", "step": "offer", "options": [],
        "data": {"entry": entry.id, "until": entry.offer_expires_at.isoformat()},
        "updated_at": CLOSE.isoformat(),
    }  # fmt: skip
    dialog.now = CLOSE + timedelta(minutes=45)
    dialog.say("1")
    assert dialog.keys == ["booking.confirmed", "booking.proof", "menu.main.question"]
    [mine] = txworld.upcoming(citizen, CLOSE)
    assert (mine.local.date(), mine.full_name) == (DAY, NAME)
    assert mine.starts_at == entry.offered_starts_at


def test_a_time_out_of_the_calendar_is_a_schema_error(api: StaffApi) -> None:
    body = {**BODY, "opens_at": "9999-12-31T23:00:00", "closes_at": "9999-12-31T23:30:00"}
    response = api.post("/posts/NYC/draws", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == ["body", "opens_at"]
