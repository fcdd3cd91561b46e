"""Wiring the messaging runtime (bot/) with the stores of api/: built once per process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from api.conversations import Enqueue, SqlConversationStore
from api.domain import outbox
from api.domain.appointment_proof import ProofLinks
from api.domain.translations import SqlOverlay
from api.group_commit import GroupCommit
from bot.i18n import POLL_SECONDS, Renderer
from bot.locales import load_lexicons
from bot.runtime import Runtime
from flows.catalog import build_engine

T = TypeVar("T")


@dataclass(frozen=True)
class Messaging:
    runtime: Runtime
    renderer: Renderer
    # SQLite: turns run on the event loop (sub-millisecond), those of one pass of the loop
    # sharing one commit (api.group_commit); PostgreSQL: in the threadpool, one transaction each
    group: GroupCommit | None

    @property
    def inline(self) -> bool:
        return self.group is not None

    async def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Blocking database work from the event loop — a turn, or any other write the webhooks
        make — where this store wants it run (the one decision: see `group`)."""
        if self.group is not None:
            return await self.group.run(function, *args, **kwargs)
        return await run_in_threadpool(function, *args, **kwargs)


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
    group = GroupCommit.for_engine(engine) if engine.dialect.name == "sqlite" else None
    return Messaging(runtime=runtime, renderer=renderer, group=group)
