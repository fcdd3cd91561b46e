"""Group commit on SQLite (api.group_commit): the turns of one pass of the event loop share
one transaction and one commit, each in its own savepoint; a turn that fails undoes itself
alone; a commit that fails fails every turn of the batch and keeps none; every other write the
loop makes joins the same batch instead of waiting for a lock only the loop can release."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from api import db
from api.group_commit import GroupCommit
from tests.fakes.twilio_api import inbound_whatsapp_form, twilio_signature
from tests.support.channels import PUBLIC_BASE_URL
from tests.support.scratch import insert, names, together


@pytest.fixture
def scratch_store(sqlite_engine: Engine) -> Engine:
    """The store of this module's `scratch` and `commits` (tests/conftest.py)."""
    return sqlite_engine


def test_the_writes_of_one_pass_share_one_commit(scratch: Engine, commits: list[int]) -> None:
    group = GroupCommit(scratch)
    results = asyncio.run(together(*(lambda n=n: group.run(insert, scratch, n) for n in "abcde")))
    assert len(commits) == 1
    assert results == list("abcde")
    assert names(scratch) == set("abcde")


def test_a_failing_write_undoes_itself_alone(scratch: Engine, commits: list[int]) -> None:
    group = GroupCommit(scratch)
    results = asyncio.run(
        together(
            lambda: group.run(insert, scratch, "a"),
            lambda: group.run(insert, scratch, "b", fail=True),
            lambda: group.run(insert, scratch, "c"),
        )
    )
    assert len(commits) == 1
    assert results[0] == "a"
    assert results[2] == "c"
    assert isinstance(results[1], ValueError)
    assert names(scratch) == {"a", "c"}


def orphan(engine: Engine) -> None:
    """A write that only the commit refuses (a foreign key checked at the end)."""
    with db.write(engine) as conn:
        conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
        conn.exec_driver_sql(
            "INSERT INTO channel_identity (channel, address, citizen_id, burst_count) "
            "VALUES ('whatsapp', '+22500000000', 987654321, 0)"
        )


def test_a_failing_commit_fails_every_write_of_the_batch_and_keeps_none(scratch: Engine) -> None:
    group = GroupCommit(scratch)
    results = asyncio.run(
        together(
            lambda: group.run(insert, scratch, "a"),
            lambda: group.run(orphan, scratch),
            lambda: group.run(insert, scratch, "c"),
        )
    )
    assert all(isinstance(r, sa.exc.IntegrityError) for r in results), results
    assert names(scratch) == set()
    # and the next pass works as ever
    assert asyncio.run(together(lambda: group.run(insert, scratch, "d"))) == ["d"]
    assert names(scratch) == {"d"}


def test_a_request_given_up_does_not_cancel_the_others_commit(scratch: Engine) -> None:
    group = GroupCommit(scratch)

    async def scene() -> list[Any]:
        tasks = [asyncio.create_task(group.run(insert, scratch, n)) for n in "abc"]
        await asyncio.sleep(0)  # every task has run its write and waits for the commit
        tasks[1].cancel()  # its client went away
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(scene())
    assert results[0] == "a"
    assert results[2] == "c"
    assert isinstance(results[1], asyncio.CancelledError)
    assert names(scratch) == set("abc")  # the cancelled one was written before it gave up


def test_writes_nested_in_a_joined_write_are_savepoints_of_it(scratch: Engine) -> None:
    def nested() -> None:
        with db.write(scratch) as outer:
            outer.exec_driver_sql("INSERT INTO scratch (name) VALUES ('outer')")
            with pytest.raises(ValueError, match="inner"):
                insert(scratch, "inner", fail=True)
            with db.read(scratch) as conn:  # a read sees the batch's own writes
                assert {r[0] for r in conn.exec_driver_sql("SELECT name FROM scratch")} == {"outer"}

    group = GroupCommit(scratch)
    assert asyncio.run(together(lambda: group.run(nested))) == [None]
    assert names(scratch) == {"outer"}


# -- through the webhooks ---------------------------------------------------------------------


def signed(form: dict[str, str], auth_token: str, path: str = "/webhooks/whatsapp") -> Any:
    return {"X-Twilio-Signature": twilio_signature(auth_token, PUBLIC_BASE_URL + path, form)}


def test_concurrent_webhook_turns_share_commits_and_each_is_answered_after_its_own(
    demo_sqlite: Engine, app_factory: Any, commits: list[int]
) -> None:
    """Thirty citizens write at once, one of them twice with the same MessageSid, while the
    simulator and a delivery callback write too: every turn is answered, the duplicate once,
    nothing waits for a lock, and the batch took far fewer commits than requests."""
    with app_factory(demo_sqlite) as (client, fakes):
        token, sid = fakes.twilio.auth_token, fakes.twilio.account_sid
        forms = [
            inbound_whatsapp_form(f"+2250701{n:06d}", "Bonjour", account_sid=sid) for n in range(30)
        ]
        twice = forms[0]
        status = {"MessageSid": "SM" + "f" * 32, "MessageStatus": "delivered", "AccountSid": sid}

        async def scene() -> list[httpx.Response]:
            transport = httpx.ASGITransport(app=client.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                calls = [
                    lambda f=f: http.post("/webhooks/whatsapp", data=f, headers=signed(f, token))
                    for f in [*forms, twice]
                ]
                calls.append(
                    lambda: http.post(
                        "/api/v1/simulator/messages", json={"user": "demo-1", "text": "Bonjour"}
                    )
                )
                calls.append(
                    lambda: http.post(
                        "/webhooks/whatsapp/status",
                        data=status,
                        headers=signed(status, token, "/webhooks/whatsapp/status"),
                    )
                )
                del commits[:]
                return await together(*calls)

        responses = client.portal.call(scene)
        assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
        answers = [ET.fromstring(r.text).findall("Message") for r in responses[:31]]
        assert sum(1 for a in answers if a) == 30  # the duplicate answered with nothing
        assert responses[31].json()["replies"]
        assert len(commits) < 10, len(commits)
    with db.read(demo_sqlite) as conn:
        count = conn.execute(
            sa.text("SELECT COUNT(*) FROM channel_identity WHERE address LIKE '+2250701%'")
        ).scalar_one()
    assert count == 30
