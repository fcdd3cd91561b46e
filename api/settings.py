"""Settings from the environment (pydantic-settings); the defaults serve the demo as is."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url


class SettingsError(Exception):
    """A setting is wrong; the message is one line meant for the operator."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str = "sqlite:///var/app.db"
    redis_url: str | None = None
    public_base_url: str = "http://127.0.0.1:8000"

    telegram_bot_token: str | None = None
    telegram_webhook_secret: str | None = None
    telegram_api_base_url: str = "https://api.telegram.org"
    telegram_mode: Literal["webhook", "polling"] = "webhook"

    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_whatsapp_from: str | None = None
    twilio_api_base_url: str = "https://api.twilio.com"
    # Content SIDs of approved WhatsApp templates, per language, for messages outside the
    # 24-hour window: "fr=HX...,en=HX...". French is the fallback.
    twilio_templates: str = ""

    # The simulator: on by default only for the local demo (see `_simulator_default`).
    simulator_enabled: bool | None = None
    # Honour the simulator's `now` (tests and demos only): otherwise the server's clock rules,
    # so that nobody can wait out a lookup lock or book in the past by moving the clock.
    simulator_clock: bool = False
    # Who reads /docs, /redoc and /openapi.json: public, staff or off (api.http.docs);
    # unset: public for the local demo, staff elsewhere.
    api_docs: Literal["public", "staff", "off"] | None = None
    # When set, /metrics wants `Authorization: Bearer <METRICS_TOKEN>` (Prometheus'
    # `authorization` setting); unset, keep /metrics off the public side of the proxy.
    metrics_token: str | None = None
    # Per client address, per process: simulator messages a minute and new simulator users
    # in ten minutes (0: no limit). Lifted under SIMULATOR_CLOCK, a test mode that trusts
    # the client with the clock itself.
    simulator_messages_per_minute: int = Field(default=120, ge=0)
    simulator_users_per_10_minutes: int = Field(default=20, ge=0)
    # Signs the staff console's session cookies. Set it in production (and the same on every
    # `serve` process); unset, each process makes its own and sessions end on restart.
    console_secret: str | None = None
    # Signs the proofs of appointment (the QR code of a confirmation, the URLs of its files:
    # api.domain.appointment_proof). Unset, derived from CONSOLE_SECRET; with neither, each
    # process draws its own and the QR codes already sent stop working at a restart. Set it
    # (the same on every process) in production, and never change it while appointments run.
    proof_secret: str | None = None

    # Provider rate limits, messages per second, per bot / per sender.
    telegram_rate_per_second: float = Field(default=30.0, gt=0)
    whatsapp_rate_per_second: float = Field(default=80.0, gt=0)

    # The worker's name in the outbox claims. Stable (one per worker, e.g. `worker-1`), a
    # restarted worker takes back at once what it held when it died; unset, each process
    # draws its own and a dead worker's claims wait for their lease to expire.
    worker_id: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    # How long a claim is held before another worker may take it back (its worker died).
    outbox_lease_seconds: float = Field(default=300.0, ge=5)
    # How many processes send (workers, and `serve` without --no-worker). While Redis does not
    # answer, each keeps to 1/WORKER_COUNT of each provider limit, so that together they stay
    # under it.
    worker_count: int = Field(default=1, ge=1)
    # `worker` only: serve Prometheus metrics on this port (0: off). `serve` has /metrics.
    metrics_port: int = Field(default=0, ge=0, le=65535)

    log_level: str = "INFO"
    # `text` (one readable line) or `json` (one JSON object per line, with a request id).
    log_format: Literal["text", "json"] = "text"
    # Personal data: conversation texts and inbound message records older than this are
    # deleted by the scheduler's `privacy.retention` job.
    retention_days: int = Field(default=90, ge=1)

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        try:
            url = make_url(value)
        except Exception as exc:  # sqlalchemy raises ArgumentError with a long text
            raise ValueError(f"cannot parse {value!r}") from exc
        if url.get_backend_name() not in {"sqlite", "postgresql"}:
            raise ValueError("use sqlite:///path or postgresql://user:pass@host:5432/db")
        return value

    @field_validator("public_base_url", "telegram_api_base_url", "twilio_api_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _simulator_default(self) -> Settings:
        if self.simulator_enabled is None:
            self.simulator_enabled = self.is_local_demo
        if self.api_docs is None:
            self.api_docs = "public" if self.is_local_demo else "staff"
        return self

    @property
    def is_local_demo(self) -> bool:
        """The local demo: an SQLite file under ./var/ served on a loopback address."""
        url = make_url(self.database_url)
        local_file = url.get_backend_name() == "sqlite" and (url.database or "").startswith(
            ("var/", "./var/")
        )
        host = urlsplit(self.public_base_url).hostname or ""
        return local_file and host in {"127.0.0.1", "localhost", "::1"}

    @property
    def sqlalchemy_url(self) -> URL:
        """The DATABASE_URL with the driver this app uses (psycopg 3 for PostgreSQL)."""
        url = make_url(self.database_url)
        if url.get_backend_name() == "postgresql":
            return url.set(drivername="postgresql+psycopg")
        return url.set(drivername="sqlite")

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.database_url).get_backend_name() == "sqlite"

    @property
    def whatsapp_templates(self) -> dict[str, str]:
        pairs = (item.split("=", 1) for item in self.twilio_templates.split(",") if "=" in item)
        return {lang.strip(): sid.strip() for lang, sid in pairs}

    @property
    def telegram_enabled(self) -> bool:
        return bool(self.telegram_bot_token)

    @property
    def whatsapp_enabled(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token)


def load_settings() -> Settings:
    """Read the environment; a bad value raises SettingsError with one readable line."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        raise SettingsError(f"invalid setting {name}: {first['msg']}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
