"""The main menu: the seven doors, numbered the same in every language, and whole sentences.

A sentence at the menu ("je veux un passeport à Abidjan demain", "abj 2026 123", "annuler
mon rdv") is understood by flows.understanding and sent through the right door with what it
already says, so that the flow behind skips those questions (`route`).
"""

from __future__ import annotations

from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from flows.choices import sorted_posts
from flows.engine import Answer, Ask, Context, Goto, Outcome, Stay
from flows.messages import Msg, Option, msg
from flows.text import fold
from flows.understanding import Place, Understood, understand
from flows.world import PostInfo

# (value, label, where it leads) — the order is the contract: 1 book … 6 language, 7 a person
ENTRIES: tuple[tuple[str, Msg, tuple[str, str]], ...] = (
    ("book", msg("menu.book"), ("booking", "post")),
    ("track", msg("menu.track"), ("status", "reference")),
    ("my_appointments", msg("menu.my_appointments"), ("appointments", "list")),
    ("info", msg("menu.info"), ("info", "service")),
    ("contacts", msg("menu.contacts"), ("contacts", "post")),
    ("language", msg("menu.language"), ("language", "choose")),
    ("human", msg("menu.talk"), ("desk", "start")),
)
DESTINATIONS = {value: target for value, _label, target in ENTRIES}


def places(ctx: Context) -> tuple[Place, ...]:
    """The posts as a sentence names them: by their city."""
    return tuple(Place(post.code, (fold(post.city),)) for post in ctx.world.posts())


def _today(ctx: Context, post: PostInfo | None) -> date:
    return ctx.now.astimezone(ZoneInfo(post.timezone)).date() if post else ctx.now.date()


def read(ctx: Context, answer: Answer) -> Understood:
    """What the answer says, as a sentence. "Demain" is tomorrow where the citizen is: at the
    post the sentence names, else at the first post of the sender's country."""
    posts = sorted_posts(ctx)
    today = _today(ctx, posts[0] if posts else None)
    said = understand(answer.text, answer.folded, ctx.chain, today, places(ctx))
    if said.post and said.day:
        there = _today(ctx, next((p for p in posts if p.code == said.post), None))
        if there != today:  # New York at 22:00 is already tomorrow in Abidjan
            said = understand(answer.text, answer.folded, ctx.chain, there, places(ctx))
    return said


def wanted(said: Understood, bare_service: str) -> str | None:
    """The intent of a sentence, or what its slots alone ask for.

    A request reference asks for its status, a booking reference for that appointment; a
    service named alone asks what the lexicon's `bare_service` states (book, or documents);
    a post, a day or a time alone asks for an appointment.
    """
    if said.booking and said.intent in {None, "book", "track", "my_appointments"}:
        return "my_appointments"
    if said.intent is not None:
        return said.intent
    if said.request:
        return "track"
    if said.service:
        return bare_service
    if said.post or said.day or said.time:
        return "book"
    return None


def route(ctx: Context, said: Understood) -> Outcome | None:
    """Where a sentence leads, with what it says filled in; None when it asks for nothing."""
    chosen = wanted(said, ctx.lexicon.bare_service)
    if chosen == "book":
        data: dict[str, Any] = dict(said.slots)
        if data:
            data["understood"] = True
        return Goto("booking", "post", data)
    if chosen == "track":
        return Goto("status", "reference", {"given": said.request} if said.request else {})
    if chosen in {"my_appointments", "cancel", "reschedule"}:
        listing: dict[str, Any] = {}
        if chosen != "my_appointments":
            listing["then"] = chosen
        if said.booking:
            listing["reference"] = said.booking
        return Goto("appointments", "list", listing)
    if chosen == "info":
        if said.service:
            return Goto("info", "details", {"service": said.service})
        return Goto("info", "service")
    if chosen == "contacts":
        return Goto("contacts", "post", {"post": said.post} if said.post else {})
    if chosen == "human":  # menu 7: the desk's inbox
        return Goto("desk", "start", {"post": said.post} if said.post else {})
    if chosen == "language":
        return Goto("language", "choose")
    return None


class MenuFlow:
    name = "menu"

    def ask(self, step: str, ctx: Context, data: dict[str, Any]) -> Ask:
        options = tuple(
            Option(value, label, lexicon=("intents", value)) for value, label, _ in ENTRIES
        )
        return Ask(lines=(msg("menu.main.question"),), options=options)

    def answer(self, step: str, ctx: Context, data: dict[str, Any], answer: Answer) -> Outcome:
        if answer.number is not None:
            # the numbers are the contract: they hold even when the menu was not just shown
            # (the chat was brought back to it by the desk closing the conversation)
            picked = answer.picked
            if picked is None and 1 <= answer.number <= len(ENTRIES):
                picked = ENTRIES[answer.number - 1][0]
            if picked in DESTINATIONS:
                flow, first_step = DESTINATIONS[picked]
                return Goto(flow, first_step)
            return Stay(say=(msg("common.not_an_option", count=len(ENTRIES)),))
        # the sentence first: "annuler mon rdv" must not be taken for the "mes rendez-vous" door
        said = read(ctx, answer)
        routed = route(ctx, said)
        if routed is not None:
            return routed
        if answer.picked in DESTINATIONS:
            flow, first_step = DESTINATIONS[answer.picked]
            return Goto(flow, first_step)
        if said.thanks:  # "ok merci" after a booking
            return Stay(say=(msg("common.thanked"),))
        return Stay(say=(msg("common.not_understood"),))

    def help(self, step: str) -> Msg:
        return msg("menu.main.help")
