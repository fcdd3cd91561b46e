"""compose.yaml, read without a container engine (this machine has none): the topology it
declares is the one tests/test_topology.py starts as processes, and what it runs exists.

- PostgreSQL, Redis, a one-shot migration job, two `serve --no-worker` behind Caddy, two
  workers with distinct WORKER_IDs;
- every long-running service has a health check and a restart policy; the application's
  services start after the migration succeeded, take their secrets from the env file, and
  every secret the env file's example names is used;
- every command is a command of this CLI, every setting one the application knows, and
  Caddy proxies to exactly the web services.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from api.cli import app
from api.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
APP_SERVICES = {name: s for name, s in SERVICES.items() if s.get("image") == "diaspora-bot:latest"}
WEBS = sorted(n for n, s in APP_SERVICES.items() if "serve" in s["command"])
WORKERS = sorted(n for n, s in APP_SERVICES.items() if s["command"][1:] == ["worker"])


def test_the_services_of_the_topology() -> None:
    assert {"postgres", "redis", "migrate", "proxy"} <= set(SERVICES)
    assert SERVICES["postgres"]["image"].startswith("postgres:")
    assert SERVICES["redis"]["image"].startswith("redis:")
    assert SERVICES["proxy"]["image"].startswith("caddy:")
    assert WEBS == ["web-1", "web-2"]
    assert WORKERS == ["worker-1", "worker-2"]
    for name in WEBS:
        assert SERVICES[name]["command"][1:2] == ["serve"]
        assert "--no-worker" in SERVICES[name]["command"]
    assert SERVICES["migrate"]["command"] == ["diaspora-bot", "db", "upgrade"]
    assert SERVICES["migrate"]["restart"] == "no"


def test_health_checks_restarts_and_order() -> None:
    for name, service in SERVICES.items():
        if name == "migrate":
            continue
        assert service.get("restart") == "unless-stopped", name
        if name != "proxy":
            assert "test" in service["healthcheck"], name
    for name in [*WEBS, *WORKERS]:
        after = SERVICES[name]["depends_on"]
        assert after["migrate"]["condition"] == "service_completed_successfully", name
        assert after["redis"]["condition"] == "service_healthy", name
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert all(SERVICES["proxy"]["depends_on"][w]["condition"] == "service_healthy" for w in WEBS)
    assert "pgdata" in COMPOSE["volumes"]
    assert any(v.startswith("pgdata:") for v in SERVICES["postgres"]["volumes"])


def test_workers_have_their_own_ids_and_a_metrics_port_for_their_health_check() -> None:
    ids = [SERVICES[w]["environment"]["WORKER_ID"] for w in WORKERS]
    assert sorted(ids) == WORKERS  # one id per worker, stable across restarts
    for name in WORKERS:
        env = SERVICES[name]["environment"]
        port = env["METRICS_PORT"]
        assert port in " ".join(SERVICES[name]["healthcheck"]["test"])
        assert int(env["WORKER_COUNT"]) == len(WORKERS)


def test_secrets_come_from_the_env_file_and_settings_are_known() -> None:
    example = (ROOT / "deploy" / "production.env.example").read_text()
    names = set(re.findall(r"^([A-Z_]+)=", example, re.M))
    known = {f.upper() for f in Settings.model_fields}
    outside = {"POSTGRES_PASSWORD", "SITE_ADDRESS"}  # PostgreSQL's and Caddy's own
    assert names - outside <= known
    assert {"DATABASE_URL", "CONSOLE_SECRET", "TWILIO_AUTH_TOKEN", "TELEGRAM_BOT_TOKEN"} <= names
    uvicorn = {"FORWARDED_ALLOW_IPS"}  # read by uvicorn itself
    for name, service in APP_SERVICES.items():
        assert service["env_file"] == ["deploy/production.env"], name
        assert set(service.get("environment", {})) <= known | uvicorn, name
    assert "deploy/production.env" in (ROOT / ".gitignore").read_text()


def test_every_command_is_one_of_the_cli() -> None:
    runner = CliRunner()
    for name, service in APP_SERVICES.items():
        args = [a for a in service["command"][1:] if not a.startswith("--") and not a.isdigit()]
        args = [a for a in args if a != "0.0.0.0"]
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0, (name, result.output)


def test_caddy_proxies_to_the_web_services_and_checks_their_readiness() -> None:
    caddyfile = (ROOT / "deploy" / "Caddyfile").read_text()
    upstreams = re.search(r"reverse_proxy ([^{]+)\{", caddyfile)
    assert upstreams is not None
    assert sorted(u.split(":")[0] for u in upstreams.group(1).split()) == WEBS
    assert "health_uri /readyz" in caddyfile
    assert "lb_policy round_robin" in caddyfile
