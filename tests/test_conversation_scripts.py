"""Every conversation script in ../shared/conversations/ runs against a freshly seeded demo
database, through the channel it names, on SQLite and on PostgreSQL. Files dropped in that
folder later are picked up without any change here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from tests.support.channels import driver_for
from tests.support.staff import admin_token

SCRIPTS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "conversations"
SCRIPTS = sorted(SCRIPTS_DIR.glob("*.yaml"))

# Scripts in a language that has not landed yet may be marked here, strictly, with the reason.
EXPECTED_FAILURES: dict[str, str] = {}


def test_scripts_are_found() -> None:
    assert SCRIPTS, f"no conversation scripts in {SCRIPTS_DIR}"


def _params() -> list[Any]:
    params = []
    for path in SCRIPTS:
        marks = []
        if path.name in EXPECTED_FAILURES:
            marks.append(pytest.mark.xfail(reason=EXPECTED_FAILURES[path.name], strict=True))
        params.append(pytest.param(path, id=path.stem, marks=marks))
    return params


@pytest.mark.parametrize("path", _params())
def test_conversation_script(path: Path, demo_engine: Engine, app_factory: Any) -> None:
    script = yaml.safe_load(path.read_text(encoding="utf-8"))
    channel = script.get("channel", "simulator")
    with app_factory(demo_engine, now=script.get("now")) as (client, fakes):
        chat = driver_for(channel, client, fakes, phone=script.get("phone"), now=script.get("now"))
        for number, step in enumerate(script["steps"], start=1):
            where = f"{path.name} step {number}"
            if "send" in step:
                answer = chat.send(str(step["send"]))
            else:
                answer = chat.send(str(chat.last.number_of(step["pick"])))
            if "reply" in step:
                assert re.search(step["reply"], answer.whole), (
                    f"{where}: {step['reply']!r} not in:\n{answer.whole}"
                )
            if "reply_not" in step:
                assert not re.search(step["reply_not"], answer.whole), (
                    f"{where}: {step['reply_not']!r} found in:\n{answer.whole}"
                )
        expected = (script.get("expect") or {}).get("appointments")
        if expected is not None:
            _check_appointments(client, demo_engine, script["phone"], expected, path.name)


def _check_appointments(
    client: TestClient, engine: Engine, phone: str, expected: list[dict[str, str]], name: str
) -> None:
    token = admin_token(engine)
    response = client.get(
        "/api/v1/citizens", params={"phone": phone}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    found = [
        {"post": a["post"], "service": a["service"], "status": a["status"]}
        for citizen in response.json()["items"]
        for a in citizen["appointments"]
    ]
    key = lambda a: (a["post"], a["service"], a["status"])  # noqa: E731
    assert sorted(found, key=key) == sorted(expected, key=key), f"{name}: appointments"
