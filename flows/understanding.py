"""Understanding free text: numbers, yes/no, dates, times, intents, options, languages.

Every function takes text already folded (flows.text.fold) and expanded, and the lexicons in
the order to try them (the citizen's language first, then French: loanwords work everywhere).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date, time, timedelta

from rapidfuzz import fuzz, process

from flows.lexicon import Lexicon
from flows.text import contains_phrase

_DIGITS = re.compile(
    r"^(?:n|no|num|numero|choix|option|le|la)?\s*(\d{1,3})\s*(?:er|ere|e|eme|st|nd|rd|th)?$"
)
# folded text has no ":" any more: "14:00" arrives as "14 00"
_TIME = re.compile(
    r"^(?:a\s+|at\s+|vers\s+)?(\d{1,2})\s*(?:h|heures?|hrs?|\s)\s*(\d{2})?\s*(am|pm)?$"
)
_TIME_AMPM = re.compile(r"^(?:at\s+)?(\d{1,2})\s*(am|pm)$")
_NUMERIC_DATE = re.compile(r"^(?:le\s+)?(\d{1,2})\s+(\d{1,2})(?:\s+(\d{2,4}))?$")
_DAY_OF_MONTH = re.compile(r"^(?:le|the|on)\s+(\d{1,2})(?:\s*(?:er|st|nd|rd|th))?$")
_FILLERS = frozenset({"le", "la", "l", "the", "on", "a", "ce", "cette", "this", "pour", "for"})


def _phrases_in(text: str, words: Iterable[str]) -> bool:
    return any(contains_phrase(text, w) for w in words)


def is_one_of(text: str, chain: Sequence[Lexicon], attr: str) -> bool:
    """The whole message is one of the words (menu, help, stop, start) of some language."""
    return any(text in getattr(lex, attr) for lex in chain)


def number(text: str, chain: Sequence[Lexicon]) -> int | None:
    """'2', 'n°2', 'le deuxième', 'a yiibu' → 2. Only when that is the whole message."""
    match = _DIGITS.match(text)
    if match:
        return int(match.group(1))
    for lex in chain:  # the whole phrase first: Mooré counts "a ye", "a yiibu"…
        if text in lex.numbers:
            return lex.numbers[text]
    words = text.split()
    while words and words[0] in _FILLERS:
        words = words[1:]
    phrase = " ".join(words)
    for lex in chain:
        if phrase in lex.numbers:
            return lex.numbers[phrase]
    return None


def yes_no(text: str, chain: Sequence[Lexicon]) -> bool | None:
    """True for yes, False for no, None when unclear. '1' is yes and '2' is no."""
    if text in {"1", "2"}:
        return text == "1"
    # The longest phrase wins, across languages: "pas d accord" (no) holds "d accord" (yes),
    # "not ok" holds "ok"; the shorter phrase then counts in no lexicon of the chain.
    yes = {w for lex in chain for w in lex.yes if contains_phrase(text, w)}
    no = {w for lex in chain for w in lex.no if contains_phrase(text, w)}
    yes_alone = {w for w in yes if not any(w != n and contains_phrase(n, w) for n in no)}
    no_alone = {w for w in no if not any(w != y and contains_phrase(y, w) for y in yes)}
    for lex in chain:
        said_yes = bool(yes_alone & lex.yes)
        said_no = bool(no_alone & lex.no)
        if said_yes != said_no:
            return said_yes
    return None


def intent(text: str, chain: Sequence[Lexicon]) -> str | None:
    """Which main-menu entry a sentence asks for ('je veux un rdv' → 'book')."""
    for lex in chain:
        # longer phrases first: "mes rendez vous" is my_appointments, not book
        found = sorted(
            (
                (len(word), name)
                for name, words in lex.intents.items()
                for word in words
                if contains_phrase(text, word)
            ),
            reverse=True,
        )
        if found:
            return found[0][1]
    return None


def parse_time(text: str) -> time | None:
    """'9h', '9h30', '14:00', '14 h 30', '2pm' → a time of day."""
    match = _TIME.match(text)
    hour: int
    minute = 0
    if match:
        hour, minute = int(match.group(1)), int(match.group(2) or 0)
        ampm = match.group(3)
    else:
        match = _TIME_AMPM.match(text)
        if not match:
            return None
        hour, ampm = int(match.group(1)), match.group(2)
    if ampm == "pm" and hour < 12:
        hour += 12
    if ampm == "am" and hour == 12:
        hour = 0
    if hour > 23 or minute > 59:
        return None
    return time(hour, minute)


def _next_weekday(today: date, weekday: int) -> date:
    ahead = (weekday - today.weekday()) % 7 or 7
    return today + timedelta(days=ahead)


def _in_future(today: date, year: int | None, month: int, day: int) -> date | None:
    """The date with that day and month on or after today (this year or the next)."""
    years = [year] if year else [today.year, today.year + 1]
    for y in years:
        try:
            candidate = date(y, month, day)
        except (ValueError, OverflowError):  # OverflowError: a year of twenty digits
            continue
        if year or candidate >= today:
            return candidate
    return None


def parse_date(text: str, today: date, chain: Sequence[Lexicon]) -> date | None:
    """'demain', 'après-demain', 'lundi', 'lundi prochain', '12/12', '12 décembre', 'le 3'."""
    for lex in chain:
        if text in lex.today:
            return today
        if text in lex.tomorrow:
            return today + timedelta(days=1)
        if text in lex.day_after_tomorrow:
            return today + timedelta(days=2)
    match = _NUMERIC_DATE.match(text)
    if match:
        day, month = int(match.group(1)), int(match.group(2))
        year = int(match.group(3)) if match.group(3) else None
        if year is not None and year < 100:
            year += 2000
        return _in_future(today, year, month, day) if 1 <= month <= 12 else None
    match = _DAY_OF_MONTH.match(text)
    if match:
        day = int(match.group(1))
        month_start = today.replace(day=1)
        for months_ahead in range(3):
            first = (month_start + timedelta(days=32 * months_ahead)).replace(day=1)
            found = _in_future(today, first.year, first.month, day)
            if found and found >= today:
                return found
        return None
    words = [w for w in text.split() if w not in _FILLERS]
    for lex in chain:
        weekday = next((lex.weekdays[w] for w in words if w in lex.weekdays), None)
        month_named = next((lex.months[w] for w in words if w in lex.months), None)
        digits = [int(w) for w in words if w.isdigit()]
        if month_named is not None and digits and 1 <= digits[0] <= 31:
            given_year = digits[1] if len(digits) > 1 and digits[1] > 2000 else None
            return _in_future(today, given_year, month_named, digits[0])
        if weekday is not None and (len(words) == 1 or _phrases_in(text, lex.next) or digits):
            if digits:  # "lundi 7": the 7th, when it is a Monday
                dated = _in_future(today, None, today.month, digits[0])
                if dated is not None and dated.weekday() == weekday:
                    return dated
            return _next_weekday(today, weekday)
    return None


def match_option(
    text: str, labels: Sequence[str], synonyms: Sequence[Iterable[str]] = ()
) -> int | None:
    """The index of the option that the words name ('abidjan', 'passport' for 'Passeport').

    Exact words first (a label or synonym contained in the text, or the text contained in one
    label only), then near-misspellings with rapidfuzz; an ambiguous answer matches nothing.
    """
    if not text or not labels:
        return None
    text_words = text.split()
    hits = [
        i
        for i, label in enumerate(labels)
        if label and (contains_phrase(text, label) or contains_phrase(label, text))
    ]
    for i, words in enumerate(synonyms):
        if any(contains_phrase(text, w) for w in words) and i not in hits:
            hits.append(i)
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        return None
    if len(text) < 3 or text.isdigit():
        return None
    candidates = [(i, label) for i, label in enumerate(labels)]
    candidates += [(i, w) for i, words in enumerate(synonyms) for w in words]
    # a phrase of one to three letters (yes, no, oui, non, en, par…) only matches exactly:
    # fuzzily it is inside too many words ("yesterday" is not "yes", "i know" is not "no")
    candidates = [(i, phrase) for i, phrase in candidates if len(phrase) >= 4]
    scored = process.extract(
        text, [phrase for _, phrase in candidates], scorer=fuzz.WRatio, limit=None, score_cutoff=80
    )
    best: dict[int, float] = {}
    for _phrase, score, position in scored:
        index = candidates[position][0]
        best[index] = max(best.get(index, 0.0), score)
    if not best:
        # each word against each label word, for "pasport" in "Passeport ordinaire"
        for word in text_words:
            if len(word) < 4:
                continue
            for i, label in enumerate(labels):
                if any(fuzz.ratio(word, lw) >= 80 for lw in label.split() if len(lw) >= 4):
                    best[i] = max(best.get(i, 0.0), 80.0)
    if not best:
        return None
    ranked = sorted(best.items(), key=lambda kv: kv[1], reverse=True)
    if len(ranked) > 1 and ranked[0][1] - ranked[1][1] < 5:
        return None
    return ranked[0][0]


def detect_language(text: str, lexicons: Sequence[Lexicon]) -> str | None:
    """The language a first message is clearly written in, from greetings and marker words.

    A French greeting answers "fr"; a bare "ok" or a number answers None.
    """
    scores: dict[str, int] = {}
    for lex in lexicons:
        greeting = any(contains_phrase(text, g) for g in lex.greetings)
        markers = sum(1 for m in lex.markers if contains_phrase(text, m))
        score = (3 if greeting else 0) + markers
        if score:
            scores[lex.language] = score
    if not scores:
        return None
    ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return None
    if ranked[0][1] < 2 and ranked[0][0] != "fr":
        return None  # one stray word is not a language
    return ranked[0][0]
