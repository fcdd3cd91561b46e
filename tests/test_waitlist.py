"""The waitlist on the real store (SQLite and PostgreSQL): joining, a freed seat held for the
first in line and told on their channel, taking it, declining it, the offer expiring to the
next, booking some other way, two citizens racing for one seat, and the staff's view."""

from __future__ import annotations

import threading
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from api import db
from api.domain import waitlist
from api.domain.booking import BookingService
from api.domain.tables import table
from api.models import ChannelIdentity, PostService, Service, Slot, WaitlistEntry
from api.world import SqlWorld
from flows.world import BookingOutcome
from tests.support.staff_api import NOW, StaffApi, staff_api

offer_t = table(PostService)
service_t = table(Service)
entry_t = table(WaitlistEntry)
identity_t = table(ChannelIdentity)
slot_t = table(Slot)
HOLD = timedelta(hours=2)


def seats(engine: Engine, n: int, post: str = "ABJ", service: str = "passport") -> None:
    """Every time of that service without a booking has `n` seats from now on."""
    with db.write(engine) as conn:
        conn.execute(
            sa.text(
                "UPDATE post_service SET seats_per_slot = :n WHERE service_id = "
                "(SELECT id FROM service WHERE code = :service) AND post_id = "
                "(SELECT id FROM post WHERE code = :post)"
            ),
            {"n": n, "service": service, "post": post},
        )


def world(engine: Engine, action: Any) -> Any:
    with db.write(engine) as conn:
        return action(SqlWorld(conn))


def entries(engine: Engine) -> list[Any]:
    with db.read(engine) as conn:
        return list(conn.execute(sa.select(entry_t).order_by(entry_t.c.id)))


def state_of(engine: Engine, citizen_id: int) -> Any:
    with db.read(engine) as conn:
        return conn.execute(
            sa.select(identity_t.c.state).where(identity_t.c.citizen_id == citizen_id)
        ).scalar_one()


def lined_up(api: StaffApi) -> tuple[int, int]:
    """Abidjan's passport seats are all gone; Awa then Issa join the line."""
    seats(api.engine, 0)
    with db.write(api.engine) as conn:  # the times already booked are full too
        conn.execute(sa.update(slot_t).values(capacity=slot_t.c.booked))
    awa, issa = api.citizen("+2250701000011"), api.citizen("+2250701000012")
    with db.write(api.engine) as conn:
        assert BookingService(conn).open_days("ABJ", "passport", NOW, 1) == []
        line = SqlWorld(conn)
        assert line.join_waitlist(awa, "ABJ", "passport", "Awa Ouédraogo", NOW) == 1
        assert line.join_waitlist(issa, "ABJ", "passport", "Issa Sawadogo", NOW) == 2
        assert line.join_waitlist(awa, "ABJ", "passport", "Awa Ouédraogo", NOW) == 1  # once
    return awa, issa


def one_free_seat(engine: Engine) -> None:
    """One free Abidjan passport seat: Wednesday 09:00 only."""
    with db.write(engine) as conn:
        conn.execute(
            sa.insert(slot_t).values(
                post_service_id=sa.select(offer_t.c.id)
                .join(service_t, service_t.c.id == offer_t.c.service_id)
                .where(service_t.c.code == "passport", offer_t.c.post_id == 1)
                .scalar_subquery(),
                starts_at=NOW.replace(hour=9) + timedelta(days=1),
                capacity=1,
                booked=0,
            )
        )


def test_capacity_raised_offers_the_seat_to_the_first_in_line_who_takes_it(
    demo_engine: Engine,
) -> None:
    api = staff_api(demo_engine)
    awa, issa = lined_up(api)
    with db.write(demo_engine) as conn:  # one seat at one time only
        BookingService(conn)
    seats(demo_engine, 1)
    assert waitlist.run(demo_engine, NOW) == 2  # seats enough for both
    first, second = entries(demo_engine)
    assert (first.status, second.status) == ("offered", "offered")
    assert first.offer_expires_at == NOW + HOLD
    [told] = [m for m in api.outbox(awa) if m["dedupe_key"] == f"waitlist:{first.id}"]
    assert told["kind"] == "notification"
    assert state_of(demo_engine, awa)["flow"] == "waitlist"
    assert state_of(demo_engine, awa)["data"]["entry"] == first.id
    # Issa cannot take Awa's seat; Awa takes it with "1".
    assert world(demo_engine, lambda w: w.answer_offer(issa, first.id, True, NOW)).outcome is (
        BookingOutcome.unavailable
    )
    offer = world(demo_engine, lambda w: w.waitlist_offer(awa, first.id, NOW))
    assert offer is not None
    assert offer.starts_at == first.offered_starts_at
    taken = world(demo_engine, lambda w: w.answer_offer(awa, first.id, True, NOW))
    assert taken.outcome is BookingOutcome.booked
    assert taken.appointment.starts_at == first.offered_starts_at
    assert taken.appointment.full_name == "Awa Ouédraogo"
    with db.read(demo_engine) as conn:
        booked = conn.execute(
            sa.select(slot_t.c.booked).where(slot_t.c.id == first.offer_slot_id)
        ).scalar_one()
    assert booked == 1  # the seat was taken once, when it was held
    # Taking it twice does nothing more.
    again = world(demo_engine, lambda w: w.answer_offer(awa, first.id, True, NOW))
    assert again.outcome is BookingOutcome.unavailable


def test_an_offer_not_answered_in_time_goes_to_the_next(demo_engine: Engine) -> None:
    api = staff_api(demo_engine)
    awa, issa = lined_up(api)
    one_free_seat(demo_engine)
    assert waitlist.run(demo_engine, NOW) == 1
    first, second = entries(demo_engine)
    assert (first.status, second.status) == ("offered", "waiting")
    late = NOW + HOLD
    assert waitlist.run(demo_engine, late) == 1
    first, second = entries(demo_engine)
    assert (first.status, second.status) == ("expired", "offered")
    assert second.offered_starts_at == first.offered_starts_at  # the same seat, passed on
    assert world(demo_engine, lambda w: w.answer_offer(awa, first.id, True, late)).outcome is (
        BookingOutcome.unavailable
    )
    # Issa declines: the seat is free again, nobody left in line.
    assert world(demo_engine, lambda w: w.answer_offer(issa, second.id, False, late)).outcome is (
        BookingOutcome.unavailable
    )
    assert [e.status for e in entries(demo_engine)] == ["expired", "declined"]
    with db.read(demo_engine) as conn:
        assert BookingService(conn).open_days("ABJ", "passport", late, 5) == [date(2026, 12, 2)]


def test_a_cancellation_feeds_the_line_at_once_and_booking_otherwise_leaves_it(
    demo_engine: Engine,
) -> None:
    api = staff_api(demo_engine)
    holder = api.citizen("+2250701000013")
    booked = api.book(holder, day=date(2026, 12, 2), name="Moussa Traoré")
    _, issa = lined_up(api)
    assert world(demo_engine, lambda w: w.cancel(holder, booked["id"], NOW)) is True
    first, second = entries(demo_engine)
    assert (first.status, second.status) == ("offered", "waiting")
    # Issa books some other way (a seat raised for cnib does not count; passport does).
    seats(demo_engine, 1)
    day = world(demo_engine, lambda w: w.open_days("ABJ", "passport", NOW, 1))[0]
    slot = world(demo_engine, lambda w: w.open_times("ABJ", "passport", day, NOW))[0]
    result = world(
        demo_engine,
        lambda w: w.book(issa, "ABJ", "passport", slot.starts_at, "Issa Sawadogo", NOW),
    )
    assert result.outcome is BookingOutcome.booked
    assert [e.status for e in entries(demo_engine)] == ["offered", "booked"]


def test_two_citizens_never_accept_the_same_seat(demo_engine: Engine) -> None:
    api = staff_api(demo_engine)
    holder = api.citizen("+2250701000014")
    booked = api.book(holder, day=date(2026, 12, 2), name="Moussa Traoré")
    awa, issa = lined_up(api)
    world(demo_engine, lambda w: w.cancel(holder, booked["id"], NOW))
    first, second = entries(demo_engine)
    expiry = first.offer_expires_at
    outcomes: dict[str, Any] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def awa_takes_it_at_the_last_second() -> None:
        barrier.wait()
        outcomes["awa"] = world(
            demo_engine, lambda w: w.answer_offer(awa, first.id, True, expiry - timedelta(1e-3))
        ).outcome

    def the_clock_passes_it_on_then_issa_takes_it() -> None:
        barrier.wait()
        after = expiry + timedelta(seconds=1)
        waitlist.run(demo_engine, after)
        outcomes["issa"] = world(
            demo_engine, lambda w: w.answer_offer(issa, second.id, True, after)
        ).outcome

    def a_second_clock() -> None:
        barrier.wait()
        waitlist.run(demo_engine, expiry + timedelta(seconds=1))

    def guarded(target: Any) -> Any:
        def run() -> None:
            try:
                target()
            except BaseException as exc:
                errors.append(exc)

        return run

    threads = [
        threading.Thread(target=guarded(t))
        for t in (
            awa_takes_it_at_the_last_second,
            the_clock_passes_it_on_then_issa_takes_it,
            a_second_clock,
        )
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(o.value for o in outcomes.values()) == ["booked", "unavailable"]
    with db.read(demo_engine) as conn:
        slot = conn.execute(sa.select(slot_t).where(slot_t.c.id == first.offer_slot_id)).one()
        holders = conn.execute(
            sa.text("SELECT count(*) FROM appointment WHERE slot_id = :s AND status = 'booked'"),
            {"s": slot.id},
        ).scalar_one()
    assert (slot.booked, slot.capacity, holders) == (1, 1, 1)


def test_staff_see_a_posts_waitlist(demo_engine: Engine) -> None:
    api = staff_api(demo_engine)
    holder = api.citizen("+2250701000015")
    booked = api.book(holder, day=date(2026, 12, 2), name="Moussa Traoré")
    lined_up(api)
    world(demo_engine, lambda w: w.cancel(holder, booked["id"], NOW))
    line = api.get("/posts/ABJ/waitlist", who="abj")
    assert line.status_code == 200, line.text
    assert [(e["place"], e["status"], e["full_name"], e["service"]) for e in line.json()] == [
        (1, "offered", "Awa Ouédraogo", "passport"),
        (2, "waiting", "Issa Sawadogo", "passport"),
    ]
    assert line.json()[0]["offer_expires_at"] == "2026-12-01T10:00:00Z"
    assert api.get("/posts/ABJ/waitlist", who="acc").status_code == 404


def test_an_offer_taken_past_the_limits_goes_to_the_next(demo_engine: Engine) -> None:
    """Awa joined the line, then booked four other services from her phone (the post's
    allowance in 30 days): the seat offered to her is refused, as a booking would be, and
    passed on to Issa."""
    api = staff_api(demo_engine)
    awa, issa = lined_up(api)
    with db.write(demo_engine) as conn:
        desk = BookingService(conn)
        services = ("cnib", "consular_card", "civil_status", "legalization")
        for n, service in enumerate(services):  # each at its own time: one person, one place
            [day, *_] = desk.open_days("ABJ", service, NOW, 1)
            slot = desk.open_times("ABJ", service, day, NOW)[n]
            made = desk.book(awa, "ABJ", service, slot.starts_at, "Awa Ouédraogo", NOW)
            assert made.outcome is BookingOutcome.booked, service
    one_free_seat(demo_engine)
    assert waitlist.run(demo_engine, NOW) == 1
    first, second = entries(demo_engine)
    assert (first.citizen_id, first.status) == (awa, "offered")
    refused = world(demo_engine, lambda w: w.answer_offer(awa, first.id, True, NOW))
    assert refused.outcome is BookingOutcome.limit_reached
    first, second = entries(demo_engine)
    assert first.status == "declined"
    assert (second.citizen_id, second.status) == (issa, "offered")
    assert second.offered_starts_at == first.offered_starts_at  # the same seat, passed on
    taken = world(demo_engine, lambda w: w.answer_offer(issa, second.id, True, NOW))
    assert taken.outcome is BookingOutcome.booked
