"""Transcripts of every flow, asserting message keys and states, never wording.

The citizen writes from Abidjan (+225) on Tuesday 1 December 2026 at 08:00 UTC unless a test
says otherwise; `MemoryWorld` holds the consular network (two seats per 30-minute slot).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from flows.engine import Answer, Kind
from flows.menu import read
from flows.text import fold
from flows.world import LimitInfo, LimitKind, LookupOutcome
from tests.support.dialog import (
    BIRTH_DATE,
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

MENU = ["book", "track", "my_appointments", "info", "contacts", "language", "human"]
LANGUAGES = ["fr", "mos", "dyu", "ff", "en"]
REFERENCE = re.compile(r"^RDV-[0-9A-HJKMNP-TV-Z]{6}$")
TUESDAY = date(2026, 12, 1)
WEDNESDAY = date(2026, 12, 2)


@pytest.fixture
def world() -> MemoryWorld:
    return MemoryWorld()


def abj(day: date, hour: int, minute: int = 0) -> str:
    """A slot at Abidjan (UTC+0) as the flows keep it."""
    return datetime.combine(day, time(hour, minute)).isoformat() + "+00:00"


def at_booking_day(world: MemoryWorld, **options: Any) -> Dialog:
    dialog = at_menu(world, **options)
    for text in ("1", "1", "1"):  # book, Abidjan, passport
        dialog.say(text)
    assert dialog.step == "booking.day"
    return dialog


def at_confirm(world: MemoryWorld, day: str = "demain", at: str = "9h30") -> Dialog:
    dialog = at_booking_day(world)
    dialog.say(day)
    dialog.say(at)
    dialog.say(NAME)
    assert dialog.step == "booking.confirm"
    return dialog


# -- first contact --------------------------------------------------------------------------


@pytest.mark.parametrize("first", ["Bonjour", "bjr", "Salut !", "ok", "", "0", "/start", "1"])
def test_first_contact_in_french_or_no_language_gets_the_language_menu(
    world: MemoryWorld, first: str
) -> None:
    dialog = Dialog(world)
    turn = dialog.say(first)
    assert dialog.keys == ["common.welcome", "language.choose.question"]
    assert dialog.step == "language.choose"
    assert dialog.values == LANGUAGES
    assert turn.state.lang is None
    assert world.languages == {}


@pytest.mark.parametrize(
    ("first", "lang"),
    [
        ("Hello", "en"),
        ("Good morning", "en"),
        ("Ne y yibeoogo", "mos"),
        ("ney yibeogo", "mos"),
    ],
)
def test_first_contact_clearly_in_another_language_takes_it(
    world: MemoryWorld, first: str, lang: str
) -> None:
    dialog = Dialog(world)
    turn = dialog.say(first)
    assert dialog.keys == ["common.welcome", "menu.main.question"]
    assert dialog.values == MENU
    assert turn.lang == lang
    assert world.languages == {1: lang}


def test_a_voice_note_as_first_message_gets_the_language_menu(world: MemoryWorld) -> None:
    dialog = Dialog(world)
    dialog.send(Kind.voice)
    assert dialog.keys == ["common.welcome", "language.choose.question"]


def test_a_greeting_in_mooré_on_the_language_menu_picks_mooré(world: MemoryWorld) -> None:
    dialog = Dialog(world)
    dialog.say("Bonjour")
    turn = dialog.say("Ne y yibeoogo")
    assert dialog.keys == ["common.welcome", "menu.main.question"]
    assert turn.lang == "mos"


@pytest.mark.parametrize(("answer", "lang"), [("1", "fr"), ("2", "mos"), ("5", "en")])
def test_the_language_menu_takes_numbers(world: MemoryWorld, answer: str, lang: str) -> None:
    dialog = Dialog(world)
    dialog.say("Bonjour")
    turn = dialog.say(answer)
    assert dialog.keys == ["language.set", "menu.main.question"]
    assert turn.lang == lang
    assert world.languages == {1: lang}


@pytest.mark.parametrize(("answer", "lang"), [("francais", "fr"), ("English", "en")])
def test_the_language_menu_takes_names(world: MemoryWorld, answer: str, lang: str) -> None:
    dialog = Dialog(world)
    dialog.say("bjr")
    assert dialog.say(answer).lang == lang
    assert dialog.step == "menu.main"


def test_the_language_menu_rejects_other_numbers(world: MemoryWorld) -> None:
    dialog = Dialog(world)
    dialog.say("Bonjour")
    dialog.say("7")
    assert dialog.keys == ["common.not_an_option", "language.choose.question"]
    assert dialog.line("common.not_an_option").params == {"count": 5}


def test_a_citizen_known_from_another_channel_is_welcomed_back(world: MemoryWorld) -> None:
    dialog = Dialog(world, lang="en")
    turn = dialog.say("Bonjour")
    assert dialog.keys == ["common.welcome_back", "menu.main.question"]
    assert turn.lang == "en"


# -- language change ------------------------------------------------------------------------


def test_language_from_the_main_menu(world: MemoryWorld) -> None:
    dialog = at_menu(world)
    dialog.say("6")
    assert dialog.step == "language.choose"
    assert dialog.values == [*LANGUAGES, "voice"]  # the five in order, then voice prompts
    turn = dialog.say("5")
    assert dialog.keys == ["language.set", "menu.main.question"]
    assert turn.lang == "en"
    assert world.languages == {1: "en"}


@pytest.mark.parametrize(("name", "lang"), [("English", "en"), ("Mooré", "mos"), ("dioula", "dyu")])
def test_typing_a_language_name_mid_booking_keeps_the_progress(
    world: MemoryWorld, name: str, lang: str
) -> None:
    dialog = at_booking_day(world)
    before = dialog.state
    turn = dialog.say(name)
    assert dialog.keys == ["language.set", "booking.day.question"]
    assert dialog.state == before
    assert turn.lang == lang
    assert world.languages[1] == lang
    dialog.say("2")
    assert dialog.step == "booking.time"
    assert dialog.last.lang == lang


# -- main menu ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "step"),
    [
        ("1", "booking.post"),
        ("je veux un rdv", "booking.post"),
        ("prendre rendez-vous", "booking.post"),
        ("suivi de mon dossier", "status.reference"),
        ("2", "status.reference"),
        ("documents", "info.service"),
        ("quels papiers pour le passeport", "info.details"),
        ("quels papiers", "info.service"),
        ("horaires", "contacts.post"),
        ("langue", "language.choose"),
        ("6", "language.choose"),
    ],
)
def test_the_main_menu_understands_numbers_and_intents(
    world: MemoryWorld, text: str, step: str
) -> None:
    dialog = at_menu(world)
    dialog.say(text)
    assert dialog.step == step


def test_an_intent_in_english(world: MemoryWorld) -> None:
    dialog = Dialog(world, lang="en")
    dialog.say("0")
    dialog.say("I want to book an appointment")
    assert dialog.step == "booking.post"


def test_the_main_menu_rejects_other_numbers_and_words(world: MemoryWorld) -> None:
    dialog = at_menu(world)
    dialog.say("9")
    assert dialog.keys == ["common.not_an_option", "menu.main.question"]
    assert dialog.line("common.not_an_option").params == {"count": 7}
    dialog.say("blablabla")
    assert dialog.keys == ["common.not_understood", "menu.main.question"]


# -- booking --------------------------------------------------------------------------------


def test_booking_with_numbers(world: MemoryWorld) -> None:
    dialog = at_menu(world)
    dialog.say("1")
    assert (dialog.keys, dialog.values) == (["booking.post.question"], ["ABJ", "BKE", "PAR", "NYC"])
    dialog.say("1")
    assert dialog.state == ("booking", "service", {"post": "ABJ"})
    assert dialog.values[:3] == ["passport", "cnib", "consular_card"]
    assert dialog.choice_keys[0] == "service.passport"
    dialog.say("1")
    assert dialog.state == ("booking", "day", {"post": "ABJ", "service": "passport"})
    assert dialog.values == [
        "2026-12-01",
        "2026-12-02",
        "2026-12-03",
        "2026-12-04",
        "2026-12-07",
        "2026-12-08",
    ]  # the weekend and no other day off in between
    assert set(dialog.choice_keys) == {"common.day"}
    dialog.say("2")
    assert dialog.step == "booking.time"
    assert dialog.data["day"] == "2026-12-02"
    assert dialog.values[:2] == [abj(WEDNESDAY, 8), abj(WEDNESDAY, 8, 30)]
    assert len(dialog.values) == 12
    dialog.say("1")
    assert dialog.keys == ["booking.name.question"]
    assert dialog.data["time"] == abj(WEDNESDAY, 8)
    dialog.say(NAME)
    assert dialog.keys == ["booking.confirm.question"]
    assert dialog.values == ["yes", "no"]
    assert dict(dialog.line("booking.confirm.question").params)["time"] == time(8)
    dialog.say("1")
    assert dialog.keys == ["booking.confirmed", "menu.main.question"]
    assert dialog.step == "menu.main"
    confirmed = dialog.line("booking.confirmed").params
    assert REFERENCE.match(confirmed["reference"])
    assert (confirmed["day"], confirmed["time"]) == (WEDNESDAY, time(8))
    [appointment] = world.upcoming(1, NOW)
    assert (appointment.reference, appointment.full_name) == (confirmed["reference"], NAME)
    assert (appointment.post.code, appointment.service_code) == ("ABJ", "passport")


def test_booking_in_free_text(world: MemoryWorld) -> None:
    dialog = at_menu(world)
    for text, step in [
        ("je veux un rdv", "booking.post"),
        ("abidjan", "booking.service"),
        ("passport", "booking.day"),
        ("demain", "booking.time"),
        ("9h30", "booking.name"),
        (NAME, "booking.confirm"),
    ]:
        dialog.say(text)
        assert dialog.step == step, (text, dialog.keys)
    assert dialog.data == {
        "post": "ABJ",
        "service": "passport",
        "day": "2026-12-02",
        "time": abj(WEDNESDAY, 9, 30),
        "name": NAME,
    }
    dialog.say("oui")
    assert dialog.keys[0] == "booking.confirmed"
    assert [a.local.time() for a in world.upcoming(1, NOW)] == [time(9, 30)]


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("demain", date(2026, 12, 2)),
        ("après-demain", date(2026, 12, 3)),
        ("jeudi", date(2026, 12, 3)),
        ("lundi", date(2026, 12, 7)),
        ("lundi prochain", date(2026, 12, 7)),
        ("le 3", date(2026, 12, 3)),
        ("14/12", date(2026, 12, 14)),
        ("3 décembre", date(2026, 12, 3)),
        ("4 DECEMBRE", date(2026, 12, 4)),
    ],
)
def test_the_day_in_words(world: MemoryWorld, text: str, day: date) -> None:
    dialog = at_booking_day(world)
    dialog.say(text)
    assert dialog.step == "booking.time"
    assert dialog.data["day"] == day.isoformat()


def test_le_4_is_the_fourth_of_the_month_not_the_fourth_choice(world: MemoryWorld) -> None:
    friday = datetime(2026, 12, 4, 8, 0, tzinfo=NOW.tzinfo)
    dialog = at_booking_day(world, now=friday)
    assert dialog.values[3] == "2026-12-09"  # the fourth choice
    dialog.say("le 4")
    assert dialog.data["day"] == "2026-12-04"
    dialog.wait(minutes=1)
    dialog.say("0")
    dialog.say("1")
    dialog.say("1")
    dialog.say("1")
    dialog.say("4")  # a bare number is the choice
    assert dialog.data["day"] == "2026-12-09"


@pytest.mark.parametrize(
    ("text", "at"),
    [
        ("9h30", time(9, 30)),
        ("9h", time(9)),
        ("14:00", time(14)),
        ("14h30", time(14, 30)),
        ("2pm", time(14)),
        ("vers 10h", time(10)),
    ],
)
def test_the_time_in_words(world: MemoryWorld, text: str, at: time) -> None:
    dialog = at_booking_day(world)
    dialog.say("demain")
    dialog.say(text)
    assert dialog.step == "booking.name"
    assert dialog.data["time"] == abj(WEDNESDAY, at.hour, at.minute)


def test_a_time_when_closed_offers_the_nearest(world: MemoryWorld) -> None:
    dialog = at_booking_day(world)
    dialog.say("demain")
    dialog.say("12h30")  # lunch break
    assert dialog.keys == ["booking.time_unavailable", "booking.time.question"]
    assert dialog.values == [
        abj(WEDNESDAY, 11),
        abj(WEDNESDAY, 11, 30),
        abj(WEDNESDAY, 13),
        abj(WEDNESDAY, 13, 30),
    ]
    dialog.say("3")
    assert dialog.data["time"] == abj(WEDNESDAY, 13)
    assert dialog.step == "booking.name"


@pytest.mark.parametrize(
    ("phone", "first"),
    [
        ("+2250701000001", ["ABJ", "BKE"]),
        ("+33612345678", ["PAR"]),
        ("+12125550123", ["NYC"]),
        ("+4915112345678", ["ABJ", "BKE", "PAR", "NYC"]),  # no post there: the usual order
    ],
)
def test_posts_of_the_senders_country_come_first(
    world: MemoryWorld, phone: str, first: list[str]
) -> None:
    dialog = at_menu(world, phone=phone)
    dialog.say("1")
    assert dialog.values[: len(first)] == first
    assert sorted(dialog.values) == ["ABJ", "BKE", "NYC", "PAR"]
    dialog.say("1")
    assert dialog.data == {"post": first[0]}


def test_a_time_taken_meanwhile_offers_the_nearest_times(world: MemoryWorld) -> None:
    dialog = at_confirm(world)
    world.take_seat("ABJ", "passport", world.slot("ABJ", WEDNESDAY, time(9, 30)), seats=2)
    dialog.say("oui")
    assert dialog.keys == ["booking.taken", "booking.time.question"]
    assert dialog.values == [
        abj(WEDNESDAY, 8, 30),
        abj(WEDNESDAY, 9),
        abj(WEDNESDAY, 10),
        abj(WEDNESDAY, 10, 30),
    ]
    assert dialog.data["name"] == NAME
    dialog.say("3")
    assert dialog.step == "booking.confirm"  # the name is not asked again
    dialog.say("1")
    assert dialog.keys[0] == "booking.confirmed"
    assert [a.local.time() for a in world.upcoming(1, NOW)] == [time(10)]


def test_a_day_filled_meanwhile_offers_other_days(world: MemoryWorld) -> None:
    dialog = at_confirm(world)
    world.fill_day("ABJ", "passport", WEDNESDAY)
    dialog.say("oui")
    assert dialog.keys == ["booking.taken_day_full", "booking.day.question"]
    assert dialog.step == "booking.day"
    assert "day" not in dialog.data
    assert "2026-12-02" not in dialog.values
    assert world.upcoming(1, NOW) == []


def test_a_day_filled_between_the_question_and_the_answer(world: MemoryWorld) -> None:
    dialog = at_booking_day(world)
    world.fill_day("ABJ", "passport", WEDNESDAY)
    dialog.say("2")  # Wednesday, shown before it filled up
    assert dialog.keys == ["booking.day_full", "booking.day.question"]
    assert "2026-12-02" not in dialog.values


def test_a_full_day_offers_the_nearest_days(world: MemoryWorld) -> None:
    world.fill_day("ABJ", "passport", WEDNESDAY)
    dialog = at_booking_day(world)
    dialog.say("demain")
    assert dialog.keys == ["booking.day_unavailable", "booking.day.question"]
    assert dialog.line("booking.day_unavailable").params == {"day": WEDNESDAY}
    assert dialog.values == ["2026-12-01", "2026-12-03", "2026-12-04", "2026-12-07"]
    dialog.say("2")
    assert dialog.data["day"] == "2026-12-03"


def test_a_weekend_or_a_closure_offers_the_nearest_days(world: MemoryWorld) -> None:
    dialog = at_booking_day(world)
    dialog.say("12/12")  # a Saturday, after the closure of Friday 11
    assert dialog.keys == ["booking.day_unavailable", "booking.day.question"]
    assert dialog.values == ["2026-12-09", "2026-12-10", "2026-12-14", "2026-12-15"]


def test_no_seat_over_the_whole_window_offers_the_waitlist(world: MemoryWorld) -> None:
    world.seats = 0
    dialog = at_menu(world)
    for text in ("1", "1", "1"):
        dialog.say(text)
    assert dialog.keys == ["booking.waitlist.question"]
    assert dialog.values == ["join", "services"]
    dialog.say("1")
    assert dialog.keys == ["booking.name.question"]
    dialog.say(NAME)
    assert dialog.keys == ["booking.waitlist.joined", "menu.main.question"]
    assert dialog.line("booking.waitlist.joined").params["place"] == 1
    other = Dialog(world, citizen_id=2, phone="+2250701000002")
    other.say("Hello")
    for text in ("1", "1", "1", "1", "Issa Sawadogo"):
        other.say(text)
    assert other.line("booking.waitlist.joined").params["place"] == 2
    # joining again keeps one's place
    for text in ("1", "1", "1", "1", NAME):
        dialog.say(text)
    assert dialog.line("booking.waitlist.joined").params["place"] == 1


def test_no_seat_and_another_service(world: MemoryWorld) -> None:
    world.seats = 0
    dialog = at_menu(world)
    for text in ("1", "1", "1", "2"):
        dialog.say(text)
    assert dialog.state == ("booking", "service", {"post": "ABJ"})


def offered(world: MemoryWorld, hours: float = 2) -> Dialog:
    """Citizen 1 waits; a seat frees on Wednesday at 10:00 and is held for them, and the
    back office puts their conversation on the offer, as api.domain.waitlist does."""
    world.join_waitlist(1, "ABJ", "passport", NAME, NOW)
    starts_at = world.slot("ABJ", WEDNESDAY, time(10))
    world.offer_seat(1, starts_at, NOW + timedelta(hours=hours))
    dialog = at_menu(world)
    dialog.stored = {
        "lang": "fr", "flow": "waitlist", "step": "offer", "options": [],
        "data": {"entry": 1, "until": (NOW + timedelta(hours=hours)).isoformat()},
        "updated_at": NOW.isoformat(),
    }  # fmt: skip
    return dialog


def test_a_waitlist_offer_taken_with_1(world: MemoryWorld) -> None:
    dialog = offered(world)
    dialog.wait(minutes=90)  # longer than a conversation's idle time, within the offer
    dialog.say("1")
    assert dialog.keys == ["booking.confirmed", "menu.main.question"]
    [booked] = world.upcoming(1, NOW)
    assert (booked.local.date(), booked.local.time(), booked.full_name) == (
        WEDNESDAY,
        time(10),
        NAME,
    )


def test_a_waitlist_offer_declined_with_2(world: MemoryWorld) -> None:
    dialog = offered(world)
    dialog.say("2")
    assert dialog.keys == ["waitlist.offer.declined", "menu.main.question"]
    assert world.upcoming(1, NOW) == []
    assert world.waitlist[0]["status"] == "declined"


def test_a_waitlist_offer_answered_too_late(world: MemoryWorld) -> None:
    dialog = offered(world, hours=1)
    dialog.wait(minutes=61)
    dialog.say("1")
    assert dialog.keys[0] in {"waitlist.offer.gone", "common.expired"}
    assert world.upcoming(1, NOW) == []


def test_help_at_a_waitlist_offer(world: MemoryWorld) -> None:
    dialog = offered(world)
    dialog.say("aide")
    assert dialog.keys[0] == "waitlist.offer.help"


@pytest.mark.parametrize(
    "name", ["A", "Jo", "12345", "Awa 2", "x" * 81, "...", "🙂🙂🙂", "\x00\x07", "-- --"]
)
def test_an_invalid_name_is_asked_again(world: MemoryWorld, name: str) -> None:
    dialog = at_booking_day(world)
    dialog.say("demain")
    dialog.say("9h")
    before = dialog.state
    dialog.say(name)
    assert dialog.keys[-1] == "booking.name.question"
    assert dialog.keys[0] in {"booking.name.invalid", "common.not_understood.text"}
    assert dialog.state == before


@pytest.mark.parametrize("name", ["Awa Ouédraogo", "N'Guessan Kouamé", "Salif Traoré-Koné", "Zoé"])
def test_a_valid_name_is_kept_as_typed(world: MemoryWorld, name: str) -> None:
    dialog = at_booking_day(world)
    dialog.say("demain")
    dialog.say("9h")
    dialog.say(f"  {name}  ")
    assert dialog.step == "booking.confirm"
    assert dialog.data["name"] == name


@pytest.mark.parametrize("answer", ["2", "non", "Non merci", "pas d'accord", "annuler"])
def test_saying_no_at_the_confirmation_abandons(world: MemoryWorld, answer: str) -> None:
    dialog = at_confirm(world)
    dialog.say(answer)
    assert dialog.keys == ["booking.abandoned", "menu.main.question"]
    assert world.upcoming(1, NOW) == []


@pytest.mark.parametrize("answer", ["1", "oui", "OK", "d'accord", "Oui je confirme"])
def test_saying_yes_at_the_confirmation_books(world: MemoryWorld, answer: str) -> None:
    dialog = at_confirm(world)
    dialog.say(answer)
    assert dialog.keys[0] == "booking.confirmed"


def test_an_unclear_confirmation_is_asked_again(world: MemoryWorld) -> None:
    dialog = at_confirm(world)
    before = dialog.state
    dialog.say("peut-être")
    assert dialog.keys == ["common.answer_yes_no", "booking.confirm.question"]
    assert dialog.state == before


def test_not_ok_in_english_does_not_book(world: MemoryWorld) -> None:
    dialog = at_confirm(world)
    dialog.say("English")
    dialog.say("not ok")
    assert dialog.keys == ["booking.abandoned", "menu.main.question"]


@pytest.mark.parametrize("answer", ["yesterday", "I know", "now"])
def test_words_that_merely_contain_yes_or_no_answer_nothing(
    world: MemoryWorld, answer: str
) -> None:
    dialog = at_confirm(world)
    dialog.say("English")
    dialog.say(answer)
    assert dialog.keys == ["common.answer_yes_no", "booking.confirm.question"]
    assert world.upcoming(1, NOW) == []


# -- fair access: one person, one procedure; limits told before the questions ---------------


def test_an_appointment_held_for_the_service_is_shown_as_soon_as_it_is_chosen(
    world: MemoryWorld,
) -> None:
    reference = book_for(world)
    dialog = at_menu(world)
    dialog.say("1")
    dialog.say("1")  # Abidjan
    dialog.say("1")  # passport: the one already held there
    assert dialog.keys == ["booking.held.question"]
    assert dialog.step == "booking.held"
    assert dialog.values == ["reschedule", "another", "back"]
    item = dialog.line("booking.held.question").params["item"]
    assert item.params["reference"] == reference
    dialog.say("1")  # reschedule it: the booking's days, moving that appointment
    assert dialog.step == "booking.day"
    assert dialog.state.data["reschedule"] == 1


def test_going_back_from_the_held_appointment_shows_the_services(world: MemoryWorld) -> None:
    book_for(world)
    dialog = at_menu(world)
    for text in ("1", "1", "1", "3"):
        dialog.say(text)
    assert dialog.step == "booking.service"
    assert dialog.keys == ["booking.service.question"]


def test_a_parent_books_for_a_child_from_the_same_phone(world: MemoryWorld) -> None:
    book_for(world)  # the parent's own passport appointment
    dialog = at_menu(world)
    for text in ("1", "1", "1", "2", "demain", "10h"):
        dialog.say(text)
    dialog.say(NAME)  # the parent's name again: that person already holds one
    assert dialog.keys == ["booking.limit.name_held", "booking.name.question"]
    assert dialog.step == "booking.name"
    dialog.say("Issa Sawadogo")
    dialog.say("1")
    assert dialog.keys == ["booking.confirmed", "menu.main.question"]
    assert [a.full_name for a in world.upcoming(1, NOW)] == [NAME, "Issa Sawadogo"]


def test_the_phone_limit_is_told_before_the_service_question(world: MemoryWorld) -> None:
    for day, (service, name) in zip(
        (2, 3, 4, 7),
        [
            ("passport", NAME),
            ("cnib", NAME),
            ("passport", "Issa Sawadogo"),
            ("cnib", "Issa Sawadogo"),
        ],
        strict=True,
    ):
        book_for(world, day=date(2026, 12, day), service=service, name=name)
    first = next(iter(world.appointments))
    assert world.cancel(1, first, NOW)  # cancelled ones count too
    dialog = at_menu(world)
    dialog.say("1")
    dialog.say("1")  # Abidjan
    assert dialog.keys == ["booking.limit.phone", "menu.main.question"]
    assert dialog.line("booking.limit.phone").params == {
        "limit": 4,
        "days": 30,
        "day": date(2026, 12, 31),  # 30 days after the first of them was booked
    }
    dialog.say("1")
    dialog.say("2")  # Bouaké: another post, another allowance
    assert dialog.step == "booking.service"


def test_the_name_limit_is_told_at_the_name(world: MemoryWorld) -> None:
    world.per_name = 1
    book_for(world, citizen_id=2, service="cnib")  # someone else's phone, the same name
    dialog = Dialog(world, citizen_id=3, phone="+2250701000003")
    dialog.say("Hello")
    for text in ("1", "1", "1", "demain", "9h30", "awa  OUEDRAOGO"):
        dialog.say(text)
    assert dialog.keys == ["booking.limit.name", "booking.name.question"]
    assert dialog.line("booking.limit.name").params["limit"] == 1
    dialog.say("Issa Sawadogo")  # another person goes on
    assert dialog.step == "booking.confirm"


def test_too_many_no_shows_with_a_delay_is_told_before_the_service(world: MemoryWorld) -> None:
    world.no_shows = LimitInfo(LimitKind.no_shows, 2, 90, NOW + timedelta(days=10))
    dialog = at_menu(world)
    dialog.say("1")
    dialog.say("1")
    assert dialog.keys == ["booking.limit.no_shows", "menu.main.question"]
    assert dialog.line("booking.limit.no_shows").params["day"] == date(2026, 12, 11)


def test_too_many_no_shows_with_a_shorter_window_shows_only_the_nearer_days(
    world: MemoryWorld,
) -> None:
    world.no_shows = LimitInfo(LimitKind.no_shows_window, 2, 90, None, window_days=2)
    dialog = at_booking_day(world)
    assert dialog.keys == ["booking.limit.no_shows_window", "booking.day.question"]
    assert dialog.values == ["2026-12-01", "2026-12-02", "2026-12-03"]
    dialog.say("1")
    dialog.say("1")
    dialog.say(NAME)
    dialog.say("1")
    assert dialog.keys == ["booking.confirmed", "menu.main.question"]


def test_a_limit_reached_meanwhile_is_still_refused_at_the_confirmation(
    world: MemoryWorld,
) -> None:
    dialog = at_confirm(world)
    book_for(world, citizen_id=2, day=date(2026, 12, 3))  # the same person, another phone
    dialog.say("1")
    assert dialog.keys == ["booking.limit_reached", "menu.main.question"]
    assert world.upcoming(1, NOW) == []


def test_booking_from_the_services_page_skips_the_service(world: MemoryWorld) -> None:
    dialog = at_menu(world)
    dialog.say("4")
    dialog.say("carte consulaire")
    assert dialog.state == ("info", "details", {"service": "consular_card"})
    dialog.say("1")  # book
    assert dialog.state == ("booking", "post", {"service": "consular_card"})
    dialog.say("Bouaké")
    assert dialog.state == ("booking", "day", {"post": "BKE", "service": "consular_card"})


# -- my appointments ------------------------------------------------------------------------


def test_no_appointment(world: MemoryWorld) -> None:
    dialog = at_menu(world)
    dialog.say("3")
    assert dialog.keys == ["appointments.none", "menu.main.question"]
    assert dialog.step == "menu.main"


def test_one_appointment_is_still_a_list(world: MemoryWorld) -> None:
    reference = book_for(world)
    dialog = at_menu(world)
    dialog.say("mes rendez-vous")
    assert dialog.keys == ["appointments.list.question"]
    assert dialog.line("appointments.list.question").params == {"count": 1}
    assert dialog.choice_keys == ["appointments.item"]
    assert dialog.last.replies[0].choices[0].params["reference"] == reference
    dialog.say("1")
    assert dialog.state == ("appointments", "actions", {"id": 1})
    assert dialog.values == ["reschedule", "cancel", "back"]
    dialog.say("3")
    assert dialog.step == "appointments.list"


def test_appointments_are_listed_soonest_first_and_picked_by_reference(
    world: MemoryWorld,
) -> None:
    later = book_for(world, day=date(2026, 12, 8))
    sooner = book_for(world, day=date(2026, 12, 3), name="Issa Sawadogo")
    dialog = at_menu(world)
    dialog.say("3")
    assert [c.params["reference"] for c in dialog.last.replies[0].choices] == [sooner, later]
    dialog.say(later.lower())
    assert dialog.state == ("appointments", "actions", {"id": 1})


def test_cancel_an_appointment(world: MemoryWorld) -> None:
    book_for(world)
    dialog = at_menu(world)
    dialog.say("3")
    dialog.say("1")
    dialog.pick("cancel")
    assert dialog.keys == ["appointments.cancel.question"]
    assert dialog.values == ["yes", "no"]
    dialog.say("oui")
    assert dialog.keys == ["appointments.cancelled", "menu.main.question"]
    assert world.upcoming(1, NOW) == []
    assert world.appointments[1].status == "cancelled"
    assert world.open_times("ABJ", "passport", WEDNESDAY, NOW)[2].seats_left == 2


def test_keep_an_appointment(world: MemoryWorld) -> None:
    book_for(world)
    dialog = at_menu(world)
    for text in ("3", "1", "2", "non"):
        dialog.say(text)
    assert dialog.keys == ["appointments.kept", "menu.main.question"]
    assert len(world.upcoming(1, NOW)) == 1


def test_an_appointment_cancelled_elsewhere_is_gone(world: MemoryWorld) -> None:
    book_for(world)
    dialog = at_menu(world)
    dialog.say("3")
    dialog.say("1")
    world.cancel(1, 1, NOW)  # from the staff console, or another channel
    dialog.pick("cancel")
    assert dialog.keys == ["appointments.gone", "appointments.none", "menu.main.question"]


def test_reschedule_keeps_the_reference(world: MemoryWorld) -> None:
    reference = book_for(world)  # Wednesday 09:00
    dialog = at_menu(world)
    dialog.say("3")
    dialog.say("1")
    dialog.pick("reschedule")
    assert dialog.state == (
        "booking",
        "day",
        {"post": "ABJ", "service": "passport", "name": NAME, "reschedule": 1},
    )
    dialog.say("jeudi")
    dialog.say("14h")
    assert dialog.keys == ["booking.confirm.reschedule"]  # the name is known already
    dialog.say("oui")
    assert dialog.keys == ["booking.rescheduled", "menu.main.question"]
    assert dialog.line("booking.rescheduled").params["reference"] == reference
    [moved] = world.upcoming(1, NOW)
    assert (moved.reference, moved.local.date(), moved.local.time()) == (
        reference,
        date(2026, 12, 3),
        time(14),
    )
    assert world.open_times("ABJ", "passport", WEDNESDAY, NOW)[2].seats_left == 2  # freed


# -- request status -------------------------------------------------------------------------


def at_reference(world: MemoryWorld, **options: Any) -> Dialog:
    world.add_request(REQUEST, birth_date=BIRTH_DATE, phone="+2250701000001", status="ready")
    dialog = at_menu(world, **options)
    dialog.say("2")
    assert dialog.keys == ["status.reference.question"]
    return dialog


@pytest.mark.parametrize("text", ["abc", "123", "ABJ-26-1", "🙂"])
def test_an_invalid_reference_is_asked_again(world: MemoryWorld, text: str) -> None:
    dialog = at_reference(world)
    dialog.say(text)
    assert dialog.keys[-1] == "status.reference.question"
    assert dialog.keys[0] in {
        "status.reference.invalid",
        "common.not_understood",
        "common.not_understood.text",
    }
    assert dialog.step == "status.reference"


def test_a_booking_reference_at_the_request_step_means_the_appointment(
    world: MemoryWorld,
) -> None:
    dialog = at_reference(world)
    dialog.say("RDV-ABC123")
    assert dialog.keys == ["appointments.none", "menu.main.question"]


@pytest.mark.parametrize("text", [REQUEST, "abj 2026 123", "ABJ/2026/000123", "abj-2026-123"])
def test_a_reference_then_the_birth_date(world: MemoryWorld, text: str) -> None:
    dialog = at_reference(world)
    dialog.say(text)
    assert dialog.state == ("status", "birth_date", {"reference": REQUEST})
    dialog.say("12/03/1990")
    assert dialog.keys == ["status.found", "menu.main.question"]
    found = dialog.line("status.found").params
    assert found["reference"] == REQUEST
    assert found["status"].key == "status.ready"


def test_an_unknown_reference_still_asks_the_birth_date(world: MemoryWorld) -> None:
    dialog = at_reference(world)
    dialog.say("ABJ-2026-999999")
    assert dialog.step == "status.birth_date"  # nothing tells whether it exists


def test_a_verified_phone_skips_the_birth_date(world: MemoryWorld) -> None:
    dialog = at_reference(world, phone_verified=True)
    dialog.say(REQUEST)
    assert dialog.keys == ["status.found", "menu.main.question"]


def test_another_verified_phone_does_not(world: MemoryWorld) -> None:
    dialog = at_reference(world, phone="+2250701999999", phone_verified=True)
    dialog.say(REQUEST)
    assert dialog.step == "status.birth_date"


@pytest.mark.parametrize("born", ["12/03/1990", "12-3-1990", "12 mars 1990", "12.03.1990"])
def test_birth_date_forms(world: MemoryWorld, born: str) -> None:
    dialog = at_reference(world)
    dialog.say(REQUEST)
    dialog.say(born)
    assert dialog.keys[0] == "status.found"


@pytest.mark.parametrize(
    "born", ["hier", "31/02/1990", "12/03/2090", "1990", "12 mars 99999999999999999999"]
)
def test_an_unreadable_birth_date_is_asked_again(world: MemoryWorld, born: str) -> None:
    dialog = at_reference(world)
    dialog.say(REQUEST)
    dialog.say(born)
    assert dialog.keys == ["status.birth_date.invalid", "status.birth_date.question"]


def test_three_wrong_birth_dates_lock_the_reference(world: MemoryWorld) -> None:
    dialog = at_reference(world)
    dialog.say(REQUEST)
    for wrong in ("01/01/1990", "02/02/1990"):
        dialog.say(wrong)
        assert dialog.keys == ["status.wrong", "status.birth_date.question"]
    dialog.say("03/03/1990")
    assert dialog.keys == ["status.locked", "menu.main.question"]
    dialog.say("2")
    dialog.say(REQUEST)  # even the right answer waits for the lock to end
    assert dialog.keys == ["status.locked", "menu.main.question"]
    assert world.lookup(REQUEST, BIRTH_DATE, None, NOW, sender=1).outcome is LookupOutcome.locked
    # the lock is this sender's: someone else, and the verified owner, still get through
    assert world.lookup(REQUEST, None, None, NOW, sender=2).outcome is (
        LookupOutcome.needs_birth_date
    )
    assert world.lookup(REQUEST, None, "+2250701000001", NOW, sender=3).outcome is (
        LookupOutcome.found
    )
    dialog.wait(minutes=16)
    dialog.say("2")
    dialog.say(REQUEST)
    dialog.say("12/03/1990")
    assert dialog.keys[0] == "status.found"


# -- services and documents, contacts ---------------------------------------------------------


def test_services_and_documents(world: MemoryWorld) -> None:
    dialog = at_menu(world)
    dialog.say("4")
    assert dialog.keys == ["info.service.question"]
    assert dialog.values == [
        "passport",
        "cnib",
        "consular_card",
        "civil_status",
        "legalization",
        "laissez_passer",
        "other",
    ]
    dialog.say("carte consulaire")
    assert dialog.keys == [
        "info.details",
        "service.consular_card.documents",
        "info.fee",
        "info.fee",
        "info.in_person",
        "info.next.question",
    ]
    fees = [line.params for line in dialog.lines if line.key == "info.fee"]
    assert [(f["post"].params["text"], f["fee"].params["text"]) for f in fees] == [
        ("Consulat général, Abidjan", "7 000 FCFA"),
        ("Consulat général, Bouaké", "7 000 FCFA"),
    ]
    assert dialog.values == ["book", "other"]
    dialog.say("2")
    assert dialog.step == "info.service"


def test_fees_are_those_of_the_senders_country(world: MemoryWorld) -> None:
    dialog = at_menu(world, phone="+33612345678")
    dialog.say("4")
    dialog.say("passport")
    fees = [line.params for line in dialog.lines if line.key == "info.fee"]
    assert [f["fee"].params["text"] for f in fees] == ["80 € avec carte consulaire, 160 € sans"]


def test_contacts_and_opening_hours(world: MemoryWorld) -> None:
    dialog = at_menu(world)
    dialog.say("5")
    assert dialog.keys == ["contacts.post.question"]
    assert dialog.values == ["ABJ", "BKE", "PAR", "NYC"]
    dialog.say("abidjn")
    # one line per distinct pattern: "lundi–vendredi 8 h–12 h et 13 h–15 h"
    assert dialog.keys == [
        "contacts.details",
        "contacts.hours.line",
        "contacts.timezone",
        "menu.main.question",
    ]
    text = renderer().render(dialog.line("contacts.hours.line"), "fr")
    assert text == "lundi–vendredi 8 h–12 h et 13 h–15 h"


def test_contacts_reject_other_numbers(world: MemoryWorld) -> None:
    dialog = at_menu(world)
    dialog.say("5")
    dialog.say("9")
    assert dialog.keys == ["common.not_in_list", "contacts.post.question"]


# -- what works at every step -----------------------------------------------------------------

STEP_IDS = [step.id for step in STEPS]


@pytest.mark.parametrize("step", STEPS, ids=STEP_IDS)
@pytest.mark.parametrize("word", ["0", "menu", "Menu", "MENU"])
def test_back_to_the_main_menu_from_every_step(world: MemoryWorld, step: Step, word: str) -> None:
    dialog = reach(step, world)
    dialog.say(word)
    assert dialog.keys == ["menu.main.question"]
    assert dialog.state == ("menu", "main", {})
    assert dialog.values == MENU


@pytest.mark.parametrize("step", STEPS, ids=STEP_IDS)
@pytest.mark.parametrize("word", ["?", "aide", "Aide", "help", " ? "])
def test_help_explains_the_step_and_asks_again(world: MemoryWorld, step: Step, word: str) -> None:
    dialog = reach(step, world)
    before = dialog.state
    dialog.say(word)
    assert dialog.keys == [step.help, *step.asks]
    assert dialog.state == before


@pytest.mark.parametrize("step", STEPS, ids=STEP_IDS)
@pytest.mark.parametrize(
    ("word", "opted_out", "key"),
    [
        ("STOP", True, "common.stopped"),
        ("ARRET", True, "common.stopped"),
        ("ARRÊT", True, "common.stopped"),
        ("arrêt", True, "common.stopped"),
        ("START", False, "common.resumed"),
        ("REPRENDRE", False, "common.resumed"),
    ],
)
def test_stop_and_start_announcements_at_every_step(
    world: MemoryWorld, step: Step, word: str, opted_out: bool, key: str
) -> None:
    dialog = reach(step, world)
    before = dialog.state
    dialog.say(word)
    assert world.opted_out == {1: opted_out}
    assert dialog.keys == [key, *step.asks]
    assert dialog.state == before


@pytest.mark.parametrize("step", STEPS, ids=STEP_IDS)
@pytest.mark.parametrize("kind", [Kind.voice, Kind.photo, Kind.sticker, Kind.location])
def test_what_the_bot_cannot_read_gets_a_kind_answer_and_the_same_step(
    world: MemoryWorld, step: Step, kind: Kind
) -> None:
    dialog = reach(step, world)
    before = dialog.state
    dialog.send(kind)
    if before[0:2] in FREE_TEXT_STEPS:  # no choices: no number asked, the step's hint instead
        assert dialog.keys[0] == "common.cannot_read.text"
        assert dialog.keys[1].endswith(".help")
        assert dialog.keys[2:] == step.asks
    else:
        assert dialog.keys == ["common.cannot_read", *step.asks]
    assert dialog.state == before


FREE_TEXT_STEPS = {("booking", "name"), ("status", "reference"), ("status", "birth_date")}
NOISE = ["", "   ", "🙂🙂🙂", "\x00\x07\x1b[31m", "\u200b\u200f", "zq " * 1700, "😀" * 5000]


@pytest.mark.parametrize("step", STEPS, ids=STEP_IDS)
@pytest.mark.parametrize(
    "text", NOISE, ids=["empty", "spaces", "emoji", "control", "zw", "5000", "emoji5000"]
)
def test_noise_gets_a_kind_answer_and_the_same_step(
    world: MemoryWorld, step: Step, text: str
) -> None:
    dialog = reach(step, world)
    before = dialog.state
    dialog.say(text)
    assert dialog.keys[-1] == step.question
    assert dialog.keys[0] != step.question
    assert dialog.state == before


def test_a_shared_contact_is_acknowledged(world: MemoryWorld) -> None:
    dialog = at_booking_day(world)
    dialog.send(Kind.contact)
    assert dialog.keys == ["common.contact_linked", "booking.day.question"]


# -- expiry ---------------------------------------------------------------------------------


def test_a_conversation_idle_for_30_minutes_restarts_kindly(world: MemoryWorld) -> None:
    dialog = at_booking_day(world)
    dialog.wait(minutes=31)
    dialog.say("2")
    assert dialog.keys == ["common.expired", "menu.main.question"]
    assert dialog.state == ("menu", "main", {})


def test_29_idle_minutes_keep_the_step(world: MemoryWorld) -> None:
    dialog = at_booking_day(world)
    dialog.wait(minutes=29)
    dialog.say("2")
    assert dialog.step == "booking.time"


def test_the_main_menu_never_expires(world: MemoryWorld) -> None:
    dialog = at_menu(world)
    dialog.wait(hours=5)
    dialog.say("1")
    assert dialog.keys == ["booking.post.question"]


def test_expiry_counts_from_the_last_message(world: MemoryWorld) -> None:
    dialog = at_booking_day(world)
    for _ in range(3):
        dialog.wait(minutes=20)
        dialog.say("?")
    dialog.wait(minutes=20)
    dialog.say("2")
    assert dialog.step == "booking.time"


def test_the_state_is_kept_as_json(world: MemoryWorld) -> None:
    dialog = at_confirm(world)
    assert dialog.stored is not None
    assert dialog.stored["flow"] == "booking"
    assert dialog.stored["updated_at"] == NOW.isoformat()
    assert dialog.conversation == dialog.last.state


# -- whole sentences, greetings and thanks (issue 14) -------------------------------------------


def test_a_sentence_at_the_menu_fills_the_booking_and_restates_it(world: MemoryWorld) -> None:
    dialog = at_menu(world)
    dialog.say("Je veux un passeport à Abidjan demain")
    assert dialog.keys == ["booking.time.question_at"]
    assert dialog.state[:2] == ("booking", "time")
    assert dialog.data["post"] == "ABJ"
    assert dialog.data["service"] == "passport"
    assert dialog.data["day"] == "2026-12-02"


def test_what_is_missing_is_asked_with_what_is_understood(world: MemoryWorld) -> None:
    dialog = at_menu(world)
    dialog.say("passeport a abidjan")
    assert dialog.keys == ["booking.day.question_at"]
    text = renderer().render(dialog.line("booking.day.question_at"), "fr")
    assert text == "Passeport à Abidjan : quel jour ?"


def test_a_bare_service_books_it_by_the_lexicons_rule(world: MemoryWorld) -> None:
    dialog = at_menu(world)
    dialog.say("passport")
    assert dialog.keys == ["booking.post.question_for"]
    assert dialog.state == ("booking", "post", {"service": "passport", "understood": True})
    dialog.say("abidjan")
    assert dialog.step == "booking.day"


def test_a_sentence_with_a_free_time_goes_straight_to_the_name(world: MemoryWorld) -> None:
    dialog = at_menu(world)
    dialog.say("rdv cnib abidjan demain a 9h")
    assert dialog.step == "booking.name"
    assert dialog.data["time"] == "2026-12-02T09:00:00+00:00"


def test_a_time_that_is_not_free_offers_the_nearest(world: MemoryWorld) -> None:
    dialog = at_menu(world)
    dialog.say("passeport abidjan demain 7h")
    assert dialog.keys == ["booking.time_unavailable", "booking.time.question_at"]


def test_a_sentence_at_a_booking_step_fills_the_rest(world: MemoryWorld) -> None:
    dialog = at_menu(world)
    dialog.say("1")
    dialog.say("abidjan passeport demain")
    assert dialog.step == "booking.time"
    assert (dialog.data["post"], dialog.data["service"]) == ("ABJ", "passport")


def test_a_request_reference_at_the_menu_is_looked_up(world: MemoryWorld) -> None:
    world.add_request(REQUEST, birth_date=BIRTH_DATE)
    dialog = at_menu(world)
    dialog.say("ou en est mon dossier abj 2026 123")
    assert dialog.state == ("status", "birth_date", {"reference": REQUEST})


def test_cancel_with_a_booking_reference_goes_to_that_appointment(world: MemoryWorld) -> None:
    reference = book_for(world)
    dialog = at_menu(world)
    dialog.say(f"je veux annuler mon rdv {reference}")
    assert dialog.keys == ["appointments.cancel.question"]


def test_cancel_without_a_reference_lists_then_asks_to_confirm(world: MemoryWorld) -> None:
    book_for(world)
    dialog = at_menu(world)
    dialog.say("annuler mon rdv")
    assert dialog.keys == ["appointments.list.question"]
    dialog.say("1")
    assert dialog.keys == ["appointments.cancel.question"]


def test_hours_of_a_named_post(world: MemoryWorld) -> None:
    dialog = at_menu(world)
    dialog.say("horaires du consulat d'abidjan")
    assert dialog.keys[0] == "contacts.details"
    assert dialog.step == "menu.main"


def test_talking_to_a_person_opens_the_desk(world: MemoryWorld) -> None:
    dialog = at_menu(world)
    dialog.say("je veux parler a un agent")
    assert dialog.keys == ["desk.post.question"]  # +225: Abidjan or Bouaké


@pytest.mark.parametrize(
    ("first", "lang"),
    [("dioula", "dyu"), ("Mooré", "mos"), ("english", "en"), ("francais", "fr"), ("peul", "ff")],
)
def test_a_first_message_that_names_a_language_takes_it(
    world: MemoryWorld, first: str, lang: str
) -> None:
    dialog = Dialog(world)
    turn = dialog.say(first)
    assert dialog.keys == ["common.welcome", "menu.main.question"]
    assert turn.lang == lang


@pytest.mark.parametrize("first", ["I ni ce", "i ni cɛ", "Anitché", "I ni sogoma", "Aw ni ce"])
def test_the_everyday_dioula_greetings_take_dioula(world: MemoryWorld, first: str) -> None:
    dialog = Dialog(world)
    turn = dialog.say(first)
    assert dialog.keys == ["common.welcome", "menu.main.question"]
    assert turn.lang == "dyu"


def test_a_french_first_sentence_is_done_once_french_is_chosen(world: MemoryWorld) -> None:
    dialog = Dialog(world)
    dialog.say("Je veux un passeport à Abidjan demain")
    assert dialog.keys == ["common.welcome", "language.choose.question"]
    dialog.say("1")
    assert dialog.keys == ["language.set", "booking.time.question_at"]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("Bonjour", "common.greeted"),
        ("bonsoir monsieur", "common.greeted.evening"),
        ("Ne y yibeoogo", "common.greeted.morning"),
        ("merci", "common.thanked"),
        ("merci beaucoup", "common.thanked"),
        ("thank you", "common.thanked"),
        ("barka", "common.thanked"),
        ("a jaraama", "common.thanked"),
    ],
)
def test_politeness_mid_booking_is_answered_and_the_step_repeated(
    world: MemoryWorld, text: str, key: str
) -> None:
    dialog = at_menu(world)
    dialog.say("1")
    dialog.say("1")
    before = dialog.state
    dialog.say(text)
    assert dialog.keys == [key, "booking.service.question"]
    assert dialog.state == before


def at_name(world: MemoryWorld) -> Dialog:
    dialog = at_menu(world)
    dialog.say("rdv passeport abidjan demain 9h")
    assert dialog.step == "booking.name"
    return dialog


def test_thanks_at_the_name_step_is_no_name(world: MemoryWorld) -> None:
    dialog = at_name(world)
    dialog.say("merci")
    assert dialog.keys == ["common.thanked", "booking.name.question"]


@pytest.mark.parametrize("text", ["🙂", "\x00"])
def test_the_name_step_never_asks_for_a_number(world: MemoryWorld, text: str) -> None:
    dialog = at_name(world)
    dialog.say(text)
    assert dialog.keys == [
        "common.not_understood.text",
        "booking.name.help",
        "booking.name.question",
    ]


def test_a_new_intent_mid_flow_is_followed(world: MemoryWorld) -> None:
    dialog = at_booking_day(world)
    dialog.say("je veux plutot suivre ma demande")
    assert dialog.step == "status.reference"


def test_ok_thanks_at_the_menu_is_answered(world: MemoryWorld) -> None:
    dialog = at_menu(world)
    dialog.say("ok merci")
    assert dialog.keys == ["common.thanked", "menu.main.question"]


def test_a_french_sentence_at_the_language_menu_takes_french(world: MemoryWorld) -> None:
    dialog = Dialog(world)
    dialog.say("Bonjour")
    turn = dialog.say("je veux prendre un rdv")
    assert dialog.step == "booking.post"
    assert turn.lang == "fr"
    assert world.languages == {1: "fr"}


def test_tomorrow_in_a_sentence_is_tomorrow_where_the_post_is(world: MemoryWorld) -> None:
    # 22:00 in New York on Monday 30 November is already Tuesday 1 December in UTC
    late = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    dialog = Dialog(world, phone="+12125550123", now=late, lang="en")
    text = "passport appointment new york tomorrow"
    answer = Answer(text=text, folded=fold(text), number=None, picked=None)
    assert read(dialog.context(), answer).day == date(2026, 12, 1)
    dialog = Dialog(world, phone="+2250701000001", now=late)
    text = "rdv abidjan demain"
    answer = Answer(text=text, folded=fold(text), number=None, picked=None)
    assert read(dialog.context(), answer).day == date(2026, 12, 2)


def test_an_english_first_sentence_is_done_at_once_in_english(world: MemoryWorld) -> None:
    dialog = Dialog(world, phone="+12125550123")
    turn = dialog.say("Hello, I need a passport appointment in New York")
    assert dialog.keys == ["common.welcome", "booking.day.question_at"]
    assert turn.lang == "en"
    assert world.languages == {1: "en"}
