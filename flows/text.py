"""Normalisation of what people type: case, accents, special letters, SMS spellings."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from functools import lru_cache

MAX_INPUT = 400  # beyond this nothing is a menu answer; the rest is noise

# Letters of Mooré, Dioula and Fulfulde that a French keyboard lacks, and typographic marks.
_SPECIAL = str.maketrans(
    {
        "ɛ": "e",
        "Ɛ": "e",
        "ɔ": "o",
        "Ɔ": "o",
        "ŋ": "n",
        "Ŋ": "n",
        "ɲ": "ny",
        "Ɲ": "ny",
        "ɓ": "b",
        "Ɓ": "b",
        "ɗ": "d",
        "Ɗ": "d",
        "ƴ": "y",
        "Ƴ": "y",
        "ʼ": "'",
        "’": "'",
        "‘": "'",
        "`": "'",
        "œ": "oe",
        "Œ": "oe",
        "æ": "ae",
        "ß": "ss",
    }
)
_NON_WORD = re.compile(r"[^a-z0-9?]+")
_QUESTION = re.compile(r"\?+")  # "pret?" → "pret ?": the word is a word, the "?" a "?"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\ufeff]")


def clean(text: str) -> str:
    """Visible text as the citizen meant it: control characters gone, spaces collapsed."""
    text = _CONTROL.sub("", text)
    return " ".join(text.split())


@lru_cache(maxsize=8192)  # option labels are folded on every turn: the same few hundred
def fold(text: str) -> str:
    """Lowercase ASCII words separated by single spaces: 'Ɔwɔ, Arrêt!' → 'owo arret'.

    Apostrophes and hyphens separate words ("aujourd'hui" → "aujourd hui"); a lone "?" is
    kept, since it asks for help.
    """
    text = text[:MAX_INPUT].translate(_SPECIAL)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    return " ".join(_QUESTION.sub(" ? ", _NON_WORD.sub(" ", text)).split())


def expand(folded: str, shortcuts: Mapping[str, str]) -> str:
    """Replace SMS spellings word by word ('bjr' → 'bonjour'); shortcuts are folded already."""
    if not shortcuts:
        return folded
    return " ".join(shortcuts.get(word, word) for word in folded.split())


def contains_phrase(folded: str, phrase: str) -> bool:
    """Whether the folded text holds the folded phrase on word boundaries."""
    if not phrase:
        return False
    return f" {phrase} " in f" {folded} "


class PhraseIndex:
    """A fixed set of folded phrases, by first word: which of them a folded text holds on word
    boundaries (what `contains_phrase` says of each), found in one pass over the text's words
    instead of one search per phrase. The last text asked is remembered, as one message is
    asked about several times in a turn."""

    def __init__(self, phrases: Iterable[str]) -> None:
        by_head: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for phrase in set(phrases):
            words = tuple(phrase.split())
            if words:
                by_head.setdefault(words[0], []).append((words, phrase))
        self._by_head = {head: tuple(found) for head, found in by_head.items()}
        self._last: tuple[str, frozenset[str]] = ("", frozenset())

    def found(self, folded: str) -> frozenset[str]:
        last_text, last_found = self._last
        if folded == last_text:
            return last_found
        words = folded.split()
        hits: set[str] = set()
        for i, word in enumerate(words):
            for phrase_words, phrase in self._by_head.get(word, ()):
                if tuple(words[i : i + len(phrase_words)]) == phrase_words:
                    hits.add(phrase)
        found = frozenset(hits)
        self._last = (folded, found)
        return found
