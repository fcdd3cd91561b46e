"""The conversation runtime: dedupe → load state → run the flow → save → reply.

One turn is one transaction of the store: the dedupe record, the state, the effects of the
flow (a booking…) and, for channels that send after answering, the replies in the outbox,
are written together or not at all. The store serialises turns of one sender (a row lock
on PostgreSQL, the write lock on SQLite), so two messages of one citizen never interleave.

Floods. The store counts each sender's messages in a window of `FLOOD_WINDOW` (on the
sender's row, in the turn's own write). Beyond `FLOOD_LIMIT` — more than a person types —
the first extra message gets one kind "slow down" in the citizen's language, and the rest are
acknowledged to the provider and dropped without a turn: no flow runs, nothing is queued, so
a burst from one number costs the others next to nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from bot.i18n import RenderedReply, Renderer
from flows.engine import Context, Engine, Incoming, Who
from flows.lexicon import Lexicons
from flows.messages import Reply, msg
from flows.state import Conversation
from flows.world import World

log = logging.getLogger(__name__)

FLOOD_WINDOW = timedelta(minutes=1)
FLOOD_LIMIT = 20  # messages per sender and window


@dataclass(frozen=True)
class Inbound:
    """A message from a channel, in neutral form."""

    channel: str  # whatsapp | telegram | simulator
    address: str  # where to answer: a phone, a chat id, a simulator user id
    incoming: Incoming
    now: datetime
    provider_id: str | None = None  # the provider's message id: the only dedupe key
    phone: str | None = None  # E.164, when the channel knows it
    phone_verified: bool = False  # the provider vouches for the number
    lang: str | None = None  # a language known beforehand (a terminal's --lang), for new citizens


@dataclass(frozen=True)
class Outbound:
    """Replies to send later through the outbox (channels that cannot answer inline)."""

    channel: str
    address: str
    lang: str
    replies: tuple[RenderedReply, ...]


class TurnSession(Protocol):
    """One turn's view of the store, inside its transaction."""

    @property
    def who(self) -> Who: ...

    @property
    def state(self) -> Conversation | None: ...

    @property
    def world(self) -> World: ...

    @property
    def burst(self) -> int:
        """This sender's messages in the current `FLOOD_WINDOW`, this one included."""
        ...

    def save(self, state: Conversation) -> None:
        """Write the conversation (and the sender's count)."""
        ...

    def skip(self) -> None:
        """No turn: write the sender's count alone."""
        ...

    def enqueue(self, outbound: Outbound) -> None: ...


class ConversationStore(Protocol):
    def open_turn(self, inbound: Inbound) -> AbstractContextManager[TurnSession | None]:
        """The turn's transaction; None inside when the provider id was seen already."""
        ...


@dataclass(frozen=True)
class TurnOutput:
    duplicate: bool
    lang: str = "fr"
    replies: tuple[RenderedReply, ...] = field(default_factory=tuple)
    failed: bool = False  # the turn was rolled back; the replies are an apology
    throttled: bool = False  # a flood: no turn ran (the replies, if any, say "slow down")

    def __iter__(self) -> Iterator[RenderedReply]:
        return iter(self.replies)


class StoreUnavailable(Exception):
    """The store cannot be reached (its database restarts): nothing of the turn was written.
    Not the citizen's problem to hear about: the channel asks the provider to deliver the
    message again later (HTTP 503), and the retry is processed afresh."""


class _TurnFailed(Exception):
    """A flow failed; carries the language to apologise in."""

    def __init__(self, lang: str) -> None:
        super().__init__(lang)
        self.lang = lang


class Runtime:
    def __init__(
        self, store: ConversationStore, engine: Engine, lexicons: Lexicons, renderer: Renderer
    ) -> None:
        self.store = store
        self.engine = engine
        self.lexicons = lexicons
        self.renderer = renderer

    def handle(self, inbound: Inbound, *, via_outbox: bool = False) -> TurnOutput:
        """Run one turn. With `via_outbox`, the replies are also queued in the same transaction
        for the outbox sender (Telegram: sent after the webhook has answered).

        If anything fails, the transaction is rolled back — no state, effect or dedupe record
        is half-written, so the provider's retry is processed afresh — and the citizen gets a
        short apology instead of silence; the log gets the error, never the message. When the
        store itself is away (`StoreUnavailable`), there is nobody to apologise for: it is
        raised, and the channel has the provider try again.
        """
        try:
            return self._turn(inbound, via_outbox)
        except StoreUnavailable:
            raise
        except Exception as exc:
            log.exception("turn failed on channel %s", inbound.channel)
            lang = exc.lang if isinstance(exc, _TurnFailed) else "fr"
            apology = self.renderer.render_reply(Reply((msg("common.error"),)), lang)
            return TurnOutput(duplicate=False, lang=lang, replies=(apology,), failed=True)

    def _turn(self, inbound: Inbound, via_outbox: bool) -> TurnOutput:
        with self.store.open_turn(inbound) as session:
            if session is None:
                return TurnOutput(duplicate=True)
            if session.burst > FLOOD_LIMIT:
                return self._throttled(inbound, session, via_outbox)
            ctx = Context(
                now=inbound.now,
                who=session.who,
                lang=session.who.lang or "fr",
                world=session.world,
                lexicons=self.lexicons,
                texts=self.renderer,
            )
            try:
                turn = self.engine.turn(session.state, inbound.incoming, ctx)
            except Exception as exc:
                state_lang = session.state.lang if session.state else None
                raise _TurnFailed(state_lang or ctx.lang) from exc
            session.save(turn.state)
            # Voice prompts go with the text when the citizen has them on (a first voice note
            # turns them on: flows.engine); the text always goes.
            replies = tuple(
                self.renderer.render_reply(r, turn.lang, voice=turn.voice) for r in turn.replies
            )
            if via_outbox:
                session.enqueue(Outbound(inbound.channel, inbound.address, turn.lang, replies))
        return TurnOutput(duplicate=False, lang=turn.lang, replies=replies)

    def _throttled(self, inbound: Inbound, session: TurnSession, via_outbox: bool) -> TurnOutput:
        """Beyond the flood limit: one "slow down" for the first extra message, then silence."""
        session.skip()
        lang = (session.state.lang if session.state else None) or session.who.lang or "fr"
        if session.burst != FLOOD_LIMIT + 1:
            return TurnOutput(duplicate=False, lang=lang, throttled=True)
        # i18n: sent once when one sender writes more than 20 messages in a minute
        slow_down = msg("common.slow_down")
        replies = (self.renderer.render_reply(Reply((slow_down,)), lang),)
        if via_outbox:
            session.enqueue(Outbound(inbound.channel, inbound.address, lang, replies))
        return TurnOutput(duplicate=False, lang=lang, replies=replies, throttled=True)
