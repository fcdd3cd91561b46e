"""How well the bot understands first messages, per language (tests/data/first_messages.yaml).

Each message goes the way a first message or a sentence at the main menu goes in the engine:
a language's name chooses it, greetings and thanks alone are answered, anything else is read
by flows.understanding and sent through a door by flows.menu's rule. What comes out (intent
and slots) must equal the table's line exactly. The accuracy of each language is printed at
the end of the run (`understanding accuracy`) and must reach the table's threshold.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.locales import load_lexicons
from flows.menu import wanted
from flows.text import clean, expand, fold
from flows.understanding import Place, named_language, politeness, understand

TABLE = yaml.safe_load((Path(__file__).parent / "data" / "first_messages.yaml").read_text("utf-8"))
THRESHOLDS: dict[str, float] = TABLE["thresholds"]
LANGS = tuple(THRESHOLDS)
TODAY = date(2026, 12, 1)  # a Tuesday
PLACES = tuple(
    Place(code, (fold(city),))
    for code, city in (
        ("ABJ", "Abidjan"),
        ("BKE", "Bouaké"),
        ("ACC", "Accra"),
        ("LBV", "Libreville"),
        ("PAR", "Paris"),
        ("MIL", "Milan"),
        ("NYC", "New York"),
    )
)
SLOTS = ("service", "post", "day", "time", "request", "booking", "lang")


def interpret(text: str, lang: str) -> dict[str, Any]:
    """What the bot makes of a message, in the table's terms."""
    lexicons = load_lexicons()
    chain = lexicons.chain(lang)
    shortcuts: dict[str, str] = {}
    for lex in reversed(chain):
        shortcuts.update(lex.shortcuts)
    typed = clean(text)
    folded = expand(fold(typed), shortcuts)
    named = named_language(fold(typed), [lexicons.by_lang[c] for c in lexicons.languages])
    if named:
        return {"intent": "language_name", "lang": named}
    greeting, _thanks, only_polite = politeness(folded, chain)
    if only_polite:
        return {"intent": "greeting" if greeting else "thanks"}
    said = understand(typed, folded, chain, TODAY, PLACES)
    found: dict[str, Any] = {"intent": wanted(said, lexicons[lang].bare_service)}
    found |= {"service": said.service, "post": said.post, "request": said.request}
    found |= {"booking": said.booking}
    found["day"] = said.day.isoformat() if said.day else None
    found["time"] = said.time.strftime("%H:%M") if said.time else None
    return {k: v for k, v in found.items() if v is not None}


def expected(row: dict[str, Any]) -> dict[str, Any]:
    wanted_row = {"intent": row["intent"]} if row.get("intent") else {}
    for slot in SLOTS:
        if row.get(slot) is not None:
            value = row[slot]
            wanted_row[slot] = value.isoformat() if isinstance(value, date) else str(value)
    return wanted_row


def mistakes(lang: str) -> list[str]:
    wrong = []
    for row in TABLE[lang]:
        got, want = interpret(row["text"], lang), expected(row)
        if got != want:
            wrong.append(f"  {row['text']!r}: got {got}, expected {want}")
    return wrong


def test_the_table_is_big_enough_and_well_formed() -> None:
    for lang in LANGS:
        rows = TABLE[lang]
        assert len(rows) >= 60, f"{lang}: {len(rows)} messages, at least 60 wanted"
        texts = [row["text"] for row in rows]
        assert len(set(texts)) == len(texts), f"{lang}: a message is there twice"
        for row in rows:
            assert set(row) <= {"text", "intent", *SLOTS}, row


@pytest.mark.parametrize("lang", LANGS)
def test_first_messages_are_understood(lang: str, record_property: Any) -> None:
    wrong = mistakes(lang)
    total = len(TABLE[lang])
    accuracy = (total - len(wrong)) / total
    record_property(
        "understanding_accuracy", f"{lang} {accuracy:.1%} ({total - len(wrong)}/{total})"
    )
    assert accuracy >= THRESHOLDS[lang], (
        f"{lang}: {accuracy:.1%} understood, under {THRESHOLDS[lang]:.0%}:\n" + "\n".join(wrong)
    )
