"""The main menu: the six doors, numbered the same in every language."""

from __future__ import annotations

from typing import Any

from flows.engine import Answer, Ask, Context, Goto, Outcome, Stay
from flows.messages import Msg, Option, msg
from flows.understanding import intent

# (value, label, where it leads) — the order is the contract: 1 book … 6 language
ENTRIES: tuple[tuple[str, Msg, tuple[str, str]], ...] = (
    ("book", msg("menu.book"), ("booking", "post")),
    ("track", msg("menu.track"), ("status", "reference")),
    ("my_appointments", msg("menu.my_appointments"), ("appointments", "list")),
    ("info", msg("menu.info"), ("info", "service")),
    ("contacts", msg("menu.contacts"), ("contacts", "post")),
    ("language", msg("menu.language"), ("language", "choose")),
)
DESTINATIONS = {value: target for value, _label, target in ENTRIES}


class MenuFlow:
    name = "menu"

    def ask(self, step: str, ctx: Context, data: dict[str, Any]) -> Ask:
        options = tuple(
            Option(value, label, lexicon=("intents", value)) for value, label, _ in ENTRIES
        )
        return Ask(lines=(msg("menu.main.question"),), options=options)

    def answer(self, step: str, ctx: Context, data: dict[str, Any], answer: Answer) -> Outcome:
        choice = answer.picked or (None if answer.number else intent(answer.folded, ctx.chain))
        if choice in DESTINATIONS:
            flow, first_step = DESTINATIONS[choice]
            return Goto(flow, first_step)
        if answer.number is not None:
            return Stay(say=(msg("common.not_an_option", count=len(ENTRIES)),))
        return Stay(say=(msg("common.not_understood"),))

    def help(self, step: str) -> Msg:
        return msg("menu.main.help")
