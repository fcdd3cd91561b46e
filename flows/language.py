"""Choosing the language: 1 Français, 2 Mooré, 3 Dioula, 4 Fulfulde, 5 English."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flows.engine import Answer, Ask, Context, Home, Outcome, Stay, first_sentence
from flows.menu import MenuFlow
from flows.messages import Msg, Option, msg, raw
from flows.text import fold


class LanguageFlow:
    name = "language"

    def ask(self, step: str, ctx: Context, data: dict[str, Any]) -> Ask:
        options = []
        for code in ctx.lexicons.languages:  # the five of the contract first, in their order
            name = ctx.lexicons.by_lang[code].name
            options.append(Option(code, raw(name), (fold(name), code)))
        return Ask(lines=(msg("language.choose.question"),), options=tuple(options))

    def answer(self, step: str, ctx: Context, data: dict[str, Any], answer: Answer) -> Outcome:
        if answer.picked in ctx.lexicons.by_lang:
            chosen = str(answer.picked)
            if data.get("pending"):  # the first message asked for something: do it now
                routed = first_sentence(MenuFlow(), str(data["pending"]), replace(ctx, lang=chosen))
                if routed is not None:
                    return replace(routed, say=(msg("language.set"), *routed.say), lang=chosen)
            return Home(say=(msg("language.set"),), lang=chosen)
        if answer.number is not None:
            count = len(ctx.lexicons.languages)
            return Stay(say=(msg("common.not_an_option", count=count),))
        return Stay(say=(msg("common.not_understood"),))

    def help(self, step: str) -> Msg:
        return msg("language.choose.help")
