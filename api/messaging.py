"""Wiring the messaging runtime (bot/) with the stores of api/: built once per process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy.engine import Engine

from api.conversations import Enqueue, SqlConversationStore
from api.domain import outbox
from api.domain.appointment_proof import ProofLinks
from api.domain.translations import SqlOverlay
from api.group_commit import GroupCommit
from api.turn_batches import TurnBatches
from bot.i18n import POLL_SECONDS, Renderer
from bot.locales import load_lexicons
from bot.runtime import Runtime
from flows.catalog import build_engine

T = TypeVar("T")


class Runner(Protocol):
    async def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...


@dataclass(frozen=True)
class Messaging:
    runtime: Runtime
    renderer: Renderer
    # Where the turns' database work runs — the one decision, by store. SQLite: on the event
    # loop (sub-millisecond), the turns of one pass of the loop sharing one commit
    # (api.group_commit). PostgreSQL: the turns that arrive while earlier ones run, as one
    # batch on a thread, in one transaction (api.turn_batches).
    runner: Runner

    async def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Blocking database work from the event loop — a turn, or any other write the webhooks
        make — where this store wants it run."""
        return await self.runner.run(function, *args, **kwargs)


def build_messaging(
    engine: Engine,
    enqueue: Enqueue | None = None,
    locales: Path | None = None,
    poll_seconds: float = POLL_SECONDS,
    public_base_url: str = "",
    proof_key: bytes | None = None,
) -> Messaging:
    """The runtime, its renderer overlaid with the texts translators reviewed in the console
    (read from the database, reloaded within `poll_seconds` of a change anywhere), and, with
    a `proof_key`, sending the proofs of appointment (QR code, calendar file) it names. The
    same renderer writes the notices of this process (`api.domain.outbox.notify`)."""
    renderer = Renderer(
        locales,
        overlay=SqlOverlay(engine),
        poll_seconds=poll_seconds,
        voice_base_url=public_base_url,
        attachments=ProofLinks(proof_key, public_base_url) if proof_key else None,
    )
    outbox.use_renderer(engine, renderer)  # notices written in this process, too
    runtime = Runtime(
        SqlConversationStore(engine, enqueue),
        build_engine(),
        load_lexicons(locales),
        renderer,
    )
    if engine.dialect.name == "sqlite":
        return Messaging(runtime, renderer, GroupCommit.for_engine(engine))
    return Messaging(runtime, renderer, TurnBatches(engine))
