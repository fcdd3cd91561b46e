"""Twilio's webhooks answered by their own ASGI layer (api.http.whatsapp_webhooks) keep every
promise the app's middleware makes elsewhere: request id, security headers, body cap, method,
the request counter, and no traceback on an unexpected error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from api.channels import ChannelHandlers
from tests.fakes.twilio_api import inbound_whatsapp_form, twilio_signature
from tests.support.channels import PUBLIC_BASE_URL
from tests.support.offline import offline  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("offline")

PATH = "/webhooks/whatsapp"
SECRET = "boom with " + "+2250701000001" + " inside"


def _signed(fakes: Any, form: dict[str, str]) -> dict[str, str]:
    return {
        "X-Twilio-Signature": twilio_signature(
            fakes.twilio.auth_token, PUBLIC_BASE_URL + PATH, form
        )
    }


def test_an_answer_carries_the_request_id_and_the_security_headers(
    demo_sqlite: Engine, app_factory: Any
) -> None:
    with app_factory(demo_sqlite) as (client, fakes):
        form = inbound_whatsapp_form(
            "+2250701000001", "Bonjour", account_sid=fakes.twilio.account_sid
        )
        headers = {**_signed(fakes, form), "X-Request-Id": "twilio-abc-1"}
        answer = client.post(PATH, data=form, headers=headers)
        refused = client.post(PATH, data=form, headers={"X-Twilio-Signature": "nope"})
        metrics = client.get("/metrics").text
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/xml"
    assert answer.headers["x-request-id"] == "twilio-abc-1"
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert len(refused.headers["x-request-id"]) == 16
    for each in (answer, refused):
        assert each.headers["x-content-type-options"] == "nosniff"
        assert each.headers["cache-control"] == "no-store"
        assert int(each.headers["content-length"]) == len(each.content)
    assert f'diaspora_http_requests_total{{route="{PATH}",status="200"}} 1.0' in metrics
    assert f'diaspora_http_requests_total{{route="{PATH}",status="403"}} 1.0' in metrics


def test_another_method_is_405_with_allow(engine: Engine, app_factory: Any) -> None:
    with app_factory(engine) as (client, _fakes):
        answer = client.get(PATH)
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"
    assert answer.json()["status"] == 405


def test_a_streamed_body_is_cut_off_at_its_cap(engine: Engine, app_factory: Any) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked
        for _ in range(300):
            yield b"a" * 1024

    with app_factory(engine) as (client, _fakes):
        answer = client.post(
            PATH, content=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        lying = client.post(PATH, content=b"Body=1", headers={"Content-Length": "x1"})
    assert answer.status_code == 413
    assert answer.json()["status"] == 413
    assert answer.headers["connection"] == "close"
    assert lying.status_code in (400, 413)


def test_an_unexpected_error_is_a_bare_500_logged_without_its_message(
    demo_sqlite: Engine,
    app_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(_self: ChannelHandlers, _form: Any) -> str:
        raise RuntimeError(SECRET)  # the stack shows this line, not the message

    monkeypatch.setattr(ChannelHandlers, "whatsapp", broken)
    with app_factory(demo_sqlite) as (client, fakes):
        form = inbound_whatsapp_form("+2250701000001", "1", account_sid=fakes.twilio.account_sid)
        answer = client.post(PATH, data=form, headers=_signed(fakes, form))
    assert answer.status_code == 500
    assert answer.json() == {"type": "about:blank", "title": "Internal Server Error", "status": 500}
    assert SECRET not in caplog.text
    assert f"unhandled RuntimeError on POST {PATH}" in caplog.text
