"""Conversations with the pure flows, in the style of zulip's `verify_dialog`.

    dialog = Dialog(MemoryWorld(), phone="+2250701000001")
    dialog.say("Hello")
    assert dialog.keys == ["common.welcome", "menu.main.question"]
    assert dialog.step == "menu.main"
    dialog.pick("book")                 # sends the number of the option whose value is "book"

Each turn runs `flows.catalog.build_engine().turn(...)` with the real lexicons and renderer,
and the state goes through JSON between turns, as the runtime stores it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any, NamedTuple

import phonenumbers

from bot.i18n import Renderer
from bot.locales import load_lexicons
from flows.catalog import build_engine
from flows.engine import Context, Engine, Incoming, Kind, Turn, Who
from flows.messages import Msg
from flows.state import Conversation
from tests.support.memory_world import MemoryWorld

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)  # a Tuesday


@cache
def engine() -> Engine:
    return build_engine()


@cache
def renderer() -> Renderer:
    return Renderer()


def country_of(phone: str | None) -> str | None:
    if not phone:
        return None
    code = phonenumbers.parse(phone, None).country_code or 0
    region = phonenumbers.region_code_for_country_code(code)
    return None if region == "ZZ" else region


class Where(NamedTuple):
    flow: str
    step: str
    data: dict[str, Any]


class Dialog:
    """One citizen talking to the engine; the world remembers their language, opt-out and
    voice prompts."""

    def __init__(
        self,
        world: MemoryWorld,
        phone: str | None = "+2250701000001",
        now: datetime = NOW,
        *,
        citizen_id: int = 1,
        channel: str = "whatsapp",
        phone_verified: bool = False,
        lang: str | None = None,
    ) -> None:
        self.world = world
        self.phone = phone
        self.now = now
        self.citizen_id = citizen_id
        self.channel = channel
        self.phone_verified = phone_verified
        self.lang = lang  # the citizen's preferred language before the first turn
        self.stored: dict[str, Any] | None = None  # the state as the runtime stores it
        self.turns: list[Turn] = []

    # -- talking -----------------------------------------------------------------------------

    def say(self, text: str = "", kind: Kind = Kind.text) -> Turn:
        turn = engine().turn(self.conversation, Incoming(text, kind), self.context())
        self.stored = json.loads(json.dumps(turn.state.to_json()))
        self.turns.append(turn)
        return turn

    def send(self, kind: Kind) -> Turn:
        return self.say("", kind)

    def pick(self, value: str) -> Turn:
        """Send the number of the option (of the question last asked) whose value is `value`."""
        values = [option.value for option in self.conversation_options]
        if value not in values:
            raise AssertionError(f"no option {value!r} in {values!r} at {self.step}")
        return self.say(str(values.index(value) + 1))

    def wait(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def context(self) -> Context:
        lang = self.world.languages.get(self.citizen_id, self.lang)
        who = Who(
            citizen_id=self.citizen_id,
            channel=self.channel,
            phone=self.phone,
            phone_verified=self.phone_verified,
            country=country_of(self.phone),
            lang=lang,
            opted_out=self.world.opted_out.get(self.citizen_id, False),
            voice=self.world.voices.get(self.citizen_id),
        )
        return Context(
            now=self.now,
            who=who,
            lang=lang or "fr",
            world=self.world,
            lexicons=load_lexicons(),
            texts=renderer(),
        )

    # -- what came back ----------------------------------------------------------------------

    @property
    def last(self) -> Turn:
        return self.turns[-1]

    @property
    def conversation(self) -> Conversation | None:
        return Conversation.from_json(self.stored)

    @property
    def conversation_options(self) -> tuple[Any, ...]:
        conversation = self.conversation
        return conversation.options if conversation else ()

    @property
    def lines(self) -> list[Msg]:
        return [line for reply in self.last.replies for line in reply.lines]

    @property
    def keys(self) -> list[str]:
        """The message keys of the last turn's lines, in order."""
        return [line.key for line in self.lines]

    @property
    def choice_keys(self) -> list[str]:
        return [choice.key for reply in self.last.replies for choice in reply.choices]

    @property
    def values(self) -> list[str]:
        """The values of the options now on screen, in their numbered order."""
        return [option.value for option in self.conversation_options]

    @property
    def state(self) -> Where:
        conversation = self.conversation
        assert conversation is not None, "no turn yet"
        return Where(conversation.flow, conversation.step, conversation.data)

    @property
    def step(self) -> str:
        """'flow.step', e.g. 'booking.day'."""
        return f"{self.state.flow}.{self.state.step}"

    @property
    def data(self) -> dict[str, Any]:
        return self.state.data

    def line(self, key: str) -> Msg:
        """The last turn's line with that key."""
        found = [line for line in self.lines if line.key == key]
        if not found:
            raise AssertionError(f"no line {key!r} in {self.keys!r}")
        return found[0]

    def rendered(self, lang: str | None = None) -> list[str]:
        """The last turn's replies as the citizen reads them (choices numbered)."""
        return [
            renderer().render_reply(reply, lang or self.last.lang).with_numbers()
            for reply in self.last.replies
        ]


# -- every step of every flow, and how to get there ---------------------------------------------

REQUEST = "ABJ-2026-000123"
BIRTH_DATE = date(1990, 3, 12)
NAME = "Awa Ouédraogo"


@dataclass(frozen=True)
class Step:
    """A step of a flow: the numbers that lead there from the main menu, and its keys."""

    at: str  # "flow.step"
    script: tuple[str, ...]  # sent at the main menu to get there
    question: str  # the key of the step's question (the last line it shows)
    help: str  # the key of the step's help
    with_appointment: bool = False  # the citizen holds an appointment (to list it)
    first_contact: bool = False  # the language menu of a first contact, not from the menu
    lines: tuple[str, ...] = ()  # all the lines of the question, when there are several

    @property
    def asks(self) -> list[str]:
        """The keys of the lines that the step shows each time it is asked."""
        return list(self.lines or (self.question,))

    @property
    def id(self) -> str:
        return f"{self.at} (first contact)" if self.first_contact else self.at


STEPS = (
    Step("language.choose", (), "language.choose.question", "language.choose.help", False, True),
    Step("language.choose", ("6",), "language.choose.question", "language.choose.help"),
    Step("menu.main", (), "menu.main.question", "menu.main.help"),
    Step("booking.post", ("1",), "booking.post.question", "booking.post.help"),
    Step("booking.service", ("1", "1"), "booking.service.question", "booking.service.help"),
    Step("booking.day", ("1", "1", "1"), "booking.day.question", "booking.day.help"),
    Step("booking.time", ("1", "1", "1", "2"), "booking.time.question", "booking.time.help"),
    Step("booking.name", ("1", "1", "1", "2", "1"), "booking.name.question", "booking.name.help"),
    Step(
        "booking.confirm",
        ("1", "1", "1", "2", "1", NAME),
        "booking.confirm.question",
        "booking.confirm.help",
    ),
    Step("status.reference", ("2",), "status.reference.question", "status.reference.help"),
    Step(
        "status.birth_date", ("2", REQUEST), "status.birth_date.question", "status.birth_date.help"
    ),
    Step(
        "appointments.list",
        ("3",),
        "appointments.list.question",
        "appointments.list.help",
        with_appointment=True,
    ),
    Step(
        "appointments.actions",
        ("3", "1"),
        "appointments.actions.question",
        "appointments.actions.help",
        with_appointment=True,
    ),
    Step(
        "appointments.cancel",
        ("3", "1", "2"),
        "appointments.cancel.question",
        "appointments.cancel.help",
        with_appointment=True,
    ),
    Step("info.service", ("4",), "info.service.question", "info.help"),
    Step(
        "info.details",
        ("4", "1"),
        "info.next.question",
        "info.help",
        lines=(
            "info.details",
            "service.passport.documents",
            "info.in_person",
            "info.next.question",
        ),
    ),
    Step("contacts.post", ("5",), "contacts.post.question", "contacts.post.help"),
    Step("desk.start", ("7",), "desk.post.question", "desk.post.help"),
)


def book_for(
    world: MemoryWorld,
    citizen_id: int = 1,
    day: date = date(2026, 12, 2),
    *,
    service: str = "passport",
    name: str = NAME,
) -> str:
    """An appointment of the citizen at Abidjan, passport, 09:00 that day; its reference."""
    starts_at = world.slot("ABJ", day, time(9))
    result = world.book(citizen_id, "ABJ", service, starts_at, name, NOW)
    assert result.appointment is not None, result
    return result.appointment.reference


def at_menu(world: MemoryWorld, lang: str | None = None, **options: Any) -> Dialog:
    """A citizen at the main menu: French chosen on the language menu, or `lang` known."""
    dialog = Dialog(world, lang=lang, **options)
    if lang is None:
        dialog.say("Bonjour")
        dialog.say("1")
    else:
        dialog.say("0")  # known already: welcomed back with the main menu
    assert dialog.step == "menu.main", dialog.keys
    return dialog


def reach(step: Step, world: MemoryWorld, lang: str | None = None, **options: Any) -> Dialog:
    world.add_request(REQUEST, birth_date=BIRTH_DATE)
    if step.with_appointment:
        book_for(world)
    if step.first_contact:
        dialog = Dialog(world, **options)
        dialog.say("Bonjour")
    else:
        dialog = at_menu(world, lang, **options)
        for text in step.script:
            dialog.say(text)
    assert dialog.step == step.at, (step.id, dialog.keys)
    assert dialog.keys[-1] == step.question, (step.id, dialog.keys)
    return dialog
