"""Logs, request ids, the database away on the webhooks, and retention of personal data.

The whole topology's metrics and log scan are in tests/test_topology.py; these are the parts
that need no process of their own.
"""

from __future__ import annotations

import json
import logging
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from api import db
from api.app import create_app
from api.db import create_engine
from api.domain import retention
from api.domain.tables import table
from api.models import ChannelIdentity, Citizen, InboundMessage, OutboxMessage
from api.settings import Settings
from bot import logs
from tests.fakes.twilio_api import inbound_whatsapp_form, twilio_signature

PUBLIC = "https://diaspora.test"
AUTH_TOKEN = "twilio-token"


def _record(message: str, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("api.test", logging.ERROR, __file__, 1, message, (), exc_info)


def _fail_with(data: str) -> None:
    raise ValueError(data)


def test_json_lines_carry_the_request_id_and_never_an_exception_message() -> None:
    quoted = "+2250701000001 Awa Ouédraogo"  # what a driver quotes of its parameters
    try:
        _fail_with(quoted)
    except ValueError as exc:
        failed = exc
    token = logs.request_id.set("abc123def456")
    try:
        entry = json.loads(logs.JsonFormatter().format(_record("turn failed", failed)))
        plain = logs.PlainFormatter().format(_record("turn failed", failed))
    finally:
        logs.request_id.reset(token)
    assert entry["request_id"] == "abc123def456"
    assert (entry["msg"], entry["exc_type"]) == ("turn failed", "ValueError")
    assert "raise ValueError(data)" in entry["stack"]
    for line in (json.dumps(entry, ensure_ascii=False), plain):
        assert "+2250701000001" not in line
        assert "Awa" not in line
    assert "[abc123def456]" in plain


def test_a_sane_request_id_is_kept_and_anything_else_replaced() -> None:
    assert logs.new_request_id("req-0123456789") == "req-0123456789"
    fresh = logs.new_request_id("<script>\n")
    assert fresh != "<script>\n"
    assert len(fresh) == 16


def _down_app(tmp_path: Path) -> tuple[TestClient, Engine]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'unused.db'}",
        public_base_url=PUBLIC,
        twilio_account_sid="AC" + "0" * 32,
        twilio_auth_token=AUTH_TOKEN,
        twilio_whatsapp_from="whatsapp:+14155238886",
        telegram_bot_token="123:ABC",
        telegram_webhook_secret="secret",
    )
    # Nothing listens on port 1: every connection is refused at once, as during a restart.
    down = create_engine(make_url("postgresql+psycopg://postgres@127.0.0.1:1/none"))
    return TestClient(create_app(settings, down, run_worker=False)), down


def test_webhooks_answer_503_while_the_database_is_away(tmp_path: Path) -> None:
    client, down = _down_app(tmp_path)
    form = inbound_whatsapp_form("+2250701000001", "Bonjour", account_sid="AC" + "0" * 32)
    signature = twilio_signature(AUTH_TOKEN, f"{PUBLIC}/webhooks/whatsapp", form)
    update = {
        "update_id": 1,
        "message": {
            "message_id": 1,
            "date": 1_700_000_000,
            "chat": {"id": 7, "type": "private"},
            "from": {"id": 7, "is_bot": False, "first_name": "T"},
            "text": "Bonjour",
        },
    }
    try:
        with client:
            whatsapp = client.post(
                "/webhooks/whatsapp",
                data=form,
                headers={"X-Twilio-Signature": signature, "X-Request-Id": "from-twilio-123"},
            )
            telegram = client.post(
                "/webhooks/telegram",
                json=update,
                headers={"X-Telegram-Bot-Api-Secret-Token": "secret"},
            )
            ready = client.get("/readyz")
            metrics = client.get("/metrics").text
    finally:
        down.dispose()
    for answer in (whatsapp, telegram, ready):
        assert answer.status_code == 503
    assert whatsapp.headers["Retry-After"] == "5"
    assert whatsapp.headers["X-Request-Id"] == "from-twilio-123"
    assert len(telegram.headers["X-Request-Id"]) == 16
    assert 'diaspora_turn_failures_total{channel="whatsapp",reason="database"} 1.0' in metrics
    assert "diaspora_database_up 0.0" in metrics


def test_retention_forgets_old_texts_and_keeps_the_counts(engine: Engine) -> None:
    citizen, identity = table(Citizen), table(ChannelIdentity)
    outbox, inbound = table(OutboxMessage), table(InboundMessage)
    now = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    old, recent = now - timedelta(days=91), now - timedelta(days=10)
    with db.write(engine) as conn:
        cid = conn.execute(
            sa.insert(citizen)
            .values(country="CI", lang="fr", created_at=old)
            .returning(citizen.c.id)
        ).scalar_one()
        state = {"flow": "booking", "step": "confirm", "data": {"name": "Awa Ouédraogo"}}
        for address, touched in (("+2250701000001", old), ("+2250701000002", recent)):
            conn.execute(
                sa.insert(identity).values(
                    channel="whatsapp",
                    address=address,
                    citizen_id=cid,
                    state=state,
                    state_updated_at=touched,
                )
            )
        base = {"channel": "whatsapp", "citizen_id": cid, "lang": "fr", "lane": 1}
        base |= {"kind": "notification", "attempts": 0, "error": "", "skip_reason": ""}
        for status, created in (("sent", old), ("pending", old), ("sent", recent)):
            conn.execute(
                sa.insert(outbox).values(
                    **base,
                    address="+2250701000001",
                    payload={"text": "Awa, votre rendez-vous", "choices": []},
                    status=status,
                    next_attempt_at=created,
                    created_at=created,
                )
            )
        conn.execute(
            sa.insert(inbound).values(channel="whatsapp", provider_id="SM1", received_at=old)
        )

    purged = retention.purge_expired(engine, now, days=90)
    assert purged == retention.Purged(messages=1, conversations=1, inbound_ids=1)
    assert retention.purge_expired(engine, now, days=90) == retention.Purged(0, 0, 0)
    with db.read(engine) as conn:
        rows = conn.execute(
            sa.select(outbox.c.status, outbox.c.address, outbox.c.payload).order_by(outbox.c.id)
        ).all()
        states = conn.execute(
            sa.select(identity.c.address, identity.c.state).order_by(identity.c.address)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("sent", "—", {}),  # counted still, without its text or address
        ("pending", "+2250701000001", {"text": "Awa, votre rendez-vous", "choices": []}),
        ("sent", "+2250701000001", {"text": "Awa, votre rendez-vous", "choices": []}),
    ]
    assert [tuple(s) for s in states] == [("+2250701000001", None), ("+2250701000002", state)]


def test_metrics_count_the_waitlists(demo_engine: Engine) -> None:
    from api.world import SqlWorld
    from tests.support.people import add_citizen

    for name in ("Issa Traoré", "Awa Traoré"):
        citizen = add_citizen(demo_engine, phone=None)
        with db.write(demo_engine) as conn:
            SqlWorld(conn).join_waitlist(
                citizen, "ABJ", "cnib", name, datetime(2026, 12, 1, tzinfo=UTC)
            )
    settings = Settings(database_url=demo_engine.url.render_as_string(hide_password=False))
    with TestClient(create_app(settings, engine=demo_engine, run_worker=False)) as client:
        scraped = client.get("/metrics").text
    assert 'diaspora_waitlist_entries{status="waiting"} 2.0' in scraped
    assert 'diaspora_waitlist_entries{status="offered"} 0.0' in scraped
