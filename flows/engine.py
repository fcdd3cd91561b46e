"""The conversation engine: one turn = (state, incoming message, now) → (new state, replies).

Pure: what the world holds comes through `ctx.world` (Protocols of flows.world), words through
the lexicons, wording through `ctx.texts` (used only to match what the citizen saw). The
engine handles what is the same at every step — first contact, expiry, `0`/menu, help,
STOP/START, a switch of language, voice prompts on or off, things it cannot read — and hands
the rest to the step.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from flows.lexicon import Lexicon, Lexicons
from flows.messages import Msg, Option, Reply, msg
from flows.state import Conversation, StoredOption
from flows.text import clean, expand, fold
from flows.understanding import (
    detect_language,
    is_one_of,
    match_option,
    named_language,
    number,
    politeness,
    understand,
)
from flows.world import World

LANGUAGES = ("fr", "mos", "dyu", "ff", "en")  # the language menu, in this order everywhere
IDLE_TIMEOUT = timedelta(minutes=30)
MAX_REDIRECTS = 8
# After this many answers in a row that the bot could not understand, it offers a person.
MISSES_BEFORE_OFFER = 3
# What the citizen last typed, kept in the state for an agent to see what they tried.
RECENT = 5
RECENT_TEXT = 80
# What a step says when it did not understand its answer: the engine then tries the message
# as a sentence at the main menu ("je veux suivre ma demande" in the middle of a booking).
CONFUSED = frozenset(
    {
        "common.not_understood",
        "booking.name.invalid",
        "status.reference.invalid",
        "status.birth_date.invalid",
    }
)
# What says that an answer was not understood (counted: MISSES_BEFORE_OFFER).
MISSED = CONFUSED | {"common.cannot_read", "common.cannot_read.text", "common.not_understood.text"}
UNREAD: dict[str, Msg] = {
    "common.cannot_read": msg("common.cannot_read"),
    "common.not_understood": msg("common.not_understood"),
}
# the same, at a step without choices: no number is asked for, the step's help follows
UNREAD_TEXT: dict[str, Msg] = {
    "common.cannot_read": msg("common.cannot_read.text"),
    "common.not_understood": msg("common.not_understood.text"),
}
GREETED: dict[str, Msg] = {
    "any": msg("common.greeted"),
    "morning": msg("common.greeted.morning"),
    "midday": msg("common.greeted.midday"),
    "evening": msg("common.greeted.evening"),
    "night": msg("common.greeted.night"),
}


class Kind(StrEnum):
    text = "text"
    voice = "voice"
    audio = "audio"
    photo = "photo"
    video = "video"
    document = "document"
    sticker = "sticker"
    location = "location"
    contact = "contact"
    other = "other"


VOICE_KINDS = frozenset({Kind.voice, Kind.audio})


@dataclass(frozen=True)
class Incoming:
    """A message in neutral form. Telegram buttons arrive as the choice's number in `text`."""

    text: str = ""
    kind: Kind = Kind.text
    media: str = ""  # the provider's reference to a photo, a voice note… (kept for an agent)


@dataclass(frozen=True)
class Who:
    """The sender, as the channel and the database know them."""

    citizen_id: int
    channel: str
    phone: str | None = None  # E.164
    phone_verified: bool = False
    country: str | None = None  # ISO 3166-1 alpha-2, from the phone number
    lang: str | None = None  # the citizen's preferred language, if known
    opted_out: bool = False
    # voice prompts with the bot's messages: None until the first voice note (which turns
    # them on), then the citizen's choice (the keyword, the language menu's last option)
    voice: bool | None = None


class Texts(Protocol):
    """Renders a message in a language (the catalogs); flows use it only to match labels."""

    def render(self, message: Msg, lang: str) -> str: ...


@dataclass(frozen=True)
class Context:
    now: datetime  # aware UTC
    who: Who
    lang: str
    world: World
    lexicons: Lexicons
    texts: Texts
    recent: tuple[tuple[str, str], ...] = ()  # what the citizen last typed (Conversation)

    @property
    def chain(self) -> tuple[Lexicon, ...]:
        return self.lexicons.chain(self.lang)

    @property
    def lexicon(self) -> Lexicon:
        return self.lexicons[self.lang]

    def label(self, message: Msg) -> str:
        return fold(self.texts.render(message, self.lang))


@dataclass(frozen=True)
class Answer:
    """What the citizen answered to the question of a step."""

    text: str  # as typed, cleaned of control characters
    folded: str  # folded, SMS spellings expanded
    number: int | None  # a number given, even out of range
    picked: str | None  # the value of the option chosen, by number or by words
    kind: Kind = Kind.text  # at a step that takes media (Flow.takes_media): what came
    media: str = ""


@dataclass(frozen=True)
class Ask:
    """A question: lines of text and numbered options."""

    lines: tuple[Msg, ...]
    options: tuple[Option, ...] = ()


@dataclass(frozen=True)
class Goto:
    flow: str
    step: str
    data: dict[str, Any] = field(default_factory=dict)
    say: tuple[Msg, ...] = ()
    lang: str | None = None  # switch the conversation to this language
    voice: bool | None = None  # switch the citizen's voice prompts on or off


@dataclass(frozen=True)
class Stay:
    """Ask the same step again, after `say`; `data` replaces the step's data when given."""

    say: tuple[Msg, ...] = ()
    data: dict[str, Any] | None = None
    lang: str | None = None
    voice: bool | None = None


@dataclass(frozen=True)
class Home:
    """Back to the main menu, after `say`."""

    say: tuple[Msg, ...] = ()
    lang: str | None = None
    voice: bool | None = None


Outcome = Goto | Stay | Home


class Flow(Protocol):
    """A flow. A flow may also declare `takes_media` (steps that get photos and voice notes
    as answers, `Answer.kind`) and `relays` (steps that get every message as it is: only
    `0`/menu and STOP/START keep their meaning there, and the step never expires) — the
    desk's conversation with an agent."""

    name: str

    def ask(self, step: str, ctx: Context, data: dict[str, Any]) -> Ask | Outcome: ...

    def answer(self, step: str, ctx: Context, data: dict[str, Any], answer: Answer) -> Outcome: ...

    def help(self, step: str) -> Msg: ...


@dataclass(frozen=True)
class Turn:
    state: Conversation
    replies: tuple[Reply, ...]
    voice: bool = False  # the replies go with their voice prompts (the citizen's preference)

    @property
    def lang(self) -> str:
        return self.state.lang or "fr"


def folded_message(text: str, ctx: Context) -> str:
    """A message as the steps compare it: folded, SMS spellings of the chain expanded."""
    return expand(fold(text), ctx.lexicons.shortcuts(ctx.lang))


def switch_voice(ctx: Context) -> Stay:
    """Voice prompts on when they are not, off when they are, said in a short line."""
    if ctx.who.voice is True:
        # i18n: voice notes switched off (keyword VOIX, or the language menu); how to undo
        return Stay(say=(msg("voice.off"),), voice=False)
    # i18n: voice notes switched on (keyword VOIX, or the language menu); how to stop them
    return Stay(say=(msg("voice.on"),), voice=True)


def first_sentence(menu: Flow, text: str, ctx: Context) -> Goto | None:
    """Where a sentence leads from the main menu when it asks for something, else None."""
    answer = Answer(text=text, folded=folded_message(text, ctx), number=None, picked=None)
    outcome = menu.answer("main", ctx, {}, answer)
    return outcome if isinstance(outcome, Goto) else None


class Engine:
    def __init__(self, flows: list[Flow]) -> None:
        self.flows = {flow.name: flow for flow in flows}
        missing = {"menu", "language"} - set(self.flows)
        if missing:
            raise ValueError(f"the engine needs the flows {sorted(missing)}")

    # -- a turn ------------------------------------------------------------------------------

    def turn(self, state: Conversation | None, incoming: Incoming, ctx: Context) -> Turn:
        if incoming.kind in VOICE_KINDS and ctx.who.voice is None:
            # the first voice note turns voice prompts on (never against the citizen's "off")
            ctx = self._with_voice(ctx, True)
        if state is None:
            return self._turn(state, incoming, ctx)
        done = self._turn(state, incoming, replace(ctx, recent=state.recent))
        return replace(done, state=replace(done.state, recent=self._recent(state, incoming)))

    def _recent(self, state: Conversation, incoming: Incoming) -> tuple[tuple[str, str], ...]:
        """The last messages typed to the bot (not those of a flow that relays them to a
        person: the desk keeps those itself)."""
        text = clean(incoming.text)[:RECENT_TEXT]
        relaying = bool(getattr(self.flows.get(state.flow), "relays", ()))
        if incoming.kind is not Kind.text or not text or relaying:
            return state.recent
        return (*state.recent, (f"{state.flow}.{state.step}", text))[-RECENT:]

    def _turn(self, state: Conversation | None, incoming: Incoming, ctx: Context) -> Turn:
        if state is None:
            return self._first_contact(incoming, ctx)
        ctx = replace(ctx, lang=state.lang or ctx.who.lang or "fr")
        flow = self.flows.get(state.flow)
        if flow is not None and state.step in getattr(flow, "relays", ()):
            return self._go(state, ctx, self._relay(flow, state, incoming, ctx))
        if self._expired(state, ctx.now):
            return self._go(state, ctx, Home(say=(msg("common.expired"),)))
        if incoming.kind is Kind.contact:
            return self._go(state, ctx, Stay(say=(msg("common.contact_linked"),)))
        if incoming.kind is not Kind.text:
            if flow is not None and state.step in getattr(flow, "takes_media", ()):
                media = self._media_answer(incoming)
                return self._go(state, ctx, flow.answer(state.step, ctx, dict(state.data), media))
            return self._missed(state, ctx, self._unread(state, "common.cannot_read"))
        text = clean(incoming.text)
        folded = folded_message(text, ctx)
        if not folded:
            return self._missed(state, ctx, self._unread(state, "common.not_understood"))
        if state.lang is None and state.flow == "language":
            detected = self._detect(text, ctx)
            if detected and detected != "fr":  # still choosing: a greeting in Mooré picks it
                return self._go(state, ctx, Home(say=(msg("common.welcome"),), lang=detected))
        global_outcome = self._global(folded, state, ctx)
        if global_outcome is not None:
            return self._go(state, ctx, global_outcome)
        answer = self._answer(text, folded, state, ctx)
        if flow is None:
            return self._go(state, ctx, Home())
        outcome = flow.answer(state.step, ctx, dict(state.data), answer)
        if (
            isinstance(outcome, Stay)
            and outcome.say
            and outcome.say[0].key in CONFUSED
            and state.flow != "menu"
        ):
            # not this step's answer: maybe a sentence that asks for something else, by an
            # intent or a reference ("je veux suivre ma demande", "RDV-ABC123"); a bare date
            # or city is not enough to leave the step
            said = understand(answer.text, folded, ctx.chain, ctx.now.date())
            if said.intent or said.request or said.booking:
                elsewhere = self.flows["menu"].answer("main", ctx, {}, answer)
                if not isinstance(elsewhere, Stay):
                    # a sentence typed at the language menu is in French: that is the choice
                    outcome = replace(elsewhere, lang=elsewhere.lang or state.lang or ctx.lang)
        return self._missed(state, ctx, outcome)

    def _missed(self, state: Conversation, ctx: Context, outcome: Outcome) -> Turn:
        """Count the answers in a row not understood at this step; at the third, offer a
        person (the desk: "agent", or 7 at the menu)."""
        missed = isinstance(outcome, Stay) and bool(outcome.say) and outcome.say[0].key in MISSED
        misses = state.misses + 1 if missed else 0
        if misses >= MISSES_BEFORE_OFFER:
            outcome, misses = replace(outcome, say=(*outcome.say, msg("desk.offer"))), 0
        return self._go(state, ctx, outcome, misses)

    @staticmethod
    def _media_answer(incoming: Incoming) -> Answer:
        caption = clean(incoming.text)  # a photo's caption, if any
        return Answer(
            text=caption,
            folded="",
            number=None,
            picked=None,
            kind=incoming.kind,
            media=incoming.media,
        )

    def _relay(self, flow: Flow, state: Conversation, incoming: Incoming, ctx: Context) -> Outcome:
        """A step that relays (a conversation with an agent): everything goes to the step,
        except `0`/menu (back to the bot) and STOP/START."""
        if incoming.kind is not Kind.text:
            return flow.answer(state.step, ctx, dict(state.data), self._media_answer(incoming))
        text = clean(incoming.text)
        folded = folded_message(text, ctx)
        chain = ctx.chain
        if folded == "0" or is_one_of(folded, chain, "menu"):
            return Home(say=(msg("desk.left"),))
        if any(is_one_of(folded, chain, word) for word in ("stop", "start", "voice")):
            global_outcome = self._global(folded, state, ctx)
            if global_outcome is not None:
                return global_outcome
        answer = Answer(text=text, folded=folded, number=None, picked=None)
        return flow.answer(state.step, ctx, dict(state.data), answer)

    def _unread(self, state: Conversation, key: str) -> Stay:
        """Not understood, or not text: with choices on screen, the number works; without,
        the step's help says what it expects (a name, a reference, a date of birth)."""
        if state.options:
            return Stay(say=(UNREAD[key],))
        flow = self.flows.get(state.flow)
        hint = flow.help(state.step) if flow else msg("menu.main.help")
        return Stay(say=(UNREAD_TEXT[key], hint))

    def _first_contact(self, incoming: Incoming, ctx: Context) -> Turn:
        if ctx.who.lang:  # known from another channel, or the state was lost
            ctx = replace(ctx, lang=ctx.who.lang)
            return self._go(
                Conversation(lang=ctx.lang), ctx, Home(say=(msg("common.welcome_back"),))
            )
        text = clean(incoming.text) if incoming.kind is Kind.text else ""
        lexicons = [ctx.lexicons.by_lang[code] for code in ctx.lexicons.languages]
        named = named_language(folded_message(text, ctx), lexicons)  # "dioula", "english"
        if named:
            return self._go(Conversation(), ctx, Home(say=(msg("common.welcome"),), lang=named))
        detected = self._detect(text, ctx) if text else None
        if detected and detected != "fr":
            welcome = (msg("common.welcome"),)
            routed = self._first_sentence(text, replace(ctx, lang=detected))
            if routed is not None:  # "I want to book a passport appointment in New York"
                routed = replace(routed, say=welcome + routed.say, lang=detected)
                return self._go(Conversation(), ctx, routed)
            return self._go(Conversation(), ctx, Home(say=welcome, lang=detected))
        ctx = replace(ctx, lang="fr")
        data: dict[str, Any] = {"first": True}
        if text and self._first_sentence(text, ctx) is not None:
            data["pending"] = text  # "je veux un passeport à Abidjan": done once French is chosen
        start = Goto("language", "choose", data, say=(msg("common.welcome"),))
        return self._go(Conversation(lang=None), ctx, start)

    def _first_sentence(self, text: str, ctx: Context) -> Goto | None:
        return first_sentence(self.flows["menu"], text, ctx)

    @staticmethod
    def _detect(text: str, ctx: Context) -> str | None:
        lexicons = [ctx.lexicons.by_lang[code] for code in ctx.lexicons.languages]
        return detect_language(fold(clean(text)), lexicons)

    @staticmethod
    def _expired(state: Conversation, now: datetime) -> bool:
        if state.updated_at is None or (state.flow, state.step) == ("menu", "main"):
            return False
        until = state.data.get("until")  # a question that holds longer (a waitlist offer)
        if isinstance(until, str) and now < datetime.fromisoformat(until):
            return False
        return now - state.updated_at > IDLE_TIMEOUT

    def _global(self, folded: str, state: Conversation, ctx: Context) -> Outcome | None:
        """What means the same at every step: menu, help, STOP/START, a language's name."""
        chain = ctx.chain
        if folded == "0" or is_one_of(folded, chain, "menu"):
            return Home()
        if is_one_of(folded, chain, "help"):
            flow = self.flows.get(state.flow)
            help_msg = flow.help(state.step) if flow else msg("menu.main.help")
            return Stay(say=(help_msg,))
        if is_one_of(folded, chain, "stop"):
            ctx.world.set_opted_out(ctx.who.citizen_id, True)
            return Stay(say=(msg("common.stopped"),))
        if is_one_of(folded, chain, "start"):
            ctx.world.set_opted_out(ctx.who.citizen_id, False)
            return Stay(say=(msg("common.resumed"),))
        if is_one_of(folded, chain, "voice"):
            return switch_voice(ctx)
        if state.flow != "language":
            lexicons = [ctx.lexicons.by_lang[code] for code in ctx.lexicons.languages]
            code = named_language(folded, lexicons)
            if code is not None and code != ctx.lang:
                return Stay(say=(msg("language.set"),), lang=code)
        greeting, _thanks, only_polite = politeness(folded, chain)
        if only_polite:  # "bonjour", "merci beaucoup": answered, and the step again
            if greeting is not None:
                return Stay(say=(GREETED.get(greeting, GREETED["any"]),))
            return Stay(say=(msg("common.thanked"),))
        return None

    @staticmethod
    def _answer(text: str, folded: str, state: Conversation, ctx: Context) -> Answer:
        given = number(folded, ctx.chain)
        picked: str | None = None
        if state.options:
            if given is not None:
                if 1 <= given <= len(state.options):
                    picked = state.options[given - 1].value
            else:
                words = [o.words + Engine._lexicon_words(ctx, o.lexicon) for o in state.options]
                index = match_option(folded, [o.label for o in state.options], words)
                if index is not None:
                    picked = state.options[index].value
        return Answer(text=text, folded=folded, number=given, picked=picked)

    @staticmethod
    def _lexicon_words(ctx: Context, key: str) -> tuple[str, ...]:
        if not key:
            return ()
        category, _, name = key.partition(":")
        found: set[str] = set()
        for lex in ctx.chain:
            found |= lex.words(category, name)
        return tuple(found)

    # -- from an outcome to the next question ------------------------------------------------

    def _go(self, state: Conversation, ctx: Context, outcome: Outcome, misses: int = 0) -> Turn:
        said: list[Msg] = []
        lang = state.lang
        flow_name, step, data = state.flow, state.step, dict(state.data)
        for _ in range(MAX_REDIRECTS):
            if outcome.lang and outcome.lang != lang:
                lang = outcome.lang
                ctx = replace(ctx, lang=lang)
                ctx.world.set_language(ctx.who.citizen_id, lang)
            if outcome.voice is not None and outcome.voice != ctx.who.voice:
                ctx = self._with_voice(ctx, outcome.voice)
            said.extend(outcome.say)
            if isinstance(outcome, Goto):
                flow_name, step, data = outcome.flow, outcome.step, dict(outcome.data)
            elif isinstance(outcome, Home):
                flow_name, step, data = "menu", "main", {}
            elif outcome.data is not None:
                data = dict(outcome.data)
            flow = self.flows.get(flow_name)
            if flow is None:
                flow_name, step, data = "menu", "main", {}
                flow = self.flows["menu"]
            asked = flow.ask(step, ctx, data)
            if isinstance(asked, Ask):
                return self._reply(lang, ctx, flow_name, step, data, said, asked, misses)
            outcome = asked
        raise RuntimeError(f"flows redirect in a loop at {flow_name}.{step}")

    @staticmethod
    def _with_voice(ctx: Context, on: bool) -> Context:
        """The citizen's voice prompts switched on or off, in the world and for this turn."""
        ctx.world.set_voice(ctx.who.citizen_id, on)
        return replace(ctx, who=replace(ctx.who, voice=on))

    @staticmethod
    def _reply(
        lang: str | None,
        ctx: Context,
        flow: str,
        step: str,
        data: dict[str, Any],
        said: list[Msg],
        asked: Ask,
        misses: int = 0,
    ) -> Turn:
        stored = tuple(
            StoredOption(
                option.value,
                ctx.label(option.label),
                option.synonyms,
                ":".join(option.lexicon) if option.lexicon else "",
            )
            for option in asked.options
        )
        new_state = Conversation(
            lang=lang,
            flow=flow,
            step=step,
            data=data,
            options=stored,
            updated_at=ctx.now,
            misses=misses,
        )
        reply = Reply(
            lines=tuple(said) + asked.lines,
            choices=tuple(option.label for option in asked.options),
        )
        return Turn(state=new_state, replies=(reply,), voice=ctx.who.voice is True)
