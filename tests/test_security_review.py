"""The security review's findings, one test (or a few) per item, each failing before its fix.

1. The simulator's `now` moves the clock only under SIMULATOR_CLOCK.
2. The simulator is on by default for the local demo only.
3. A stranger's wrong birth dates lock only that stranger out; staff see them.
4. No inbound message without its provider id.
5. Bodies are capped as they stream in; deep JSON is a 400, not a 500.
6. A flood from one number gets one "slow down" and costs no turns; the simulator and the
   console login are limited per client address; every outbound client has timeouts.
7. Tokens and console logins: see tests/test_cli.py, test_console.py, test_staff_api.py.
8. An agent's segment and the requests an agent lodges stay within the agent's posts.
9. The API's documentation is served without CDN and staff-only outside the local demo;
   /metrics can want a token (no-store, nosniff, no slash redirect: test_security_headers).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any
from xml.etree import ElementTree as ET

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine, make_url

from api.app import create_app
from api.db import create_engine, write
from api.domain.requests import RequestService
from api.domain.staff import add_staff
from api.domain.tables import table
from api.models import ChannelIdentity, ConsularRequest, InboundMessage
from api.settings import Settings
from bot.channels.telegram import make_bot
from bot.channels.whatsapp import LocalizedHttpClient
from bot.rate_limits import RedisRateLimiter
from bot.runtime import FLOOD_LIMIT
from tests.fakes.twilio_api import inbound_whatsapp_form, twilio_signature
from tests.support.channels import PUBLIC_BASE_URL, TELEGRAM_SECRET, Fakes
from tests.support.offline import offline  # noqa: F401  (fixture)
from tests.support.staff import admin_token
from tests.support.staff_api import staff_api

pytestmark = pytest.mark.usefixtures("offline")

PHONE = "+2250701000001"
SERVER_NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
identities = ChannelIdentity.__table__  # type: ignore[attr-defined]
inbound = InboundMessage.__table__  # type: ignore[attr-defined]


def _count(engine: Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


# -- 1. the simulator's clock ------------------------------------------------------------------


def _simulator_app(engine: Engine, *, clock: bool) -> TestClient:
    settings = Settings(
        database_url=engine.url.render_as_string(hide_password=False),
        simulator_enabled=True,
        simulator_clock=clock,
    )
    app = create_app(settings, engine=engine, run_worker=False)
    app.state.clock = lambda: SERVER_NOW
    return TestClient(app)


def _seen_at(engine: Engine) -> datetime:
    with engine.connect() as conn:
        seen = conn.execute(sa.select(identities.c.last_inbound_at)).scalar_one()
    return seen if seen.tzinfo else seen.replace(tzinfo=UTC)


@pytest.mark.parametrize(("clock", "expected"), [(False, SERVER_NOW), (True, None)])
def test_simulator_now_is_honoured_only_under_simulator_clock(
    demo_engine: Engine, clock: bool, expected: datetime | None
) -> None:
    client_now = "2099-01-01T08:00:00Z"
    with _simulator_app(demo_engine, clock=clock) as client:
        answer = client.post(
            "/api/v1/simulator/messages", json={"user": "u1", "text": "Bonjour", "now": client_now}
        )
        assert answer.status_code == 200
    wanted = expected or datetime(2099, 1, 1, 8, 0, tzinfo=UTC)
    assert _seen_at(demo_engine) == wanted


def test_simulator_clock_is_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIMULATOR_CLOCK", raising=False)  # the suite sets it for itself
    assert Settings().simulator_clock is False


# -- 2. the simulator outside the local demo ---------------------------------------------------


@pytest.mark.parametrize(
    ("database_url", "public_base_url", "enabled"),
    [
        ("sqlite:///var/app.db", "http://127.0.0.1:8000", True),
        ("sqlite:///var/app.db", "http://localhost:8000", True),
        ("sqlite:///var/app.db", "https://diaspora.gov.bf", False),
        ("sqlite:////srv/data/app.db", "http://127.0.0.1:8000", False),
        ("postgresql://u:p@db:5432/app", "http://127.0.0.1:8000", False),
    ],
)
def test_simulator_is_on_by_default_only_for_the_local_demo(
    monkeypatch: pytest.MonkeyPatch, database_url: str, public_base_url: str, enabled: bool
) -> None:
    monkeypatch.delenv("SIMULATOR_ENABLED", raising=False)
    settings = Settings(database_url=database_url, public_base_url=public_base_url)
    assert settings.simulator_enabled is enabled
    assert Settings(database_url=database_url, simulator_enabled=True).simulator_enabled


# -- 3. a reference guessed by a stranger -------------------------------------------------------


def _say(client: TestClient, user: str, *texts: str) -> str:
    answer = ""
    for text in texts:
        response = client.post("/api/v1/simulator/messages", json={"user": user, "text": text})
        assert response.status_code == 200, response.text
        answer = " ".join(m["text"] for m in response.json()["replies"])
    return answer


def test_a_stranger_guessing_locks_only_themselves_and_staff_see_it(demo_engine: Engine) -> None:
    with write(demo_engine) as conn:
        reference = (
            RequestService(conn)
            .create("ABJ", "passport", PHONE, "Awa Ouédraogo", date(1990, 3, 12), None, SERVER_NOW)
            .reference
        )
    with _simulator_app(demo_engine, clock=False) as client:
        _say(client, "stranger", "Bonjour", "1", "2", reference)
        for wrong in ("01/01/1990", "02/02/1990", "03/03/1990"):
            answer = _say(client, "stranger", wrong)
        assert "Réessayez dans 15 minutes" in answer
        # the stranger is out, even with the right date; someone else is not
        assert "Réessayez dans 15 minutes" in _say(client, "stranger", "2", reference)
        found = _say(client, "owner", "Bonjour", "1", "2", reference, "12/03/1990")
        assert reference in found
        assert "Passeport" in found
        token = admin_token(demo_engine)
        detail = client.get(
            f"/api/v1/requests/{reference}", headers={"Authorization": f"Bearer {token}"}
        )
    assert detail.status_code == 200
    assert detail.json()["lookups"] == {"failures": 3, "senders": 1, "locked_until": None}


# -- 8. the scope of an agent's audience --------------------------------------------------------


def test_an_agents_request_criterion_counts_only_their_posts(demo_engine: Engine) -> None:
    api = staff_api(demo_engine)
    awa = api.citizen("+2250701000001")
    api.book(awa, "ABJ")  # belongs to Abidjan …
    with write(demo_engine) as conn:  # … and has a request ready in Paris, hers
        reference = (
            RequestService(conn)
            .create("PAR", "cnib", None, "Awa", date(1990, 3, 12), None, SERVER_NOW)
            .reference
        )
        RequestService(conn).change_status(reference, "in_progress", "", None, SERVER_NOW)
        RequestService(conn).change_status(reference, "ready", "", None, SERVER_NOW)
        requests = table(ConsularRequest)
        conn.execute(
            sa.update(requests).where(requests.c.reference == reference).values(citizen_id=awa)
        )
    segment = {"posts": ["ABJ"], "request": {"statuses": ["ready"]}}
    assert api.post("/broadcasts/count", who="admin", json=segment).json()["total"] == 1
    assert api.post("/broadcasts/count", who="abj", json=segment).json()["total"] == 0
    draft = api.post(
        "/broadcasts", who="abj", json={"title": "t", "texts": {"fr": "x"}, "segment": segment}
    )
    assert draft.status_code == 201, draft.text
    assert draft.json()["segment"]["request"] == {"statuses": ["ready"], "posts": ["ABJ"]}


def test_a_phone_typed_at_a_desk_pulls_no_citizen_into_its_scope(demo_engine: Engine) -> None:
    api = staff_api(demo_engine)
    phone = "+33612345678"
    paris = api.citizen(phone, country="FR")  # belongs to Paris by her number
    body = {"post": "ACC", "service": "cnib", "full_name": "X", "birth_date": "1990-03-12"}
    lodged = api.post("/requests", who="acc", json={**body, "phone": phone})
    assert lodged.status_code == 201, lodged.text
    assert lodged.json()["citizen_id"] is None  # nothing revealed
    assert api.get("/citizens", who="acc", params={"phone": phone}).json()["items"] == []
    assert api.get(f"/citizens/{paris}", who="acc").status_code == 404
    counted = api.post("/broadcasts/count", who="acc", json={"posts": ["ACC"]}).json()
    assert counted["total"] == 0
    # what the desk needs still works: she is told when her request moves on
    reference = lodged.json()["reference"]
    moved = api.post(f"/requests/{reference}/status", who="acc", json={"status": "in_progress"})
    assert moved.status_code == 200, moved.text
    assert [m["kind"] for m in api.outbox(paris)] == ["notification"]
    assert api.get(f"/citizens/{paris}", who="acc").status_code == 404
    # an administrator's desk links as before
    linked = api.post("/requests", who="admin", json={**body, "post": "PAR", "phone": phone})
    assert linked.json()["citizen_id"] == paris


# -- 4. replays past the duplicate check -------------------------------------------------------


def _post_whatsapp(client: TestClient, fakes: Fakes, form: dict[str, str]) -> Any:
    url = f"{PUBLIC_BASE_URL}/webhooks/whatsapp"
    headers = {"X-Twilio-Signature": twilio_signature(fakes.twilio.auth_token, url, form)}
    return client.post("/webhooks/whatsapp", data=form, headers=headers)


@pytest.fixture
def app_with_fakes(app_factory: Any, demo_engine: Engine) -> Iterator[tuple[TestClient, Fakes]]:
    with app_factory(demo_engine, now="2026-12-01T08:00:00Z") as pair:
        yield pair


def test_a_replay_without_its_message_sid_is_refused_before_any_effect(
    app_with_fakes: tuple[TestClient, Fakes], demo_engine: Engine
) -> None:
    client, fakes = app_with_fakes
    form = inbound_whatsapp_form(PHONE, "Bonjour", account_sid=fakes.twilio.account_sid)
    assert _post_whatsapp(client, fakes, form).status_code == 200
    turns = _count(demo_engine, inbound)

    # The same signature holds when a name and its value are glued together differently.
    sid = form.pop("MessageSid")
    form[f"MessageSid{sid[:-1]}"] = sid[-1]
    form.pop("SmsMessageSid")
    form.pop("SmsSid")
    answer = _post_whatsapp(client, fakes, form)
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert _count(demo_engine, inbound) == turns


@pytest.mark.parametrize("sid", ["", "SM1", "XX" + "0" * 32, "SM" + "g" * 32])
def test_a_malformed_message_sid_is_refused(
    app_with_fakes: tuple[TestClient, Fakes], sid: str
) -> None:
    client, fakes = app_with_fakes
    form = inbound_whatsapp_form(
        PHONE, "Bonjour", account_sid=fakes.twilio.account_sid, message_sid=sid or "x"
    )
    form["MessageSid"] = sid
    assert _post_whatsapp(client, fakes, form).status_code == 400


def _post_telegram(client: TestClient, body: bytes) -> Any:
    headers = {
        "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET,
        "Content-Type": "application/json",
    }
    return client.post("/webhooks/telegram", content=body, headers=headers)


@pytest.mark.parametrize(
    "body",
    [
        b'{"message": {"message_id": 1, "date": 0, "chat": {"id": 9, "type": "private"},'
        b' "text": "Bonjour"}}',
        b'{"update_id": "12", "message": {}}',
        b'{"update_id": true}',
    ],
)
def test_a_telegram_update_without_update_id_is_refused(
    app_with_fakes: tuple[TestClient, Fakes], demo_engine: Engine, body: bytes
) -> None:
    client, _fakes = app_with_fakes
    answer = _post_telegram(client, body)
    assert answer.status_code == 400
    assert _count(demo_engine, inbound) == 0


def test_deeply_nested_json_is_a_400_not_a_500(app_with_fakes: tuple[TestClient, Fakes]) -> None:
    client, _fakes = app_with_fakes
    depth = 100_000
    answer = _post_telegram(client, b"[" * depth + b"]" * depth)
    assert answer.status_code in (400, 413)
    nested = b'{"update_id": 1, "x": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    answer = _post_telegram(client, nested)
    assert answer.status_code == 400
    assert answer.json()["status"] == 400


# -- 5. bodies capped as they stream -----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "size"),
    [
        ("/webhooks/whatsapp", 300 * 1024),
        ("/webhooks/telegram", 300 * 1024),
        ("/api/v1/simulator/messages", 32 * 1024),
        ("/api/v1/posts", 2 * 1024 * 1024),
    ],
)
def test_a_body_above_its_cap_is_413_before_anything_else(
    app_with_fakes: tuple[TestClient, Fakes], path: str, size: int
) -> None:
    client, _fakes = app_with_fakes
    answer = client.post(path, content=b"a" * size, headers={"Content-Type": "application/json"})
    assert answer.status_code == 413
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["status"] == 413


def test_a_streamed_body_is_cut_off_at_its_cap(app_with_fakes: tuple[TestClient, Fakes]) -> None:
    client, _fakes = app_with_fakes

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked, as a lying client would
        yield b'{"user": "u", "text": "'
        for _ in range(64):
            yield b"a" * 1024
        yield b'"}'

    answer = client.post(
        "/api/v1/simulator/messages",
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 413
    assert answer.json()["status"] == 413


def test_a_message_within_the_cap_still_works(app_with_fakes: tuple[TestClient, Fakes]) -> None:
    client, _fakes = app_with_fakes
    answer = client.post("/api/v1/simulator/messages", json={"user": "u", "text": "a" * 5000})
    assert answer.status_code == 200


# -- 6. floods from one sender ------------------------------------------------------------------


def _bodies(xml: str) -> list[str]:
    root = ET.fromstring(xml)
    return [m.findtext("Body") or (m.text or "") for m in root.iter("Message")]


def test_a_flood_from_one_number_is_answered_once_and_runs_no_turn(
    app_with_fakes: tuple[TestClient, Fakes], demo_engine: Engine
) -> None:
    client, fakes = app_with_fakes
    flooder, neighbour = "+2250701000009", "+2250701000010"
    sid = fakes.twilio.account_sid
    answered = []
    for _ in range(200):
        form = inbound_whatsapp_form(flooder, "Bonjour", account_sid=sid)
        response = _post_whatsapp(client, fakes, form)
        assert response.status_code == 200  # acknowledged, so that Twilio does not retry
        answered.append(_bodies(response.text))
        # meanwhile another citizen is served as usual
    neighbour_answer = _post_whatsapp(
        client, fakes, inbound_whatsapp_form(neighbour, "Bonjour", account_sid=sid)
    )
    assert _bodies(neighbour_answer.text)
    assert all(answered[:FLOOD_LIMIT])  # a person's pace: every message answered
    assert answered[FLOOD_LIMIT] == [answered[FLOOD_LIMIT][0]]
    assert "Attendez une minute" in answered[FLOOD_LIMIT][0]
    assert not any(answered[FLOOD_LIMIT + 1 :])  # the rest: dropped without a turn
    assert _count(demo_engine, inbound) == 201  # every id remembered: a retry is a duplicate
    with demo_engine.connect() as conn:
        count = conn.execute(
            sa.select(identities.c.burst_count).where(identities.c.address == flooder)
        ).scalar_one()
    assert count == 200


def _simulator_from(engine: Engine, address: str, **limits: int) -> TestClient:
    settings = Settings(
        database_url=engine.url.render_as_string(hide_password=False),
        simulator_enabled=True,
        simulator_clock=False,
        **limits,
    )
    app = create_app(settings, engine=engine, run_worker=False)
    return TestClient(app, client=(address, 40000))


def test_the_simulator_limits_new_users_per_address(demo_engine: Engine) -> None:
    with _simulator_from(demo_engine, "203.0.113.7") as client:
        for n in range(20):
            assert _say(client, f"bot-{n}", "Bonjour")
        refused = client.post("/api/v1/simulator/messages", json={"user": "bot-20", "text": "x"})
        assert refused.status_code == 429
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert 0 < int(refused.headers["retry-after"]) <= 600
        assert _say(client, "bot-3", "1")  # the users already there go on
        other = TestClient(client.app, client=("198.51.100.2", 40000))
        assert _say(other, "someone-else", "Bonjour")  # another address is not concerned
    assert _count(demo_engine, identities) == 21


def test_the_simulator_limits_messages_per_address(demo_engine: Engine) -> None:
    with _simulator_from(demo_engine, "203.0.113.8", simulator_messages_per_minute=5) as client:
        for _ in range(5):
            assert _say(client, "u", "Bonjour")
        refused = client.post("/api/v1/simulator/messages", json={"user": "u", "text": "x"})
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) <= 60


def test_failed_console_logins_wait_per_account_and_per_address(demo_engine: Engine) -> None:
    from tests.test_console import csrf

    with write(demo_engine) as conn:
        add_staff(conn, "awa@consulat.bf", "agent", ["ABJ"], "correct horse battery")
        add_staff(conn, "ali@consulat.bf", "agent", ["ABJ"], "correct horse battery")
    right = {"email": "awa@consulat.bf", "password": "correct horse battery"}

    def attempt(client: TestClient, **form: str) -> Any:
        page = client.get("/console/login")
        return client.post("/console/login", data={**form, "csrf": csrf(page.text)})

    with _simulator_from(demo_engine, "203.0.113.9") as client:
        # one account, from five addresses: the account waits
        for n in range(5):
            other = TestClient(client.app, client=(f"198.51.100.{n}", 40000))
            assert attempt(other, email="awa@consulat.bf", password="guess").status_code == 401
        throttled = attempt(client, **right)
        assert throttled.status_code == 429  # even the right password waits
        assert "Réessayez dans 15 minutes" in throttled.text
        assert int(throttled.headers["retry-after"]) > 0
        # one address, guessing five accounts: the address waits
        for n in range(5):
            assert attempt(client, email=f"x{n}@consulat.bf", password="guess").status_code == 401
        ali = {"email": "ali@consulat.bf", "password": "correct horse battery"}
        assert attempt(client, **ali).status_code == 429
        elsewhere = TestClient(client.app, client=("192.0.2.1", 40000))
        assert attempt(elsewhere, **ali).status_code == 200  # a working login is not slowed
    with demo_engine.connect() as conn:
        failed = conn.execute(
            sa.text("SELECT entity_id, before, after FROM audit_log WHERE action = 'login_failed'")
        ).all()
    assert len(failed) == 10
    assert {row.entity_id for row in failed} == {"unknown", str(_staff_id(demo_engine))}
    assert not any("guess" in str(row) or "horse" in str(row) for row in failed)  # no password


def _staff_id(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT id FROM staff WHERE email = 'awa@consulat.bf'")
            ).scalar_one()
        )


def _finite(timeout: httpx.Timeout) -> bool:
    parts = (timeout.connect, timeout.read, timeout.write, timeout.pool)
    return all(part is not None and 0 < part <= 30 for part in parts)


def test_every_outbound_client_has_timeouts() -> None:
    bot = make_bot("123456:TEST", "http://127.0.0.1:9")
    assert all(_finite(request._client.timeout) for request in bot._request)
    twilio = LocalizedHttpClient("http://127.0.0.1:9")
    assert twilio.timeout == 15.0
    assert _finite(twilio.http.timeout)
    limiter = RedisRateLimiter.from_url("redis://127.0.0.1:6379/0", {"telegram": 30})
    kwargs = limiter.redis.connection_pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (5.0, 5.0)
    engine = create_engine(make_url("postgresql+psycopg://u@127.0.0.1:9/db"))
    seen: dict[str, Any] = {}

    @sa.event.listens_for(engine, "do_connect")
    def _capture(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        seen.update(cparams)
        raise ConnectionAbortedError  # what PostgreSQL would be given, not a real connection

    with pytest.raises(ConnectionAbortedError):
        engine.connect()
    assert seen["connect_timeout"] == 10
    engine.dispose()


def test_a_provider_that_never_answers_fails_the_call_in_time() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    host, port = silent.getsockname()

    async def call() -> None:
        client = LocalizedHttpClient(f"http://{host}:{port}", timeout=0.5)
        try:
            await client.request("POST", "https://api.twilio.com/2010-04-01/Accounts/AC/x.json")
        finally:
            await client.http.aclose()

    started = time.monotonic()
    with pytest.raises(httpx.TimeoutException):
        asyncio.run(call())
    assert time.monotonic() - started < 10  # bounded by the timeout, not by the provider
    silent.close()


# -- 9. the production surface ------------------------------------------------------------------


def _docs_app(engine: Engine, **settings: Any) -> TestClient:
    values = {"database_url": engine.url.render_as_string(hide_password=False), **settings}
    return TestClient(create_app(Settings(**values), engine=engine, run_worker=False))


def test_the_docs_are_served_by_the_app_itself(demo_engine: Engine) -> None:
    with _docs_app(demo_engine, api_docs="public") as client:
        for page, asset in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
            html = client.get(page)
            assert html.status_code == 200
            assert f"/docs/static/{asset}" in html.text
            assert "cdn." not in html.text
            assert "fonts.googleapis" not in html.text
            script = client.get(f"/docs/static/{asset}")
            assert script.status_code == 200
            assert len(script.content) > 100_000
        assert client.get("/openapi.json").json()["info"]["title"] == "Diaspora Bot API"


def test_outside_the_local_demo_the_docs_are_for_staff(
    demo_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("API_DOCS", raising=False)
    production = {"public_base_url": "https://bot.consulat.bf"}
    assert Settings(**production).api_docs == "staff"
    local = {"database_url": "sqlite:///var/app.db", "public_base_url": "http://127.0.0.1:8000"}
    assert Settings(**local).api_docs == "public"
    with _docs_app(demo_engine, **production) as client:
        refused = client.get("/openapi.json")
        assert refused.status_code == 401
        assert refused.headers["content-type"].startswith("application/problem+json")
        page = client.get("/docs", follow_redirects=False)
        assert (page.status_code, page.headers["location"]) == (303, "/console/login?next=/docs")
        token = admin_token(demo_engine)
        schema = client.get("/openapi.json", headers={"Authorization": f"Bearer {token}"})
        assert schema.status_code == 200
        assert (
            client.get("/openapi.json", headers={"Authorization": "Bearer dbt_x"}).status_code
            == 401
        )
    with _docs_app(demo_engine, api_docs="off") as client:
        assert client.get("/docs").status_code == 404
        assert client.get("/openapi.json").status_code == 404


def test_a_console_login_opens_the_docs_and_comes_back_to_them(demo_engine: Engine) -> None:
    from tests.test_console import csrf

    with write(demo_engine) as conn:
        add_staff(conn, "awa@consulat.bf", "agent", ["ABJ"], "correct horse battery")
    with _docs_app(demo_engine, api_docs="staff") as client:
        page = client.get("/console/login?next=/docs")
        form = {
            "email": "awa@consulat.bf",
            "password": "correct horse battery",
            "csrf": csrf(page.text),
            "next": "/docs",
        }
        logged = client.post("/console/login", data=form, follow_redirects=False)
        assert logged.headers["location"] == "/docs"
        assert client.get("/docs").status_code == 200
        assert client.get("/openapi.json").status_code == 200


def test_metrics_can_want_a_token(demo_engine: Engine) -> None:
    with _docs_app(demo_engine, metrics_token="s3cret-scraper") as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
        scraped = client.get("/metrics", headers={"Authorization": "Bearer s3cret-scraper"})
        assert scraped.status_code == 200
        assert "diaspora_http_requests_total" in scraped.text
    with _docs_app(demo_engine) as client:
        assert client.get("/metrics").status_code == 200  # unset: as before
