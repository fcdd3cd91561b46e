"""Properties of the whole engine: any input at any step, and every reply in every language.

1. Hypothesis sends any Unicode text (control characters, emoji, 5,000 characters…), or a
   voice note, a photo…, at every step of every flow: the engine never raises, always answers,
   and its state stays JSON that reads back the same.
2. A static walk, like goflow's flow validation: every step of every flow is asked in every
   language, with every answer that leads somewhere else (help, errors, races, lockouts…);
   every reply is rendered with the catalogs and must fit WhatsApp (1,600 characters) and
   Telegram (4,096), with no key left raw and no {placeholder} left unfilled.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flows
from flows.engine import LANGUAGES, Kind
from flows.messages import Msg, Reply, msg
from flows.state import Conversation
from flows.world import LimitInfo, LimitKind
from tests.support.dialog import (
    NAME,
    NOW,
    REQUEST,
    STEPS,
    Dialog,
    Step,
    at_menu,
    book_for,
    reach,
    renderer,
)
from tests.support.memory_world import MemoryWorld

WHATSAPP_LIMIT = 1600
TELEGRAM_LIMIT = 4096
STEP_IDS = [step.id for step in STEPS]

# -- 1. any input at any step -----------------------------------------------------------------

# What people (and their phones) send, besides arbitrary Unicode: words the flows understand, so
# that sequences wander through the flows rather than bouncing off the same question.
VOCABULARY = (
    *(str(n) for n in range(13)),
    "oui",
    "non",
    "ok",
    "demain",
    "lundi prochain",
    "le 3",
    "12/12",
    "9h30",
    "14:00",
    "abidjan",
    "passport",
    "menu",
    "?",
    "STOP",
    "START",
    "English",
    "Mooré",
    "mes rdv",
    NAME,
    REQUEST,
    "12/03/1990",
    "{name} {0} %s",
    "99999999999999999999999",
    "janvier",
)
texts = st.one_of(
    st.text(),
    st.text(st.characters(categories=["Cc", "Cf", "Co", "Cs", "Zl", "Zp", "Zs", "So", "Sk"])),
    st.text(min_size=1, max_size=7).map(lambda s: (s * 5000)[:5000]),
    st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=3).map(" ".join),
)
kinds = st.sampled_from(list(Kind)).filter(lambda kind: kind is not Kind.text)
messages = st.one_of(
    texts.map(lambda text: (text, Kind.text)),
    kinds.map(lambda kind: ("", kind)),
)
turns = st.lists(
    st.tuples(messages, st.integers(min_value=0, max_value=45)), min_size=1, max_size=4
)


def assert_answered(dialog: Dialog) -> None:
    turn = dialog.last
    assert turn.replies, "no answer"
    for reply in turn.replies:
        assert reply.lines, "a reply without lines"
        assert all(isinstance(line, Msg) and line.key for line in reply.lines)
        renderer().render_reply(reply, turn.lang)  # rendering never fails either
    stored = json.loads(json.dumps(turn.state.to_json()))
    assert Conversation.from_json(stored) == turn.state


@pytest.mark.parametrize("step", STEPS, ids=STEP_IDS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sent=turns, lang=st.sampled_from([None, "en", "mos"]))
def test_any_input_at_any_step_is_answered(
    step: Step, sent: list[tuple[tuple[str, Kind], int]], lang: str | None
) -> None:
    dialog = reach(step, MemoryWorld(), lang)
    for (text, kind), idle_minutes in sent:
        before = dialog.state
        dialog.wait(minutes=idle_minutes)
        dialog.say(text, kind)
        assert_answered(dialog)
        expired = idle_minutes > 30 and before[:2] != ("menu", "main")
        if kind is not Kind.text and not expired:
            assert dialog.state == before, "a voice note, a photo… lost the citizen's place"


@settings(max_examples=60, deadline=None)
@given(first=texts)
def test_any_first_message_is_answered(first: str) -> None:
    dialog = Dialog(MemoryWorld())
    dialog.say(first)
    assert_answered(dialog)
    assert dialog.step in {"language.choose", "menu.main"}


# -- 2. every step, every language, every reply rendered ----------------------------------------

Script = Callable[[MemoryWorld, Dialog], None]


def says(*inputs: str) -> Script:
    def script(world: MemoryWorld, dialog: Dialog) -> None:
        for text in inputs:
            dialog.say(text)

    return script


def then(*scripts: Script) -> Script:
    def script(world: MemoryWorld, dialog: Dialog) -> None:
        for each in scripts:
            each(world, dialog)

    return script


def race(seats: int | None = None, day: bool = False) -> Script:
    """Someone else takes the time shown at the confirmation (or the whole day)."""

    def script(world: MemoryWorld, dialog: Dialog) -> None:
        if day:
            world.fill_day("ABJ", "passport", date.fromisoformat(dialog.data["day"]))
        else:
            starts_at = datetime.fromisoformat(dialog.data["time"])
            world.take_seat("ABJ", "passport", starts_at, seats or world.seats)

    return script


def fill_wednesday(world: MemoryWorld, dialog: Dialog) -> None:
    world.fill_day("ABJ", "passport", date(2026, 12, 2))


def cancel_behind_the_back(world: MemoryWorld, dialog: Dialog) -> None:
    for appointment in world.upcoming(1, NOW):
        world.cancel(1, appointment.id, NOW)


def close_desk(world: MemoryWorld, dialog: Dialog) -> None:
    world.close_desk(1)


def idle(minutes: int) -> Script:
    def script(world: MemoryWorld, dialog: Dialog) -> None:
        dialog.wait(minutes=minutes)

    return script


def send(kind: Kind) -> Script:
    def script(world: MemoryWorld, dialog: Dialog) -> None:
        dialog.send(kind)

    return script


CHILDREN = ("Awa Sawadogo", "Issa Sawadogo", "Rasmané Sawadogo", "Fatim Sawadogo")


def four_appointments(world: MemoryWorld) -> None:
    for day, name in zip((3, 4, 7, 8), CHILDREN, strict=True):
        book_for(world, day=date(2026, 12, day), name=name)


def name_used_elsewhere(world: MemoryWorld) -> None:
    world.per_name = 1
    book_for(world, citizen_id=2, service="cnib")


def same_person_meanwhile(world: MemoryWorld, dialog: Dialog) -> None:
    book_for(world, citizen_id=2, day=date(2026, 12, 3))


def offer_made(world: MemoryWorld, dialog: Dialog) -> None:
    """A seat held for citizen 1, first in line; their conversation on the offer."""
    until = NOW + timedelta(hours=2)
    world.join_waitlist(1, "ABJ", "passport", NAME, NOW)
    world.offer_seat(1, world.slot("ABJ", date(2026, 12, 2), time(10)), until)
    dialog.stored = {
        "lang": dialog.stored["lang"] if dialog.stored else None,
        "flow": "waitlist", "step": "offer", "options": [],
        "data": {"entry": 1, "until": until.isoformat()}, "updated_at": NOW.isoformat(),
    }  # fmt: skip


def offer_expired(world: MemoryWorld, dialog: Dialog) -> None:
    world.waitlist[0]["status"] = "expired"


def booked_then_full(world: MemoryWorld) -> None:
    book_for(world)
    world.seats = 0


def no_shows_delay(world: MemoryWorld) -> None:
    world.no_shows = LimitInfo(LimitKind.no_shows, 2, 90, NOW + timedelta(days=10))


def no_shows_window(world: MemoryWorld) -> None:
    world.no_shows = LimitInfo(LimitKind.no_shows_window, 2, 90, None, window_days=3)


def no_seats(world: MemoryWorld) -> None:
    world.seats = 0


def with_requests(world: MemoryWorld) -> None:
    for serial, status in enumerate(
        ("received", "in_progress", "ready", "delivered", "rejected"), start=1
    ):
        world.add_request(
            f"PAR-2026-{serial:06d}",
            birth_date=date(1985, 6, 1),
            status=status,
            service="cnib",
            reason="Photo non conforme" if status == "rejected" else "",
        )


CONFIRM = ("1", "1", "1", "2", "1", NAME)  # from the main menu to the booking's confirmation

# (name, what the world holds first, phone, what the citizen does from the main menu)
SCENARIOS: list[tuple[str, Callable[[MemoryWorld], object] | None, str, Script]] = [
    ("book", None, "+2250701000001", says(*CONFIRM, "1")),
    ("abandon", None, "+2250701000001", says(*CONFIRM, "2")),
    ("unclear confirmation", None, "+2250701000001", says(*CONFIRM, "peut-être")),
    ("invalid name", None, "+2250701000001", says("1", "1", "1", "2", "1", "x")),
    ("time closed", None, "+2250701000001", says("1", "1", "1", "2", "12h30")),
    ("day closed", None, "+2250701000001", says("1", "1", "1", "12/12", "5")),
    ("time taken", None, "+2250701000001", then(says(*CONFIRM), race(), says("1", "1"))),
    ("day taken", None, "+2250701000001", then(says(*CONFIRM), race(day=True), says("1"))),
    ("day full", None, "+2250701000001", then(says("1", "1", "1"), fill_wednesday, says("2"))),
    ("limit phone", four_appointments, "+2250701000001", says("1", "1")),
    ("limit name", name_used_elsewhere, "+2250701000001", says(*CONFIRM)),
    ("limit meanwhile", None, "+2250701000001",
     then(says(*CONFIRM), same_person_meanwhile, says("1"))),
    ("held", book_for, "+2250701000001", says("1", "1", "1", "9", "?", "3")),
    ("held another", book_for, "+2250701000001", says("1", "1", "1", "2", "1", "2", NAME)),
    ("held reschedule", book_for, "+2250701000001", says("1", "1", "1", "1")),
    ("no day", no_seats, "+2250701000001", says("1", "1", "1")),
    ("reschedule no day", booked_then_full, "+2250701000001", says("3", "1", "1")),
    ("no-shows delay", no_shows_delay, "+2250701000001", says("1", "1")),
    ("no-shows window", no_shows_window, "+2250701000001", says(*CONFIRM, "1")),
    ("waitlist join", no_seats, "+2250701000001", says("1", "1", "1", "?", "1", NAME)),
    ("waitlist services", no_seats, "+2250701000001", says("1", "1", "1", "2")),
    ("offer take", None, "+2250701000001", then(offer_made, says("?", "peut-être", "1"))),
    ("offer decline", None, "+2250701000001", then(offer_made, says("2"))),
    ("offer gone", None, "+2250701000001", then(offer_made, offer_expired, says("1"))),
    ("no appointment", None, "+2250701000001", says("3")),
    ("not in list", book_for, "+2250701000001", says("3", "9", "1", "9", "3")),
    ("cancel", book_for, "+2250701000001", says("3", "1", "2", "1")),
    ("keep", book_for, "+2250701000001", says("3", "1", "2", "2")),
    ("gone", book_for, "+2250701000001", then(says("3", "1"), cancel_behind_the_back, says("2"))),
    ("reschedule", book_for, "+2250701000001", says("3", "1", "1", "3", "2", "1")),
    ("reference invalid", None, "+2250701000001", says("2", "abc")),
    ("birth date invalid", None, "+2250701000001", says("2", REQUEST, "hier")),
    ("wrong thrice", None, "+2250701000001",
     says("2", REQUEST, "01/01/1990", "01/01/1991", "01/01/1992", "2", REQUEST)),
    *[
        (f"status {serial}", with_requests, "+33612345678",
         says("2", f"PAR-2026-{serial:06d}", "01/06/1985"))
        for serial in range(1, 6)
    ],
    *[
        (f"info {n} {phone}", None, phone, says("4", str(n), "2"))
        for n in range(1, 8)
        for phone in ("+2250701000001", "+33612345678", "+12125550123")
    ],
    ("info then book", None, "+33612345678", says("4", "1", "1", "1")),
    *[(f"contacts {n}", None, "+2250701000001", says("5", str(n))) for n in range(1, 5)],
    ("language", None, "+2250701000001", says("6", "5", "6", "1")),
    ("language by name", None, "+2250701000001", says("1", "English", "Mooré", "Fulfulde")),
    ("voice", None, "+2250701000001", says("VOIX", "6", "6", "6", "6")),
    ("voice note then menu", None, "+2250701000001", then(send(Kind.voice), says("6", "6"))),
    ("expired", None, "+2250701000001", then(says("1"), idle(31), says("1"))),
    ("contact shared", None, "+2250701000001", send(Kind.contact)),
    ("menu errors", None, "+2250701000001", says("9", "blabla")),
    # whole sentences, greetings and thanks (issue 14)
    ("sentence service", None, "+2250701000001", says("passeport")),
    ("sentence post", None, "+2250701000001", says("passeport a abidjan")),
    ("sentence day", None, "+2250701000001", says("passeport a abidjan demain")),
    ("sentence time", None, "+2250701000001", says("passeport a abidjan demain a 7h")),
    ("sentence human", None, "+2250701000001", says("je veux parler a un agent")),
    ("sentence unknown rdv", book_for, "+2250701000001", says("annuler RDV-XYZ234")),
    # the desk: a person at the consulate (issue 13)
    ("desk", None, "+2250701000001",
     says("7", "1", "aide", "J'ai perdu mon passeport", "aide", "0", "7", "merci")),
    ("desk media", None, "+33612345678", then(says("7"), send(Kind.photo), send(Kind.voice))),
    ("desk tonight", None, "+2250701000001", then(idle(600), says("7", "2", "passeport perdu"))),
    ("desk early", None, "+2250701000001", then(idle(60 * 23), says("7", "1", "acte"))),
    ("desk friday", None, "+2250701000001", then(idle(60 * 82), says("7", "1", "acte"))),
    ("desk closed", book_for, "+2250701000001",
     then(says("7", "mon dossier"), close_desk, says("ok"))),
    ("three misses", None, "+2250701000001", says("blabla", "blibli", "bloblo", "agent")),
    ("politeness", None, "+2250701000001",
     says("bonjour", "bonsoir", "good morning", "good afternoon", "bonne nuit", "merci")),
]  # fmt: skip

# Keys that no conversation with MemoryWorld reaches (an empty network, weekend hours, a failed
# turn in bot/runtime.py): rendered alone, so that their translations are checked too.
UNREACHED = (
    msg("booking.no_posts"),
    msg("desk.when.later", post=msg("common.raw", text="Consulat général, Abidjan")),
    msg("booking.no_services"),
    msg("weekday.saturday"),
    msg("weekday.sunday"),
    msg("common.error"),
    msg("contacts.hours.clock_minutes", hour=8, minute="30"),
    msg("contacts.hours.list", first=msg("weekday.monday"), second=msg("weekday.wednesday")),
    msg("contacts.hours.days", first=msg("weekday.tuesday"), last=msg("weekday.thursday")),
)


def _universal_inputs() -> list[Script]:
    """What may be sent at any step: help, noise, a wrong number, media, STOP/START, menu."""
    return [
        says("?"),
        says("zz"),
        says("99"),
        says("🙂"),
        send(Kind.voice),
        send(Kind.contact),
        says("STOP"),
        says("START"),
        says("0"),
    ]


@cache
def walk(lang: str) -> tuple[tuple[str, str, Reply], ...]:
    """Every reply of every step and scenario, in one language: (where, lang, reply)."""
    seen: list[tuple[str, str, Reply]] = []

    def keep(where: str, dialog: Dialog) -> None:
        seen.extend((where, turn.lang, reply) for turn in dialog.turns for reply in turn.replies)

    first = Dialog(MemoryWorld())
    first.say("Bonjour")
    first.say("Hello")  # not the language menu's answer: French is kept, and the welcome
    keep("first contact", first)
    for step in STEPS:
        reached = reach(step, MemoryWorld(), None if step.first_contact else lang)
        keep(step.id, reached)
        for each in _universal_inputs():
            dialog = copy.deepcopy(reached)
            dialog.turns = []
            each(dialog.world, dialog)
            keep(step.id, dialog)
    for name, prepare, phone, script in SCENARIOS:
        world = MemoryWorld()
        if prepare is not None:
            prepare(world)
        dialog = at_menu(world, lang, phone=phone)
        script(world, dialog)
        keep(name, dialog)
    seen.extend(("unreached", lang, Reply((message,))) for message in UNREACHED)
    return tuple(seen)


def keys_in(message: Msg) -> Iterator[str]:
    yield message.key
    for value in message.params.values():
        if isinstance(value, Msg):
            yield from keys_in(value)


def reply_keys(reply: Reply) -> Iterator[str]:
    for message in (*reply.lines, *reply.choices):
        yield from keys_in(message)


def keys_in_flows() -> set[str]:
    """Every catalog key written in flows/ (msg("…") calls and keys chosen in code)."""
    source = "\n".join(
        path.read_text(encoding="utf-8")
        for path in Path(flows.__file__).parent.glob("*.py")
        if path.name != "messages.py"  # its docstring holds an example key
    )
    found = set(re.findall(r"""msg\(\s*["']([a-z_]+(?:\.[a-z_]+)+)["']""", source))
    found |= set(re.findall(r'''key = "([a-z_]+(?:\.[a-z_]+)+)"''', source))
    found |= set(re.findall(r""""([a-z_]+\.[a-z_.]+)" if """, source))
    found |= set(re.findall(r''' else "([a-z_]+\.[a-z_.]+)"''', source))
    return found | {"common.raw"}


def test_the_walk_reaches_every_key_of_the_flows() -> None:
    reached = {key for _where, _lang, reply in walk("fr") for key in reply_keys(reply)}
    assert keys_in_flows() - reached == set()


PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")


@pytest.mark.parametrize("lang", dict.fromkeys((*LANGUAGES, *renderer().languages)))
def test_every_reply_renders_within_the_limits_in_every_language(lang: str) -> None:
    texts = renderer()
    assert lang in texts.languages, f"no catalog for {lang} (locales/{lang}/LC_MESSAGES)"
    all_keys = keys_in_flows() | {"common.error"}
    problems: list[str] = []
    for where, reply_lang, reply in walk(lang):
        rendered = texts.render_reply(reply, reply_lang)
        shown = rendered.with_numbers()
        raw = sorted(key for key in all_keys if key in shown)
        unfilled = PLACEHOLDER.findall(shown)
        if raw or unfilled:
            problems.append(
                f"{where} [{reply_lang}]: raw {raw} unfilled {unfilled}: {shown!r:.300}"
            )
        if len(shown) > WHATSAPP_LIMIT:
            problems.append(f"{where} [{reply_lang}]: {len(shown)} characters: {shown!r:.300}")
        assert len(shown) <= TELEGRAM_LIMIT
        if not rendered.text.strip() or not all(label.strip() for label in rendered.choices):
            problems.append(f"{where} [{reply_lang}]: an empty text or choice: {shown!r:.300}")
    assert not problems, "\n".join(dict.fromkeys(problems))
