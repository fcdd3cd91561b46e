"""Operations endpoints: liveness, readiness (with the database down), metrics, errors."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine, make_url
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # Starlette 1.x asks for `httpx2` beside plain httpx; harmless for these tests.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from api.app import create_app
from api.db import create_engine
from api.settings import Settings


def _settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'app.db'}")


def test_healthz_and_readyz(sqlite_engine: Engine, tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path), sqlite_engine)) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}


def test_readyz_503_when_database_unreachable(tmp_path: Path) -> None:
    # Nothing listens on port 1: the connection is refused at once.
    down = create_engine(make_url("postgresql+psycopg://postgres@127.0.0.1:1/none"))
    try:
        with TestClient(create_app(_settings(tmp_path), down)) as client:
            response = client.get("/readyz")
    finally:
        down.dispose()
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}


def test_metrics_count_by_route_template(sqlite_engine: Engine, tmp_path: Path) -> None:
    app = create_app(_settings(tmp_path), sqlite_engine)

    @app.get("/things/{ref}")
    def thing(ref: str) -> dict[str, str]:
        return {"ref": ref}

    with TestClient(app) as client:
        client.get("/healthz")
        client.get("/things/ABJ-2026-000123")
        client.get("/nowhere/+22507000000")
        metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'diaspora_http_requests_total{route="/healthz",status="200"} 1.0' in text
    assert 'diaspora_http_requests_total{route="/things/{ref}",status="200"} 1.0' in text
    assert 'route="<unmatched>",status="404"' in text
    assert "ABJ-2026" not in text
    assert "+22507" not in text


def test_each_app_has_its_own_counters(sqlite_engine: Engine, tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path), sqlite_engine)) as client:
        client.get("/healthz")
    with TestClient(create_app(_settings(tmp_path), sqlite_engine)) as client:
        text = client.get("/metrics").text
    assert 'route="/healthz"' not in text


def test_unhandled_error_is_problem_json_and_logs_no_personal_data(
    sqlite_engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(_settings(tmp_path), sqlite_engine)

    @app.post("/boom")
    def boom(payload: dict[str, str]) -> None:
        raise RuntimeError(f"cannot book for {payload['phone']}")

    with caplog.at_level(logging.ERROR), TestClient(app) as client:
        response = client.post("/boom", json={"phone": "+22507000000", "name": "Awa Ouédraogo"})
        metrics = client.get("/metrics").text
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
    }
    assert "RuntimeError" in caplog.text
    assert "/boom" in caplog.text
    assert "+22507000000" not in caplog.text
    assert "Awa" not in caplog.text
    assert 'diaspora_http_requests_total{route="/boom",status="500"} 1.0' in metrics


def test_openapi_title(sqlite_engine: Engine, tmp_path: Path) -> None:
    settings = _settings(tmp_path).model_copy(update={"api_docs": "public"})
    with TestClient(create_app(settings, sqlite_engine)) as client:
        spec = client.get("/openapi.json").json()
        docs = client.get("/docs")
    assert spec["info"]["title"] == "Diaspora Bot API"
    assert {"/healthz", "/readyz", "/metrics"} <= set(spec["paths"])
    assert docs.status_code == 200


def test_app_builds_and_disposes_its_own_engine(tmp_path: Path) -> None:
    app = create_app(_settings(tmp_path))
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
    assert app.state.engine.pool.checkedout() == 0
    assert app.state.run_worker is True
