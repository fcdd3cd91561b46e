"""Turn batches on PostgreSQL (api.turn_batches): the calls of one pass of the event loop run
on a thread in one transaction and one commit, without savepoints; one that fails — an error
of its own, one it swallows (as the runtime does, apologising), a statement PostgreSQL
refuses — spoils the batch, which is rolled back and run again call by call, so that it
fails alone; the webhooks' turns are answered as on SQLite."""

from __future__ import annotations

import asyncio
import contextlib
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from api import db
from api.turn_batches import MAX_BATCH, TurnBatches
from tests.fakes.twilio_api import inbound_whatsapp_form, twilio_signature
from tests.support.channels import PUBLIC_BASE_URL
from tests.support.scratch import insert, names, together


@pytest.fixture
def scratch_store(postgres_engine: Engine) -> Engine:
    """The store of this module's `scratch` and `commits` (tests/conftest.py)."""
    return postgres_engine


def insert_or_apologise(engine: Engine, name: str) -> str:
    """As the runtime does: a failing turn is rolled back and answered with an apology."""
    try:
        return insert(engine, name, fail=True)
    except ValueError:
        return "sorry"


def test_the_calls_of_one_pass_share_one_commit(scratch: Engine, commits: list[int]) -> None:
    batches = TurnBatches(scratch)
    results = asyncio.run(together(*(lambda n=n: batches.run(insert, scratch, n) for n in "abcde")))
    assert results == list("abcde")
    assert len(commits) == 1
    assert names(scratch) == set("abcde")


@pytest.mark.parametrize(
    ("name", "fail", "error"),
    [
        ("b", True, ValueError),  # an error of the call's own
        ("taken", False, sa.exc.IntegrityError),  # PostgreSQL refuses it: the batch is spoilt
    ],
)
def test_a_failing_call_fails_alone(
    scratch: Engine, name: str, fail: bool, error: type[Exception]
) -> None:
    insert(scratch, "taken")
    batches = TurnBatches(scratch)
    results = asyncio.run(
        together(
            lambda: batches.run(insert, scratch, "a"),
            lambda: batches.run(insert, scratch, name, fail=fail),
            lambda: batches.run(insert, scratch, "c"),
        )
    )
    assert results[0] == "a"
    assert results[2] == "c"
    assert isinstance(results[1], error)
    assert names(scratch) == {"a", "c", "taken"}


def read_and_swallow_a_refusal(engine: Engine, name: str) -> str:
    """A call that catches the error of a statement PostgreSQL refused, in a read."""
    with db.read(engine) as conn, contextlib.suppress(sa.exc.ProgrammingError):
        conn.exec_driver_sql("SELECT no_such_column FROM scratch")
    return name


@pytest.mark.parametrize(
    ("swallowing", "answer"),
    [
        # a write that fails, caught (as the runtime does): b's insert must not stay
        (insert_or_apologise, "sorry"),
        # a refused read, caught: PostgreSQL would roll the whole batch back at its COMMIT
        (read_and_swallow_a_refusal, "b"),
    ],
)
def test_a_failure_its_call_swallows_is_undone_alone(
    scratch: Engine, swallowing: Callable[[Engine, str], str], answer: str
) -> None:
    batches = TurnBatches(scratch)
    results = asyncio.run(
        together(
            lambda: batches.run(insert, scratch, "a"),
            lambda: batches.run(insert, scratch, "c"),
            lambda: batches.run(swallowing, scratch, "b"),  # last: then the COMMIT
        )
    )
    assert results == ["a", "c", answer]
    assert names(scratch) == {"a", "c"}


def test_a_busy_loop_makes_larger_batches(scratch: Engine, commits: list[int]) -> None:
    """While its threads are busy, the calls wait in the next batch: 300 calls in batches as
    full as they may be (MAX_BATCH), every one answered."""
    batches = TurnBatches(scratch, threads=1)
    calls = [lambda n=n: batches.run(insert, scratch, f"n{n}") for n in range(300)]

    async def scene() -> list[Any]:
        tasks = []
        for i, call in enumerate(calls):
            tasks.append(asyncio.create_task(call()))
            if i % 50 == 49:
                await asyncio.sleep(0)  # the requests arrive in waves
        return await asyncio.gather(*tasks)

    results = asyncio.run(scene())
    assert results == [f"n{n}" for n in range(300)]
    assert len(commits) <= -(-300 // MAX_BATCH) + 300 // 50, len(commits)
    assert len(names(scratch)) == 300


def test_a_batch_that_cannot_run_fails_its_calls_instead_of_leaving_them_waiting(
    scratch: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: TurnBatches, batch: object) -> None:
        raise RuntimeError("no thread to run on")

    monkeypatch.setattr(TurnBatches, "_execute", broken)
    batches = TurnBatches(scratch)
    results = asyncio.run(together(*(lambda n=n: batches.run(insert, scratch, n) for n in "ab")))
    assert all(isinstance(r, RuntimeError) and "turn batch lost" in str(r) for r in results)
    assert names(scratch) == set()


def test_a_request_given_up_does_not_cancel_the_others(scratch: Engine) -> None:
    batches = TurnBatches(scratch)

    async def scene() -> list[Any]:
        tasks = [asyncio.create_task(batches.run(insert, scratch, n)) for n in "abc"]
        await asyncio.sleep(0)
        tasks[1].cancel()  # its client went away
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(scene())
    assert results[0] == "a"
    assert results[2] == "c"
    assert isinstance(results[1], asyncio.CancelledError)
    assert names(scratch) == set("abc")  # written all the same, as on SQLite


# -- through the webhooks ---------------------------------------------------------------------


def signed(form: dict[str, str], auth_token: str) -> Any:
    url = PUBLIC_BASE_URL + "/webhooks/whatsapp"
    return {"X-Twilio-Signature": twilio_signature(auth_token, url, form)}


def test_concurrent_webhook_turns_on_postgresql_share_commits(
    postgres_engine: Engine, app_factory: Any, commits: list[int]
) -> None:
    """Thirty citizens write at once, one of them twice with the same MessageSid, and one
    three messages in a row: every turn is answered, the duplicate with nothing, one
    citizen's messages in order, in far fewer commits than requests."""
    from api.seed import seed_demo

    seed_demo(postgres_engine)
    with app_factory(postgres_engine) as (client, fakes):
        token, sid = fakes.twilio.auth_token, fakes.twilio.account_sid
        forms = [
            inbound_whatsapp_form(f"+2250702{n:06d}", "Bonjour", account_sid=sid) for n in range(30)
        ]
        again = [
            inbound_whatsapp_form("+2250702000001", text, account_sid=sid) for text in ("1", "1")
        ]

        async def scene() -> list[httpx.Response]:
            transport = httpx.ASGITransport(app=client.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                calls = [
                    lambda f=f: http.post("/webhooks/whatsapp", data=f, headers=signed(f, token))
                    for f in [*forms, forms[0]]
                ]
                del commits[:]
                first = await together(*calls)
                # the same citizen's next two messages, in one pass: answered one after the other
                second = await together(
                    *(
                        lambda f=f: http.post(
                            "/webhooks/whatsapp", data=f, headers=signed(f, token)
                        )
                        for f in again
                    )
                )
                return [*first, *second]

        responses = client.portal.call(scene)
        assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
        answers = [ET.fromstring(r.text).findall("Message") for r in responses]
        assert sum(1 for a in answers[:31] if a) == 30  # the duplicate answered with nothing
        assert len(commits) < 12, len(commits)
        # "Bonjour" gave the language menu, "1" French and the main menu, "1" the posts
        texts = [a[0].text or "" for a in answers[31:]]
        assert "1. Prendre rendez-vous" in texts[0], texts
        assert "Consulat général, Abidjan" in texts[1], texts
