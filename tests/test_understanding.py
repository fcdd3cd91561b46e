"""Understanding free text (flows/understanding.py) and normalising it (flows/text.py).

Functions of flows.understanding take folded text, as the engine hands it over: `ask()` folds
and expands SMS spellings the same way, so that the tests read like what people type.
"""

from __future__ import annotations

from datetime import date, time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.locales import load_lexicons
from flows.lexicon import Lexicon
from flows.text import MAX_INPUT, PhraseIndex, clean, contains_phrase, expand, fold
from flows.understanding import (
    Place,
    Understood,
    booking_reference,
    detect_language,
    intent,
    is_one_of,
    match_option,
    named_language,
    number,
    parse_date,
    parse_time,
    politeness,
    request_reference,
    understand,
    yes_no,
)

LEXICONS = load_lexicons()
TODAY = date(2026, 12, 1)  # a Tuesday


def chain(lang: str = "fr") -> tuple[Lexicon, ...]:
    return LEXICONS.chain(lang)


def ask(text: str, lang: str = "fr") -> str:
    """Text as the engine passes it on: folded, SMS spellings of the chain expanded."""
    shortcuts: dict[str, str] = {}
    for lex in reversed(chain(lang)):
        shortcuts.update(lex.shortcuts)
    return expand(fold(clean(text)), shortcuts)


# -- normalisation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "folded"),
    [
        ("Bonjour", "bonjour"),
        ("  ARRÊT ! ", "arret"),
        ("Ɔwɔ, Arrêt!", "owo arret"),
        ("aujourd'hui", "aujourd hui"),
        ("aujourd’hui", "aujourd hui"),
        ("après-demain", "apres demain"),
        ("14:00", "14 00"),
        ("12/12", "12 12"),
        ("n°3", "n 3"),
        ("Ouédraogo", "ouedraogo"),
        ("Ŋ ɲ ɛ ɔ ɓ ɗ ƴ", "n ny e o b d y"),
        ("Œuvre straße", "oeuvre strasse"),
        ("ＡＢＪ ①", "abj 1"),
        ("?", "?"),
        ("Ça va ?", "ca va ?"),
        ("🙂🙂🙂", ""),
        ("\x00\x07\x1b", ""),
        ("", ""),
    ],
)
def test_fold(typed: str, folded: str) -> None:
    assert fold(typed) == folded


def test_fold_stops_at_the_limit() -> None:
    assert len(fold("ab " * 5000)) <= MAX_INPUT


def test_clean_removes_control_characters_and_collapses_spaces() -> None:
    assert clean("  Awa\x00 \u200bOué\u200fdraogo\n\t ") == "Awa Ouédraogo"
    assert clean("\ufeff1") == "1"


@pytest.mark.parametrize(
    ("typed", "expanded"),
    [
        ("bjr", "bonjour"),
        ("slt", "salut"),
        ("stp", "s il te plait"),
        ("svp", "s il vous plait"),
        ("jv 1 rdv dmain", "je veux 1 rendez vous demain"),
        ("Bjr, je veux un RDV stp", "bonjour je veux un rendez vous s il te plait"),
    ],
)
def test_sms_shortcuts_are_expanded(typed: str, expanded: str) -> None:
    assert ask(typed) == expanded


def test_english_shortcuts_in_english() -> None:
    assert ask("appt tmrw pls", "en") == "appointment tomorrow please"


def test_expand_without_shortcuts_changes_nothing() -> None:
    assert expand("bjr stp", {}) == "bjr stp"


def test_contains_phrase_on_word_boundaries() -> None:
    assert contains_phrase("mes rendez vous", "rendez vous")
    assert contains_phrase("ok", "ok")
    assert not contains_phrase("rendezvous", "rendez")
    assert not contains_phrase("bonjour", "jour")
    assert not contains_phrase("abc", "")


# -- numbers and ordinals -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "value"),
    [
        ("2", 2),
        (" 12 ", 12),
        ("n°3", 3),
        ("no 3", 3),
        ("numéro 4", 4),
        ("choix 5", 5),
        ("option 2", 2),
        ("le 2", 2),
        ("1er", 1),
        ("2ème", 2),
        ("3e", 3),
        ("premier", 1),
        ("la première", 1),
        ("le deuxième", 2),
        ("deuxieme", 2),
        ("le troisième", 3),
        ("deux", 2),
        ("dix", 10),
    ],
)
def test_numbers_and_ordinals_in_french(typed: str, value: int) -> None:
    assert number(ask(typed), chain()) == value


@pytest.mark.parametrize(
    ("typed", "value", "lang"),
    [("second", 2, "en"), ("the third", 3, "en"), ("1st", 1, "en"), ("a yiibu", 2, "mos")],
)
def test_numbers_in_other_languages(typed: str, value: int, lang: str) -> None:
    assert number(ask(typed, lang), chain(lang)) == value


@pytest.mark.parametrize("typed", ["", "bonjour", "2 3", "1234", "le deuxième jour", "9h"])
def test_not_a_number(typed: str) -> None:
    assert number(ask(typed), chain()) is None


# -- yes and no -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "meaning"),
    [
        ("1", True),
        ("2", False),
        ("oui", True),
        ("Ouiii", True),
        ("OK", True),
        ("d'accord", True),
        ("dac", True),
        ("je confirme", True),
        ("pas de problème", True),
        ("non", False),
        ("Non merci", False),
        ("pas d'accord", False),
        ("annuler", False),
        ("c'est pas ça", False),
        ("peut-être", None),
        ("oui non", None),
        ("bonjour", None),
        ("3", None),
    ],
)
def test_yes_no_in_french(typed: str, meaning: bool | None) -> None:
    assert yes_no(ask(typed), chain("fr")) is meaning


@pytest.mark.parametrize(
    ("typed", "meaning"),
    [
        ("yes", True),
        ("Yeah sure", True),
        ("ok", True),
        ("that's right", True),
        ("no", False),
        ("nope", False),
        ("no thanks", False),
        ("not ok", False),
        ("not correct", False),
        ("not sure", False),  # the longer phrase: never a yes through "sure"
        ("maybe", None),
    ],
)
def test_yes_no_in_english(typed: str, meaning: bool | None) -> None:
    assert yes_no(ask(typed, "en"), chain("en")) is meaning


@pytest.mark.parametrize("lang", ["fr", "en", "mos", "dyu", "ff"])
def test_a_longer_no_phrase_wins_in_every_language(lang: str) -> None:
    """'pas d'accord' holds 'd'accord' and 'not ok' holds 'ok': neither may confirm."""
    assert yes_no(ask("pas d'accord", lang), chain(lang)) is False
    assert yes_no(ask("not ok", lang), chain(lang)) is False


# -- dates ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "day"),
    [
        ("aujourd'hui", date(2026, 12, 1)),
        ("auj", date(2026, 12, 1)),
        ("demain", date(2026, 12, 2)),
        ("dmain", date(2026, 12, 2)),
        ("après-demain", date(2026, 12, 3)),
        ("apres demain", date(2026, 12, 3)),
        ("lundi", date(2026, 12, 7)),
        ("lundi prochain", date(2026, 12, 7)),
        ("mardi", date(2026, 12, 8)),  # today is Tuesday: the next one
        ("mardi prochain", date(2026, 12, 8)),
        ("vendredi", date(2026, 12, 4)),
        ("lundi 14", date(2026, 12, 14)),
        ("12/12", date(2026, 12, 12)),
        ("12-12", date(2026, 12, 12)),
        ("1/12", date(2026, 12, 1)),
        ("12 décembre", date(2026, 12, 12)),
        ("12 DECEMBRE", date(2026, 12, 12)),
        ("le 3", date(2026, 12, 3)),
        ("le 3 janvier", date(2027, 1, 3)),
        ("3 janvier 2027", date(2027, 1, 3)),
        ("03/01/2027", date(2027, 1, 3)),
        ("3/1/27", date(2027, 1, 3)),
    ],
)
def test_dates_in_french(typed: str, day: date) -> None:
    assert parse_date(ask(typed), TODAY, chain()) == day


@pytest.mark.parametrize(
    ("typed", "day"),
    [
        ("tomorrow", date(2026, 12, 2)),
        ("tmrw", date(2026, 12, 2)),
        ("day after tomorrow", date(2026, 12, 3)),
        ("monday", date(2026, 12, 7)),
        ("next monday", date(2026, 12, 7)),
        ("the 3rd", date(2026, 12, 3)),
        ("december 12", date(2026, 12, 12)),
        ("12 dec", date(2026, 12, 12)),
    ],
)
def test_dates_in_english(typed: str, day: date) -> None:
    assert parse_date(ask(typed, "en"), TODAY, chain("en")) == day


@pytest.mark.parametrize(
    ("today", "typed", "day"),
    [
        (date(2026, 12, 28), "le 3", date(2027, 1, 3)),
        (date(2026, 12, 28), "le 30", date(2026, 12, 30)),
        (date(2026, 12, 28), "12/01", date(2027, 1, 12)),
        (date(2026, 12, 28), "5 janvier", date(2027, 1, 5)),
        (date(2026, 12, 28), "1/12", date(2027, 12, 1)),  # passed this year: next year's
        (date(2026, 12, 31), "demain", date(2027, 1, 1)),
        (date(2026, 12, 30), "lundi", date(2027, 1, 4)),
        (date(2027, 1, 31), "le 30", date(2027, 3, 30)),  # no 30 February
    ],
)
def test_dates_across_the_new_year(today: date, typed: str, day: date) -> None:
    assert parse_date(ask(typed), today, chain()) == day


@pytest.mark.parametrize(
    "typed",
    [
        "bonjour",
        "2",
        "31/02",
        "13/13",
        "0/0",
        "le 32",
        "31 février",
        "3 janvier 100000000000000000000",  # once an OverflowError
        "12 12 99999999999999999999",
    ],
)
def test_not_a_date(typed: str) -> None:
    assert parse_date(ask(typed), TODAY, chain()) is None


def test_a_weekday_with_an_absurd_day_of_month_is_the_next_such_weekday() -> None:
    assert parse_date(ask("lundi 99999999999999999999999"), TODAY, chain()) == date(2026, 12, 7)


# -- times ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "at"),
    [
        ("9h", time(9)),
        ("9H", time(9)),
        ("9h30", time(9, 30)),
        ("9 h 30", time(9, 30)),
        ("09h05", time(9, 5)),
        ("14:00", time(14)),  # folded to "14 00"
        ("14h", time(14)),
        ("14 heures", time(14)),
        ("à 10h", time(10)),
        ("vers 10h30", time(10, 30)),
        ("2pm", time(14)),
        ("2 pm", time(14)),
        ("at 11am", time(11)),
        ("12pm", time(12)),
        ("12am", time(0)),
    ],
)
def test_times(typed: str, at: time) -> None:
    assert fold("14:00") == "14 00"
    assert parse_time(ask(typed)) == at


@pytest.mark.parametrize("typed", ["", "14", "25h", "9h75", "bonjour", "demain", "9h 30 45"])
def test_not_a_time(typed: str) -> None:
    assert parse_time(ask(typed)) is None


# -- intents and commands --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "wanted"),
    [
        ("je veux un rdv", "book"),
        ("rendez vous", "book"),
        ("Bjr jv prendre rdv stp", "book"),
        ("mes rendez-vous", "my_appointments"),  # the longer phrase wins over "rendez-vous"
        ("je veux annuler mon rdv", "cancel"),  # a verb that changes something wins
        ("reporter mon rdv", "reschedule"),
        ("je veux parler à un agent", "human"),
        ("suivi", "track"),
        ("statut de ma demande", "track"),
        ("où en est mon dossier", "track"),
        ("quels documents", "info"),
        ("combien ça coûte", "info"),
        ("horaires d'ouverture", "contacts"),
        ("changer de langue", "language"),
        ("bonjour", None),
        ("", None),
    ],
)
def test_intents_in_french(typed: str, wanted: str | None) -> None:
    assert intent(ask(typed), chain()) == wanted


@pytest.mark.parametrize(
    ("typed", "wanted"),
    [
        ("I want to book an appointment", "book"),
        ("my appointments", "my_appointments"),
        ("check status", "track"),
        ("what documents to bring", "info"),
        ("opening hours", "contacts"),
    ],
)
def test_intents_in_english(typed: str, wanted: str) -> None:
    assert intent(ask(typed, "en"), chain("en")) == wanted


@pytest.mark.parametrize(
    ("typed", "attr"),
    [
        ("menu", "menu"),
        ("Menu principal", "menu"),
        ("aide", "help"),
        ("?", "help"),
        ("help", "help"),
        ("STOP", "stop"),
        ("ARRET", "stop"),
        ("ARRÊT", "stop"),
        ("START", "start"),
        ("REPRENDRE", "start"),
    ],
)
def test_commands(typed: str, attr: str) -> None:
    assert is_one_of(ask(typed), chain(), attr)
    assert is_one_of(ask(typed), chain("en"), attr)


def test_commands_are_whole_messages() -> None:
    assert not is_one_of(ask("stop les annonces de paris"), chain(), "stop")
    assert not is_one_of(ask("le menu du jour"), chain(), "menu")


# -- options --------------------------------------------------------------------------------

POSTS = [
    fold(name)
    for name in (
        "Consulat général, Abidjan",
        "Consulat général, Bouaké",
        "Consulat général, Paris",
        "Consulat général, New York",
    )
]
SERVICES = [
    fold(name)
    for name in (
        "Passeport",
        "CNIB (carte nationale d'identité burkinabè)",
        "Carte consulaire",
        "Actes d'état civil",
        "Légalisation",
        "Laissez-passer",
        "Autre demande",
    )
]


@pytest.mark.parametrize(
    ("typed", "index"),
    [
        ("abidjan", 0),
        ("Abidjan", 0),
        ("abidjn", 0),
        ("bouaké", 1),
        ("bouake", 1),
        ("paris", 2),
        ("New York", 3),
        ("york", 3),
        ("consulat", None),  # all four
        ("xyz", None),
        ("", None),
        ("2", None),  # numbers are not words
    ],
)
def test_posts_by_name_and_misspelling(typed: str, index: int | None) -> None:
    assert match_option(ask(typed), POSTS) == index


@pytest.mark.parametrize(
    ("typed", "index"),
    [
        ("passport", 0),
        ("pasport", 0),
        ("passeprot", 0),
        ("cnib", 1),
        ("carte d'identité", 1),
        ("carte consulaire", 2),
        ("consulaire", 2),
        ("acte de naissance", 3),
        ("legalisation", 4),
        ("laisser passer", 5),
        ("carte", None),  # CNIB or consular card
        ("bonjour", None),
    ],
)
def test_services_by_name_and_misspelling(typed: str, index: int | None) -> None:
    assert match_option(ask(typed), SERVICES) == index


def test_synonyms_select_an_option() -> None:
    synonyms = [("abidjan", "abj"), ("bouake", "bke"), ("paris", "par"), ("new york", "nyc")]
    assert match_option("nyc", POSTS, synonyms) == 3
    assert match_option("bke", POSTS, synonyms) == 1
    passport = LEXICONS["fr"].services["passport"]
    labels = ["service one", "service two"]
    assert match_option(ask("pspt"), labels, [passport, ()]) == 0


@pytest.mark.parametrize("typed", ["yesterday", "i know", "now", "snow", "nonsense", "enfin"])
def test_short_labels_only_match_exactly(typed: str) -> None:
    """Fuzzily, "yes" is inside "yesterday" and "no" inside "i know": that is no answer."""
    assert match_option(ask(typed, "en"), ["yes", "no"]) is None
    assert match_option(ask(typed), ["oui", "non"]) is None
    languages = ["francais", "moore", "dioula", "fulfulde", "english"]
    codes = [("fr",), ("mos",), ("dyu",), ("ff",), ("en",)]
    assert match_option(ask(typed), languages, codes) is None


def test_short_labels_still_match_exactly() -> None:
    assert match_option("yes", ["yes", "no"]) == 0
    assert match_option("no", ["yes", "no"]) == 1
    assert match_option("en", ["francais", "english"], [("fr",), ("en",)]) == 1


def test_an_answer_naming_two_options_matches_none() -> None:
    synonyms = [("abidjan",), ("bouake",), ("paris",), ("new york",)]
    assert match_option("abidjan ou paris", POSTS, synonyms) is None


# -- languages ------------------------------------------------------------------------------

ALL = [LEXICONS.by_lang[code] for code in LEXICONS.languages]


@pytest.mark.parametrize(
    ("typed", "lang"),
    [
        ("Bonjour", "fr"),
        ("bjr", "fr"),
        ("Salam aleykoum", "fr"),
        ("Hello", "en"),
        ("Good morning, I need a passport", "en"),
        ("Ne y yibeoogo", "mos"),
        ("ney yibeogo", "mos"),
        ("I ni sɔgɔma", "dyu"),
        ("Jam waali", "ff"),
        ("ok", None),
        ("2", None),
        ("", None),
        ("🙂", None),
    ],
)
def test_detect_language(typed: str, lang: str | None) -> None:
    assert detect_language(fold(clean(typed)), ALL) == lang


# -- whole sentences ---------------------------------------------------------------------------

PLACES = (
    Place("ABJ", ("abidjan",)),
    Place("BKE", ("bouake",)),
    Place("PAR", ("paris",)),
    Place("NYC", ("new york",)),
)


def said(text: str, lang: str = "fr") -> Understood:
    return understand(text, ask(text, lang), chain(lang), TODAY, PLACES)


def test_a_sentence_gives_its_intent_and_slots() -> None:
    found = said("Bjr, je veux un rdv passeport à Abidjan demain à 9h30 stp")
    assert (found.intent, found.service, found.post) == ("book", "passport", "ABJ")
    assert (found.day, found.time) == (date(2026, 12, 2), time(9, 30))
    assert found.slots == {
        "post": "ABJ",
        "service": "passport",
        "want_day": "2026-12-02",
        "want_time": "09:30",
    }


@pytest.mark.parametrize(
    ("typed", "reference"),
    [
        ("ABJ-2026-000123", "ABJ-2026-000123"),
        ("abj 2026 123", "ABJ-2026-000123"),
        ("mon dossier c'est bke/2026/45 svp", "BKE-2026-000045"),
        ("je veux un rdv demain", None),
        ("le 12 12 2026", None),
    ],
)
def test_request_references_anywhere_in_a_message(typed: str, reference: str | None) -> None:
    assert request_reference(typed) == reference
    found = said(typed)
    if reference:  # its letters and digits are neither a post nor a date
        assert (found.request, found.post, found.day) == (reference, None, None)


@pytest.mark.parametrize(
    ("typed", "reference"),
    [
        ("RDV-7K3M9P", "RDV-7K3M9P"),
        ("annuler rdv 7k3m9p", "RDV-7K3M9P"),
        ("RDVABC123", "RDV-ABC123"),
        ("rdv-abcdeo", "RDV-ABCDE0"),  # O read as 0 (Crockford)
        ("rdv demain", None),  # six letters apart from "rdv" are a word
        ("rdv abidja", None),
    ],
)
def test_booking_references(typed: str, reference: str | None) -> None:
    assert booking_reference(typed) == reference


@pytest.mark.parametrize(
    ("typed", "post"),
    [
        ("rdv a abidjn", "ABJ"),  # a near-misspelling
        ("consulat de New-York", "NYC"),
        ("rdv ny", "NYC"),  # the lexicon's other names (places)
        ("abidjan ou bouake", None),  # two posts: asked
        ("je pars demain", None),
    ],
)
def test_posts_in_a_sentence(typed: str, post: str | None) -> None:
    assert said(typed).post == post


@pytest.mark.parametrize(
    ("typed", "service"),
    [
        ("pasport", "passport"),
        ("la carte consulaire", "consular_card"),
        ("travel document", "laissez_passer"),
        ("passeport et cnib", None),  # two services: asked
    ],
)
def test_services_in_a_sentence(typed: str, service: str | None) -> None:
    assert said(typed, "en" if "travel" in typed else "fr").service == service


@pytest.mark.parametrize(
    ("typed", "day"),
    [
        ("rdv lundi prochain", date(2026, 12, 7)),
        ("pour le 12", date(2026, 12, 12)),
        ("rdv apres demain", date(2026, 12, 3)),
        ("annuler mon rdv", None),  # "mon" is not Monday inside a sentence
        ("2 passeports", None),
        ("sam", date(2026, 12, 5)),  # alone, an abbreviation is a weekday
    ],
)
def test_dates_in_a_sentence(typed: str, day: date | None) -> None:
    assert said(typed).day == day


@pytest.mark.parametrize(
    ("typed", "lang", "period", "thanks", "only"),
    [
        ("Bonjour", "fr", "any", False, True),
        ("bonsoir madame", "fr", "evening", False, True),
        ("merci beaucoup", "fr", None, True, True),
        ("Ne y yibeoogo", "mos", "morning", False, True),
        ("I ni wula", "dyu", "evening", False, True),
        ("a ni ce kosobe", "dyu", None, True, True),  # thanks holding a greeting's words
        ("Jam waali", "ff", "morning", False, True),
        ("good afternoon sir", "en", "midday", False, True),
        ("bonjour je veux un rdv", "fr", "any", False, False),
        ("ok merci", "fr", None, True, False),  # "ok" answers a question
        ("svp", "fr", None, False, False),
    ],
)
def test_politeness(typed: str, lang: str, period: str | None, thanks: bool, only: bool) -> None:
    assert politeness(ask(typed, lang), chain(lang)) == (period, thanks, only)


@pytest.mark.parametrize(
    ("typed", "lang"),
    [
        ("dioula", "dyu"),
        ("Julakan", "dyu"),
        ("en mooré", "mos"),
        ("MOORE", "mos"),
        ("english please", "en"),
        ("Français", "fr"),
        ("peul", "ff"),
        ("je parle dioula et francais", None),
        ("bonjour", None),
    ],
)
def test_a_message_that_names_a_language(typed: str, lang: str | None) -> None:
    lexicons = [LEXICONS.by_lang[code] for code in LEXICONS.languages]
    assert named_language(ask(typed), lexicons) == lang


def test_every_lexicon_states_its_bare_service_rule() -> None:
    for lexicon in LEXICONS.by_lang.values():
        assert lexicon.bare_service in {"book", "info"}


def test_a_reference_of_an_unknown_post_is_none_in_a_sentence() -> None:
    assert said("les 2026 3 passeports").request is None
    assert said("abj 2026 3").request == "ABJ-2026-000003"


@pytest.mark.parametrize(
    ("typed", "moment"),
    [("rdv a 14:30", time(14, 30)), ("vers 9h", time(9, 0)), ("le 12.12.2026", None)],
)
def test_times_in_a_sentence(typed: str, moment: time | None) -> None:
    assert said(typed).time == moment


_WORD = st.sampled_from(["bonjour", "ne", "y", "windiga", "rdv", "passeport", "a", "ni", "ce"])
_PHRASE = st.lists(_WORD, min_size=1, max_size=3).map(" ".join)


@given(phrases=st.lists(_PHRASE, max_size=12), text=st.lists(_WORD, max_size=8).map(" ".join))
def test_the_phrase_index_finds_what_contains_phrase_finds(phrases: list[str], text: str) -> None:
    index = PhraseIndex(phrases)
    expected = {p for p in phrases if contains_phrase(text, p)}
    assert index.found(text) == expected
    assert index.found(text) == expected  # the remembered answer is the same


def test_every_lexicon_phrase_is_found_in_a_sentence_that_holds_it() -> None:
    for lex in load_lexicons().by_lang.values():
        for greeting in lex.greetings:
            assert greeting in lex.phrases_in(f"eh {greeting} toi"), (lex.language, greeting)
