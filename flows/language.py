"""Choosing the language: 1 Français, 2 Mooré, 3 Dioula, 4 Fulfulde, 5 English.

Opened from the main menu (6), the menu also offers, last, to switch the voice prompts on or
off (the number after the languages: "6 then 6" on the radio); a first contact has the five
languages alone. The keyword VOIX does the same from anywhere (flows.engine).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flows.engine import Answer, Ask, Context, Home, Outcome, Stay, first_sentence, switch_voice
from flows.menu import MenuFlow
from flows.messages import Msg, Option, msg, raw
from flows.text import fold

VOICE = "voice"  # the value of the voice option (a language code never is)


class LanguageFlow:
    name = "language"

    def ask(self, step: str, ctx: Context, data: dict[str, Any]) -> Ask:
        options = []
        for code in ctx.lexicons.languages:  # the five of the contract first, in their order
            name = ctx.lexicons.by_lang[code].name
            options.append(Option(code, raw(name), (fold(name), code)))
        if not data.get("first"):
            options.append(Option(VOICE, self._voice_label(ctx)))
        return Ask(lines=(msg("language.choose.question"),), options=tuple(options))

    @staticmethod
    def _voice_label(ctx: Context) -> Msg:
        if ctx.who.voice is True:
            # i18n: the language menu's last choice when voice prompts are on (keep the icon)
            return msg("language.voice.off")
        # i18n: the language menu's last choice when voice prompts are off (keep the icon)
        return msg("language.voice.on")

    def answer(self, step: str, ctx: Context, data: dict[str, Any], answer: Answer) -> Outcome:
        if answer.picked == VOICE:
            switched = switch_voice(ctx)
            return Home(say=switched.say, voice=switched.voice)
        if answer.picked in ctx.lexicons.by_lang:
            chosen = str(answer.picked)
            if data.get("pending"):  # the first message asked for something: do it now
                routed = first_sentence(MenuFlow(), str(data["pending"]), replace(ctx, lang=chosen))
                if routed is not None:
                    return replace(routed, say=(msg("language.set"), *routed.say), lang=chosen)
            return Home(say=(msg("language.set"),), lang=chosen)
        if answer.number is not None:
            count = len(ctx.lexicons.languages) + (0 if data.get("first") else 1)
            return Stay(say=(msg("common.not_an_option", count=count),))
        return Stay(say=(msg("common.not_understood"),))

    def help(self, step: str) -> Msg:
        return msg("language.choose.help")
