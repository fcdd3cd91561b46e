"""Security review item 9: answers are not cached nor sniffed; no redirect taken from Host."""

from __future__ import annotations

import warnings
from pathlib import Path

from sqlalchemy.engine import Engine
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings


def _client(tmp_path: Path, engine: Engine) -> TestClient:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'app.db'}")
    return TestClient(create_app(settings, engine, run_worker=False))


def test_answers_carry_no_store_and_nosniff(tmp_path: Path, sqlite_engine: Engine) -> None:
    with _client(tmp_path, sqlite_engine) as client:
        for path in ("/healthz", "/no-such-route"):
            answer = client.get(path)
            assert answer.headers["cache-control"] == "no-store"
            assert answer.headers["x-content-type-options"] == "nosniff"


def test_trailing_slash_is_not_redirected_from_host(tmp_path: Path, sqlite_engine: Engine) -> None:
    with _client(tmp_path, sqlite_engine) as client:
        answer = client.get("/healthz/", headers={"Host": "evil.example"}, follow_redirects=False)
        assert answer.status_code == 404
        assert "location" not in answer.headers
