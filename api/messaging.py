"""Wiring the messaging runtime (bot/) with the stores of api/: built once per process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from api.conversations import Enqueue, SqlConversationStore
from api.domain import outbox
from api.domain.translations import SqlOverlay
from bot.i18n import POLL_SECONDS, Renderer
from bot.locales import load_lexicons
from bot.runtime import Runtime
from flows.catalog import build_engine


@dataclass(frozen=True)
class Messaging:
    runtime: Runtime
    renderer: Renderer
    inline: bool  # run turns on the event loop (SQLite: sub-millisecond) or in the threadpool


def build_messaging(
    engine: Engine,
    enqueue: Enqueue | None = None,
    locales: Path | None = None,
    poll_seconds: float = POLL_SECONDS,
    public_base_url: str = "",
) -> Messaging:
    """The runtime, its renderer overlaid with the texts translators reviewed in the console
    (read from the database, reloaded within `poll_seconds` of a change anywhere). The same
    renderer writes the notices of this process (`api.domain.outbox.notify`)."""
    renderer = Renderer(
        locales,
        overlay=SqlOverlay(engine),
        poll_seconds=poll_seconds,
        voice_base_url=public_base_url,
    )
    outbox.use_renderer(engine, renderer)  # notices written in this process, too
    runtime = Runtime(
        SqlConversationStore(engine, enqueue),
        build_engine(),
        load_lexicons(locales),
        renderer,
    )
    return Messaging(runtime=runtime, renderer=renderer, inline=engine.dialect.name == "sqlite")
