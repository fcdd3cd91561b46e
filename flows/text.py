"""Normalisation of what people type: case, accents, special letters, SMS spellings."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
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
