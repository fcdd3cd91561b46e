"""Consular requests on both stores: references issued under fire, statuses and their
history, and the chat's status lookup (verified phone, birth date, locks per sender and per
reference, the owner never locked out and told when someone guesses)."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from api.db import read, write
from api.domain.requests import (
    CEILING,
    CEILING_LOCK,
    LOCK_DURATION,
    RequestService,
    TransitionRefused,
    UnknownRequest,
    clean_reference,
)
from api.domain.tables import table
from api.models import LookupGuard, RequestEvent
from flows.world import LookupOutcome
from tests.support.people import add_citizen, outbox_rows

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
BORN = date(1990, 3, 12)
PHONE = "+2250701000001"

guard_t = table(LookupGuard)
event_t = table(RequestEvent)


def lodge(engine: Engine, post: str = "ABJ", phone: str | None = PHONE, now: datetime = NOW) -> str:
    with write(engine) as conn:
        return (
            RequestService(conn)
            .create(post, "passport", phone, "Awa Ouédraogo", BORN, None, now)
            .reference
        )


def lookup(
    engine: Engine,
    reference: str,
    born: date | None = None,
    phone: str | None = None,
    now: datetime = NOW,
    sender: int = 1,
) -> tuple[LookupOutcome, datetime | None]:
    with write(engine) as conn:
        result = RequestService(conn).lookup(reference, born, phone, now, sender=sender)
    if result.outcome is LookupOutcome.found:
        assert result.request is not None
        assert result.request.reference == clean_reference(reference)
    return result.outcome, result.locked_until


# --- references --------------------------------------------------------------------------------


@pytest.mark.slow
def test_twenty_desks_at_once_get_twenty_consecutive_references(demo_engine: Engine) -> None:
    start = threading.Barrier(20)
    references: list[str] = []
    errors: list[BaseException] = []

    def desk() -> None:
        try:
            start.wait()
            references.append(lodge(demo_engine))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=desk) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(references) == [f"ABJ-2026-{n:06d}" for n in range(1, 21)]


def test_serials_count_per_post_and_local_year(demo_engine: Engine) -> None:
    # 04:30 UTC on 1 January 2027 is still 31 December 2026 in New York.
    new_year = datetime(2027, 1, 1, 4, 30, tzinfo=UTC)
    assert lodge(demo_engine, "ABJ") == "ABJ-2026-000001"
    assert lodge(demo_engine, "ABJ") == "ABJ-2026-000002"
    assert lodge(demo_engine, "NYC", now=new_year) == "NYC-2026-000001"
    assert lodge(demo_engine, "ABJ", now=new_year) == "ABJ-2027-000001"
    assert lodge(demo_engine, "ABJ") == "ABJ-2026-000003"


def test_create_refuses_what_cannot_be_a_request(demo_engine: Engine) -> None:
    with write(demo_engine) as conn:
        service = RequestService(conn)
        with pytest.raises(LookupError):
            service.create("XYZ", "passport", None, "Awa", BORN, None, NOW)
        with pytest.raises(LookupError):
            service.create("ABJ", "visa", None, "Awa", BORN, None, NOW)
        with pytest.raises(ValueError, match="phone"):
            service.create("ABJ", "passport", "not a phone", "Awa", BORN, None, NOW)
        with pytest.raises(ValueError, match="full_name"):
            service.create("ABJ", "passport", None, " \t ", BORN, None, NOW)


# --- statuses ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "refused"),
    [
        (["in_progress", "ready", "delivered"], ["rejected", "received", "in_progress"]),
        (["rejected"], ["in_progress", "ready", "delivered", "received"]),
        (["in_progress", "rejected"], ["delivered", "ready"]),
        (["in_progress", "ready", "rejected"], ["delivered"]),
        ([], ["ready", "delivered", "received"]),
    ],
)
def test_allowed_transitions(demo_engine: Engine, path: list[str], refused: list[str]) -> None:
    reference = lodge(demo_engine, phone=None)
    for status in path:
        with write(demo_engine) as conn:
            RequestService(conn).change_status(reference, status, "why not", None, NOW)
    for status in refused:
        with write(demo_engine) as conn, pytest.raises(TransitionRefused):
            RequestService(conn).change_status(reference, status, "because", None, NOW)
    with read(demo_engine) as conn:
        service = RequestService(conn)
        record = service.get(reference)
        assert record is not None
        history = [e.status.value for e in service.history(record.id)]
    assert history == ["received", *path]


def test_a_rejection_needs_a_reason_and_keeps_it(demo_engine: Engine) -> None:
    reference = lodge(demo_engine, phone=None)
    with write(demo_engine) as conn, pytest.raises(ValueError, match="reason"):
        RequestService(conn).change_status(reference, "rejected", "   ", None, NOW)
    with write(demo_engine) as conn:
        rejected = RequestService(conn).change_status(
            reference, "rejected", " Photo  non conforme ", None, NOW + timedelta(hours=1)
        )
    assert (rejected.status, rejected.reason) == ("rejected", "Photo non conforme")
    assert rejected.updated_at == NOW + timedelta(hours=1)
    with write(demo_engine) as conn, pytest.raises(UnknownRequest):
        RequestService(conn).change_status("ABJ-2026-999999", "ready", "", None, NOW)


# --- lookups -----------------------------------------------------------------------------------


def test_the_verified_phone_of_the_request_needs_no_birth_date(demo_engine: Engine) -> None:
    reference = lodge(demo_engine)
    assert lookup(demo_engine, reference, phone=PHONE)[0] is LookupOutcome.found
    assert lookup(demo_engine, reference, phone="+2250701000002")[0] is (
        LookupOutcome.needs_birth_date
    )
    assert lookup(demo_engine, reference)[0] is LookupOutcome.needs_birth_date
    assert lookup(demo_engine, reference, BORN)[0] is LookupOutcome.found
    assert lookup(demo_engine, reference.lower().replace("-", " "), BORN)[0] is (
        LookupOutcome.found
    )


def test_an_unknown_reference_asks_the_birth_date_too(demo_engine: Engine) -> None:
    lodge(demo_engine)
    assert lookup(demo_engine, "ABJ-2026-000999")[0] is LookupOutcome.needs_birth_date
    assert lookup(demo_engine, "ABJ-2026-000999", phone=PHONE)[0] is (
        LookupOutcome.needs_birth_date
    )
    assert lookup(demo_engine, "ABJ-2026-000999", BORN)[0] is LookupOutcome.wrong


def test_three_wrong_answers_lock_that_sender_for_fifteen_minutes(demo_engine: Engine) -> None:
    reference = lodge(demo_engine)
    wrong = date(1991, 3, 12)
    assert lookup(demo_engine, reference, wrong)[0] is LookupOutcome.wrong
    assert lookup(demo_engine, reference, wrong, now=NOW + timedelta(minutes=1))[0] is (
        LookupOutcome.wrong
    )
    third = NOW + timedelta(minutes=2)
    outcome, until = lookup(demo_engine, reference, wrong, now=third)
    assert (outcome, until) == (LookupOutcome.locked, third + LOCK_DURATION)

    # Locked for that sender: even the right answer, even without a birth date.
    for born in (BORN, None):
        assert lookup(demo_engine, reference, born, now=third + timedelta(minutes=14)) == (
            LookupOutcome.locked,
            third + LOCK_DURATION,
        )
    # Fifteen minutes later the reference opens again, and a new miss starts a new count.
    after = third + LOCK_DURATION
    assert lookup(demo_engine, reference, wrong, now=after)[0] is LookupOutcome.wrong
    assert lookup(demo_engine, reference, BORN, now=after)[0] is LookupOutcome.found
    with read(demo_engine) as conn:
        guard = conn.execute(sa.select(guard_t).where(guard_t.c.sender == "c1")).one()
    assert (guard.failures, guard.locked_until) == (0, None)


def test_a_stranger_cannot_lock_the_owner_out(demo_engine: Engine) -> None:
    reference = lodge(demo_engine)
    wrong = date(1991, 3, 12)
    for _ in range(3):
        lookup(demo_engine, reference, wrong, sender=66)
    assert lookup(demo_engine, reference, BORN, sender=66)[0] is LookupOutcome.locked
    # the owner, by their verified phone or by their birth date from their own chat
    assert lookup(demo_engine, reference, None, PHONE, sender=7)[0] is LookupOutcome.found
    assert lookup(demo_engine, reference, BORN, PHONE, sender=7)[0] is LookupOutcome.found
    assert lookup(demo_engine, reference, BORN, sender=8)[0] is LookupOutcome.found


def test_a_ceiling_across_senders_locks_all_but_the_verified_owner(demo_engine: Engine) -> None:
    reference = lodge(demo_engine)
    outcomes = []
    for attempt in range(CEILING):  # two tries each, from many accounts
        born = date(1980, 1, 1) + timedelta(days=attempt)
        outcomes.append(lookup(demo_engine, reference, born, sender=100 + attempt // 2)[0])
    assert outcomes == [LookupOutcome.wrong] * (CEILING - 1) + [LookupOutcome.locked]
    outcome, until = lookup(demo_engine, reference, BORN, sender=500)
    assert (outcome, until) == (LookupOutcome.locked, NOW + CEILING_LOCK)
    assert lookup(demo_engine, reference, None, PHONE, sender=7)[0] is LookupOutcome.found
    with read(demo_engine) as conn:
        guard = RequestService(conn).guard(reference, NOW)
    assert (guard.failures, guard.senders, guard.locked_until) == (
        CEILING,
        CEILING // 2,
        NOW + CEILING_LOCK,
    )
    later = NOW + CEILING_LOCK
    assert lookup(demo_engine, reference, BORN, now=later, sender=500)[0] is LookupOutcome.found
    with read(demo_engine) as conn:
        assert RequestService(conn).guard(reference, later).locked_until is None


def test_the_owner_is_told_once_a_day_that_someone_guesses(demo_engine: Engine) -> None:
    owner = add_citizen(
        demo_engine, phone=PHONE, verified=True, identities=(("whatsapp", PHONE, NOW),)
    )
    reference = lodge(demo_engine)
    for day in (0, 0, 1):
        for attempt in range(3):
            born = date(1980, 1, 1) + timedelta(days=attempt)
            lookup(demo_engine, reference, born, now=NOW + timedelta(days=day), sender=66 + day)
    told = outbox_rows(demo_engine, citizen_id=owner, kind="notification")
    assert len(told) == 2
    assert all(row.payload["text"].startswith("Quelqu'un a essayé") for row in told)
    assert all(reference in row.payload["text"] for row in told)
    # the owner's own misses do not alarm them
    for _ in range(3):
        lookup(demo_engine, reference, date(1970, 1, 1), now=NOW + timedelta(days=3), sender=owner)
    assert len(outbox_rows(demo_engine, citizen_id=owner, kind="notification")) == 2
    # and nobody is told about a reference that does not exist
    for _ in range(3):
        lookup(demo_engine, "ABJ-2026-000999", BORN, sender=66)
    assert len(outbox_rows(demo_engine, kind="notification")) == 2


def test_a_success_resets_the_count(demo_engine: Engine) -> None:
    reference = lodge(demo_engine)
    wrong = date(1991, 3, 12)
    for _ in range(2):
        assert lookup(demo_engine, reference, wrong)[0] is LookupOutcome.wrong
    assert lookup(demo_engine, reference, BORN)[0] is LookupOutcome.found
    for _ in range(2):
        assert lookup(demo_engine, reference, wrong)[0] is LookupOutcome.wrong
    assert lookup(demo_engine, reference, wrong)[0] is LookupOutcome.locked
    # a success resets that sender's count only, not the count across senders
    with read(demo_engine) as conn:
        assert RequestService(conn).guard(reference, NOW).failures == 5


def test_unknown_references_lock_like_known_ones(demo_engine: Engine) -> None:
    for _ in range(2):
        assert lookup(demo_engine, "PAR-2026-000042", BORN)[0] is LookupOutcome.wrong
    assert lookup(demo_engine, "PAR-2026-000042", BORN)[0] is LookupOutcome.locked
    assert lookup(demo_engine, "PAR-2026-000042")[0] is LookupOutcome.locked


@pytest.mark.slow
def test_concurrent_misses_are_all_counted(demo_engine: Engine) -> None:
    reference = lodge(demo_engine)
    start = threading.Barrier(6)
    outcomes: list[LookupOutcome] = []

    def guess() -> None:
        start.wait()
        outcomes.append(lookup(demo_engine, reference, date(2000, 1, 1))[0])

    threads = [threading.Thread(target=guess) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == sorted([LookupOutcome.wrong] * 2 + [LookupOutcome.locked] * 4)


def test_the_found_request_tells_post_service_and_status(demo_engine: Engine) -> None:
    reference = lodge(demo_engine)
    with write(demo_engine) as conn:
        RequestService(conn).change_status(reference, "in_progress", "", None, NOW)
        result = RequestService(conn).lookup(reference, BORN, None, NOW, sender=1)
    assert result.request is not None
    assert result.request.post.code == "ABJ"
    assert result.request.post.timezone == "Africa/Abidjan"
    assert result.request.service_code == "passport"
    assert result.request.status == "in_progress"
    assert result.request.updated_at == NOW
