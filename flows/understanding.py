"""Understanding free text: numbers, yes/no, dates, times, intents, options, languages.

Every function takes text already folded (flows.text.fold) and expanded, and the lexicons in
the order to try them (the citizen's language first, then French: loanwords work everywhere).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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
    yes = {w for lex in chain for w in lex.yes & lex.phrases_in(text)}
    no = {w for lex in chain for w in lex.no & lex.phrases_in(text)}
    yes_alone = {w for w in yes if not any(w != n and contains_phrase(n, w) for n in no)}
    no_alone = {w for w in no if not any(w != y and contains_phrase(y, w) for y in yes)}
    for lex in chain:
        said_yes = bool(yes_alone & lex.yes)
        said_no = bool(no_alone & lex.no)
        if said_yes != said_no:
            return said_yes
    return None


# Which intent wins when a sentence names several: a verb that changes something (cancel,
# reschedule, talk to a person, change language) over a thing to look at (track, documents,
# hours, my appointments), over booking, which "rdv" alone suggests. Inside a tier, the
# longest phrase wins ("mes rendez vous" over "rendez vous"), then the user's language.
_INTENT_TIERS = {
    "cancel": 2,
    "reschedule": 2,
    "human": 2,
    "language": 2,
    "track": 1,
    "info": 1,
    "contacts": 1,
    "my_appointments": 1,
    "book": 0,
}


def intent(text: str, chain: Sequence[Lexicon]) -> str | None:
    """The intent a sentence asks for: 'je veux un rdv' → book, 'annuler mon rdv' → cancel.

    A phrase inside a longer service name asks for nothing: "travel document" is a service,
    not a question about documents.
    """
    services = [
        word
        for lex in chain
        for words in lex.services.values()
        for word in words & lex.phrases_in(text)
        if " " in word
    ]
    found: list[tuple[int, int, int, str]] = []
    for rank, lex in enumerate(chain):
        held = lex.phrases_in(text)
        for name, words in lex.intents.items():
            for word in words & held:
                if any(len(s) > len(word) and contains_phrase(s, word) for s in services):
                    continue
                found.append((_INTENT_TIERS.get(name, 0), len(word), -rank, name))
    return max(found)[3] if found else None


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
        held = lex.phrases_in(text)
        greeting = not lex.greetings.isdisjoint(held)
        markers = len(lex.markers & held)
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


# -- whole sentences --------------------------------------------------------------------------

# A request reference as staff issue it: ABJ-2026-000123, typed "abj 2026 123", "ABJ/2026/123"
_REQUEST_REF = re.compile(r"\b([A-Za-z]{3})[\s\-_/.]*((?:19|20)\d{2})[\s\-_/.]*(\d{1,6})\b")
# A booking reference: RDV- and 6 characters of Crockford base32 (O read as 0, I and L as 1).
# Written apart from "RDV" ("rdv demain"), the 6 characters must hold a digit.
_BOOKING_REF = re.compile(r"\bRDV(?:[\-_.]?([0-9A-Z]{6})|\s+((?=[A-Z]*\d)[0-9A-Z]{6}))\b", re.I)
_CROCKFORD = str.maketrans({"O": "0", "I": "1", "L": "1"})
# 14:30, 9.30; not inside a date ("12.12.2026", "12/12")
_CLOCK = re.compile(r"(?<![\d./:-])\b([01]?\d|2[0-3])[:.]([0-5]\d)\b(?![./:-]\d)")
_HOUR = re.compile(r"\b(\d{1,2})\s*(?:h|heures?|hrs?)\s*(\d{2})?\b|\b(\d{1,2})\s*(am|pm)\b")
_SERVICE_FUZZ = 88  # "pasport" is a passport (93), "passer" is not (86 against "passepor")
_SHORT_WEEKDAY = 4  # "sam", "mar", "jeu": a weekday only when they are the whole message
POLITE_FILLERS = frozenset({"et", "and", "a", "vous", "you", "aussi", "too", "encore", "!"})


@dataclass(frozen=True)
class Place:
    """A post as a sentence may name it: its code and the folded names of its city."""

    code: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class Understood:
    """What one message says, every part optional."""

    intent: str | None = None
    service: str | None = None
    post: str | None = None
    day: date | None = None
    time: time | None = None
    request: str | None = None  # ABJ-2026-000123
    booking: str | None = None  # RDV-ABC123
    greeting: str | None = None  # the greeting's time of day (lexicon PERIODS), if one
    thanks: bool = False
    only_polite: bool = False  # nothing but greetings, thanks and polite words

    @property
    def slots(self) -> dict[str, str]:
        """The booking's slots that the message fills, as the booking flow stores them."""
        found: dict[str, str] = {}
        if self.post:
            found["post"] = self.post
        if self.service:
            found["service"] = self.service
        if self.day:
            found["want_day"] = self.day.isoformat()
        if self.time:
            found["want_time"] = self.time.strftime("%H:%M")
        return found


def request_reference(text: str, posts: Iterable[str] = ()) -> str | None:
    """'abj 2026 123', 'ABJ-2026-000123' anywhere in the message → 'ABJ-2026-000123'.

    With `posts` (their codes), only a reference of one of them counts: "les 2026 3" is none.
    """
    known = {code.upper() for code in posts}
    for match in _REQUEST_REF.finditer(text):
        post, year, serial = match.groups()
        if not known or post.upper() in known:
            return f"{post.upper()}-{year}-{int(serial):06d}"
    return None


def booking_reference(text: str) -> str | None:
    """'RDV-ABC123', 'rdv abc123', 'RDVABC123' → 'RDV-ABC123' (Crockford: O→0, I/L→1)."""
    match = _BOOKING_REF.search(text)
    if not match:
        return None
    code = (match.group(1) or match.group(2)).upper().translate(_CROCKFORD)
    if any(ch in "U" for ch in code):
        return None
    return f"RDV-{code}"


def _time_in(text: str, folded: str) -> tuple[time | None, str]:
    """A time of day written in the sentence, and the folded text without it."""
    match = _CLOCK.search(text)
    if match:
        hour, minute = int(match.group(1)), int(match.group(2))
        rest = folded.replace(f"{match.group(1)} {match.group(2)}", " ", 1)
        return time(hour, minute), " ".join(rest.split())
    match = _HOUR.search(folded)
    if not match:
        return None, folded
    if match.group(1):
        hour, minute = int(match.group(1)), int(match.group(2) or 0)
    else:
        hour, minute = int(match.group(3)), 0
        if match.group(4) == "pm" and hour < 12:
            hour += 12
        if match.group(4) == "am" and hour == 12:
            hour = 0
    rest = " ".join((folded[: match.start()] + " " + folded[match.end() :]).split())
    if hour > 23 or minute > 59:
        return None, rest
    return time(hour, minute), rest


def _date_in(folded: str, today: date, chain: Sequence[Lexicon]) -> date | None:
    """The first date the words hold: 'demain', 'lundi prochain', 'le 12', '12 decembre'."""
    words = folded.split()
    for start in range(len(words)):
        for size in (3, 2, 1):
            window = words[start : start + size]
            if len(window) < size:
                continue
            meant = [w for w in window if w not in _FILLERS]  # "a mon": "mon" alone
            if len(meant) == 1 and len(words) > 1 and len(meant[0]) < _SHORT_WEEKDAY:
                if any(meant[0] in lex.weekdays for lex in chain):
                    continue  # "mon", "sam", "mar" are weekdays only as the whole message
                if size == 1 and meant[0].isdigit():
                    continue  # "2 passeports": a number, not a date ("le 12" is one)
            found = parse_date(" ".join(window), today, chain)
            if found is not None:
                return found
    return None


def _service_in(folded: str, chain: Sequence[Lexicon]) -> str | None:
    """The one service the words name; two different ones name none (it is asked)."""
    hits: dict[str, int] = {}
    phrases: list[tuple[str, str]] = []
    for lex in chain:
        held = lex.phrases_in(folded)
        for code, words in lex.services.items():
            phrases.extend((word, code) for word in words & held)
    # a phrase inside a longer one found ("carte" in "carte consulaire") does not count
    for word, code in phrases:
        if not any(w != word and contains_phrase(w, word) for w, _ in phrases):
            hits[code] = max(hits.get(code, 0), len(word))
    if not hits:
        for typed in folded.split():
            if len(typed) < 6:
                continue
            for lex in chain:
                for code, words in lex.services.items():
                    if any(
                        len(w) >= 6 and " " not in w and fuzz.ratio(typed, w) >= _SERVICE_FUZZ
                        for w in words
                    ):
                        hits[code] = len(typed)
    return next(iter(hits)) if len(hits) == 1 else None


def _post_in(folded: str, places: Sequence[Place], chain: Sequence[Lexicon]) -> str | None:
    """The one post whose city the words name ('abidjan', 'new york', 'abidjn')."""
    found: set[str] = set()
    words = folded.split()
    for place in places:
        names = set(place.names)
        for lex in chain:
            for name in place.names:
                names |= lex.places.get(name, frozenset())
        if any(contains_phrase(folded, name) for name in names):
            found.add(place.code)
            continue
        for name in names:
            size = len(name.split())
            grams = [" ".join(words[i : i + size]) for i in range(len(words) - size + 1)]
            if len(name) >= 5 and any(len(g) >= 5 and fuzz.ratio(g, name) >= 85 for g in grams):
                found.add(place.code)
                break
    return next(iter(found)) if len(found) == 1 else None


def politeness(folded: str, chain: Sequence[Lexicon]) -> tuple[str | None, bool, bool]:
    """(greeting's period, thanks, only politeness) of a folded message."""
    words = set(folded.split())
    if not any(words & lex.polite_heads for lex in chain):
        return None, False, False
    greeting: tuple[int, str] | None = None
    thanks = 0  # the length of the longest thanks phrase
    polite: set[str] = set()
    for lex in chain:
        held = lex.phrases_in(folded)
        for word, period in lex.greeting_periods.items():
            if word in held:
                polite.add(word)
                if greeting is None or len(word) > greeting[0]:
                    greeting = (len(word), period)
        for word in lex.thanks & held:
            polite.add(word)
            thanks = max(thanks, len(word))
        polite |= lex.polite & held
    if greeting is not None and thanks > greeting[0]:
        greeting = None  # "a ni ce kosobe": thanks that hold a greeting's words
    rest = f" {folded} "
    for phrase in sorted(polite, key=len, reverse=True):
        rest = rest.replace(f" {phrase} ", " ")
    only = (greeting is not None or thanks > 0) and all(w in POLITE_FILLERS for w in rest.split())
    return (greeting[1] if greeting else None), thanks > 0, only


def understand(
    text: str,
    folded: str,
    chain: Sequence[Lexicon],
    today: date,
    places: Sequence[Place] = (),
) -> Understood:
    """Everything one message says: intent, service, post, day, time, references, politeness.

    `text` is the message as typed (references keep their shape there), `folded` the same
    folded and expanded. The intent is the one a phrase names; flows.menu decides what a
    message without one asks for (a bare service: the lexicon's `bare_service`).
    """
    greeting, thanks, only_polite = politeness(folded, chain)
    if only_polite:  # "bonjour", "merci beaucoup": every word is politeness, nothing asked
        return Understood(greeting=greeting, thanks=thanks, only_polite=True)
    request = request_reference(text, (place.code for place in places))
    booking = booking_reference(text)
    rest = folded
    if request:  # the reference's letters and digits are no post nor date
        post_code, year, serial = request.split("-")
        for part in (post_code.lower(), year, serial.lstrip("0") or "0", serial):
            rest = f" {rest} ".replace(f" {part} ", " ")
        rest = " ".join(rest.split())
    if booking:
        rest = " ".join(w for w in rest.split() if w != booking[4:].lower())
    moment, rest = _time_in(text, rest)
    return Understood(
        intent=intent(folded, chain),
        service=_service_in(rest, chain),
        post=_post_in(rest, places, chain),
        day=_date_in(rest, today, chain),
        time=moment,
        request=request,
        booking=booking,
        greeting=greeting,
        thanks=thanks,
        only_polite=only_polite,
    )


def named_language(folded: str, lexicons: Sequence[Lexicon]) -> str | None:
    """The language a message names and nothing else: 'dioula', 'en mooré', 'english please'."""
    words = [w for w in folded.split() if w not in _LANGUAGE_FILLERS]
    phrase = " ".join(words)
    if not phrase or len(words) > _NAME_WORDS:
        return None
    if not any(lex.name_words.intersection(words) for lex in lexicons):
        return None
    for lex in lexicons:
        for word in lex.polite_longest_first:
            phrase = " ".join(f" {phrase} ".replace(f" {word} ", " ").split())
    found = [lex.language for lex in lexicons if phrase in lex.names]
    return found[0] if len(found) == 1 else None


_NAME_WORDS = 5  # "dioula s il vous plait": a longer message is not a language's name
_LANGUAGE_FILLERS = frozenset(
    {
        "en",
        "in",
        "le",
        "l",
        "langue",
        "language",
        "parler",
        "speak",
        "je",
        "i",
        "veux",
        "want",
        "choisir",
        "choose",
        "pour",
        "moi",
        "me",
        "ok",
    }
)
