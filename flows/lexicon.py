"""The words of each language that the bot understands, as data (locales/<lang>/lexicon.yaml).

bot/ reads the files and hands them over as mappings; this module only checks and folds them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from flows.text import PhraseIndex, expand, fold

REQUIRED = (
    "language",
    "name",
    "review",
    "greetings",
    "markers",
    "shortcuts",
    "yes",
    "no",
    "menu",
    "help",
    "stop",
    "start",
    "voice",
    "numbers",
    "today",
    "tomorrow",
    "day_after_tomorrow",
    "next",
    "weekdays",
    "months",
    "intents",
    "services",
)
# The main menu's six doors, then what a sentence may ask beyond them (cancel, reschedule,
# talk to a person): flows.intents decides where each one leads.
INTENTS = (
    "book",
    "track",
    "my_appointments",
    "info",
    "contacts",
    "language",
    "cancel",
    "reschedule",
    "human",
)
# Times of day a greeting may belong to ("any" for "bonjour", "salut", "i ni ce"…)
PERIODS = ("any", "morning", "midday", "evening", "night")
# What a message naming only a service (and maybe a post or a day) asks for: each lexicon
# states it as `bare_service`.
BARE_SERVICE = ("book", "info")


class LexiconError(ValueError):
    pass


def _words(values: Iterable[Any], shortcuts: Mapping[str, str] | None = None) -> frozenset[str]:
    """Folded words; with `shortcuts`, also as the engine expands a message ("prendre rdv" is
    compared as "prendre rendez vous" too, since "rdv" in the message is expanded)."""
    folded = {w for w in (fold(str(v)) for v in values if v is not None) if w}
    if shortcuts:
        folded |= {expand(w, shortcuts) for w in folded}
    return frozenset(folded)


def _greeting_periods(raw: Any, language: str, shortcuts: Mapping[str, str]) -> dict[str, str]:
    """Greetings as a list (all "any") or a mapping period → list, folded → period."""
    table = dict(raw) if isinstance(raw, Mapping) else {"any": raw}
    unknown = set(table) - set(PERIODS)
    if unknown:
        raise LexiconError(f"lexicon {language}: greeting periods are {PERIODS}, not {unknown}")
    return {
        word: str(period)
        for period, words in table.items()
        for word in _words(words or (), shortcuts)
    }


@dataclass(frozen=True)
class Lexicon:
    language: str
    name: str
    review: str
    greetings: frozenset[str]
    markers: frozenset[str]
    shortcuts: Mapping[str, str]
    yes: frozenset[str]
    no: frozenset[str]
    menu: frozenset[str]
    help: frozenset[str]
    stop: frozenset[str]
    start: frozenset[str]
    voice: frozenset[str]  # switches the voice prompts on, or off (flows.engine.switch_voice)
    numbers: Mapping[str, int]  # folded word → 1..10
    today: frozenset[str]
    tomorrow: frozenset[str]
    day_after_tomorrow: frozenset[str]
    next: frozenset[str]
    weekdays: Mapping[str, int]  # folded word → 0 (Monday) .. 6
    months: Mapping[str, int]  # folded word → 1..12
    intents: Mapping[str, frozenset[str]]
    services: Mapping[str, frozenset[str]]
    # folded greeting → its time of day (PERIODS); `greetings` holds them all
    greeting_periods: Mapping[str, str] = field(default_factory=dict)
    thanks: frozenset[str] = frozenset()
    # words that may come with a greeting or thanks and ask nothing ("monsieur", "beaucoup")
    polite: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()  # the language's own name, as people spell it
    bare_service: str = "book"
    places: Mapping[str, frozenset[str]] = field(default_factory=dict)  # city → other names
    extra: Mapping[str, Any] = field(default_factory=dict)

    @cached_property
    def polite_heads(self) -> frozenset[str]:
        """The first words of greetings, thanks and polite phrases: a message without any of
        them is no politeness, and is not compared phrase by phrase (every turn asks)."""
        phrases = (*self.greeting_periods, *self.thanks, *self.polite)
        return frozenset(phrase.split()[0] for phrase in phrases)

    @cached_property
    def phrase_index(self) -> PhraseIndex:
        """Every phrase the understanding looks for: greetings, markers, yes and no, intents,
        services, thanks and polite words."""
        return PhraseIndex(
            (
                *self.greetings,
                *self.greeting_periods,
                *self.markers,
                *self.yes,
                *self.no,
                *(word for words in self.intents.values() for word in words),
                *(word for words in self.services.values() for word in words),
                *self.thanks,
                *self.polite,
            )
        )

    def phrases_in(self, folded: str) -> frozenset[str]:
        """This lexicon's phrases that a folded text holds on word boundaries."""
        return self.phrase_index.found(folded)

    @cached_property
    def name_words(self) -> frozenset[str]:
        """Every word of the language's names ("dioula", "kan"): a message without one does
        not name it."""
        return frozenset(word for name in self.names for word in name.split())

    @cached_property
    def polite_longest_first(self) -> tuple[str, ...]:
        return tuple(sorted(self.polite | self.thanks, key=len, reverse=True))

    def words(self, category: str, name: str) -> frozenset[str]:
        """The words of a category ("services", "intents") that name one thing."""
        table: Mapping[str, frozenset[str]] = getattr(self, category, {})
        return table.get(name, frozenset())

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Lexicon:
        missing = [key for key in REQUIRED if key not in raw]
        if missing:
            raise LexiconError(f"lexicon {raw.get('language', '?')}: missing {', '.join(missing)}")
        weekdays = list(raw["weekdays"])
        months = list(raw["months"])
        if len(weekdays) != 7 or len(months) != 12:
            raise LexiconError(f"lexicon {raw['language']}: needs 7 weekdays and 12 months")
        shortcuts = {fold(str(k)): fold(str(v)) for k, v in dict(raw["shortcuts"]).items()}
        periods = _greeting_periods(raw["greetings"], str(raw["language"]), shortcuts)
        bare = str(raw.get("bare_service") or "book")
        if bare not in BARE_SERVICE:
            raise LexiconError(f"lexicon {raw['language']}: bare_service is one of {BARE_SERVICE}")
        numbers: dict[str, int] = {}
        for number, words in dict(raw["numbers"]).items():
            for word in _words(words):
                numbers[word] = int(number)
        return cls(
            language=str(raw["language"]),
            name=str(raw["name"]),
            review=str(raw["review"]),
            greetings=frozenset(periods),
            greeting_periods=periods,
            markers=_words(raw["markers"]),
            shortcuts=shortcuts,
            yes=_words(raw["yes"]),
            no=_words(raw["no"]),
            menu=_words(raw["menu"]),
            help=_words(raw["help"]) | {"?"},
            stop=_words(raw["stop"]),
            start=_words(raw["start"]),
            voice=_words(raw["voice"]),
            numbers=numbers,
            today=_words(raw["today"]),
            tomorrow=_words(raw["tomorrow"]),
            day_after_tomorrow=_words(raw["day_after_tomorrow"]),
            next=_words(raw["next"]),
            weekdays={w: i for i, names in enumerate(weekdays) for w in _words(names)},
            months={w: i + 1 for i, names in enumerate(months) for w in _words(names)},
            intents={k: _words(dict(raw["intents"]).get(k) or (), shortcuts) for k in INTENTS},
            services={str(k): _words(v or (), shortcuts) for k, v in dict(raw["services"]).items()},
            thanks=_words(raw.get("thanks") or (), shortcuts),
            polite=_words(raw.get("polite") or (), shortcuts),
            names=_words([raw["name"], *(raw.get("names") or ())]),
            bare_service=bare,
            places={
                fold(str(k)): _words(v or ()) for k, v in dict(raw.get("places") or {}).items()
            },
        )


@dataclass(frozen=True)
class Lexicons:
    """All languages' lexicons; French words are understood in every language (loanwords)."""

    by_lang: Mapping[str, Lexicon]
    fallback: str = "fr"
    _chains: dict[str | None, tuple[Lexicon, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )
    _shortcuts: dict[str | None, Mapping[str, str]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def __getitem__(self, lang: str) -> Lexicon:
        return self.by_lang.get(lang) or self.by_lang[self.fallback]

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.by_lang)

    def chain(self, lang: str | None) -> tuple[Lexicon, ...]:
        """The user's language first, then French, then the others (words are rarely shared)."""
        cached = self._chains.get(lang)
        if cached is None:
            cached = self._chains[lang] = self._build_chain(lang)
        return cached

    def shortcuts(self, lang: str | None) -> Mapping[str, str]:
        """The SMS spellings of the chain of `lang`, merged once (the user's language wins)."""
        cached = self._shortcuts.get(lang)
        if cached is None:
            merged: dict[str, str] = {}
            for lex in reversed(self.chain(lang)):
                merged.update(lex.shortcuts)
            cached = self._shortcuts[lang] = merged
        return cached

    def _build_chain(self, lang: str | None) -> tuple[Lexicon, ...]:
        first = [lang] if lang is not None and lang in self.by_lang else []
        rest = [self.fallback, *(code for code in self.by_lang if code != self.fallback)]
        return tuple(self.by_lang[c] for c in dict.fromkeys(first + rest))
