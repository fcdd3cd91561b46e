"""Contacts and opening hours of a post.

Hours read as people say them: one line per distinct pattern of the day, with the days that
share it ("lundi–vendredi 8 h–12 h et 13 h–15 h", "samedi 9 h–12 h").
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import time
from typing import Any

from flows.choices import WEEKDAY_NAMES, post_options, sorted_posts
from flows.engine import Answer, Ask, Context, Home, Outcome, Stay
from flows.messages import Msg, msg, raw
from flows.world import OpeningHours, PostInfo


def clock(moment: time) -> Msg:
    """'8 h', '8 h 30' (each language its own way)."""
    if moment.minute:
        return msg("contacts.hours.clock_minutes", hour=moment.hour, minute=f"{moment.minute:02d}")
    return msg("contacts.hours.clock", hour=moment.hour)


def _listed(first: Msg, second: Msg) -> Msg:
    return msg("contacts.hours.list", first=first, second=second)  # "lundi, mercredi"


def _and(first: Msg, second: Msg) -> Msg:
    return msg("contacts.hours.and", first=first, second=second)  # "8 h–12 h et 13 h–15 h"


def _joined(parts: list[Msg], join: Callable[[Msg, Msg], Msg]) -> Msg:
    """'a', 'a et b', 'a et b et c' (nested, so that each language says its own 'and')."""
    joined = parts[0]
    for part in parts[1:]:
        joined = join(joined, part)
    return joined


def _runs(weekdays: list[int]) -> list[list[int]]:
    """[0, 1, 2, 4] → [[0, 1, 2], [4]]: consecutive days together."""
    runs: list[list[int]] = []
    for day in sorted(weekdays):
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs


def hours_lines(hours: list[OpeningHours]) -> list[Msg]:
    """One line per distinct pattern of opening intervals, in the order of the week."""
    by_day: dict[int, tuple[tuple[time, time], ...]] = {}
    for h in sorted(hours, key=lambda h: (h.weekday, h.opens)):
        by_day[h.weekday] = (*by_day.get(h.weekday, ()), (h.opens, h.closes))
    patterns: dict[tuple[tuple[time, time], ...], list[int]] = {}
    for day, intervals in sorted(by_day.items()):
        patterns.setdefault(intervals, []).append(day)
    lines: list[Msg] = []
    for intervals, days in patterns.items():
        spans: list[Msg] = []
        for run in _runs(days):
            if len(run) == 1:
                spans.append(WEEKDAY_NAMES[run[0]])
            else:
                first, last = WEEKDAY_NAMES[run[0]], WEEKDAY_NAMES[run[-1]]
                spans.append(msg("contacts.hours.days", first=first, last=last))
        times = [
            msg("contacts.hours.interval", opens=clock(opens), closes=clock(closes))
            for opens, closes in intervals
        ]
        lines.append(
            msg(
                "contacts.hours.line",
                days=_joined(spans, _listed),
                times=_joined(times, _and),
            )
        )
    return lines


class ContactsFlow:
    name = "contacts"

    def ask(self, step: str, ctx: Context, data: dict[str, Any]) -> Ask | Outcome:
        posts = sorted_posts(ctx)
        if not posts:
            return Home(say=(msg("booking.no_posts"),))
        known = ctx.world.post(data["post"]) if data.get("post") else None
        if known is not None:  # named in a sentence: "horaires du consulat d'Abidjan"
            return Home(say=self._details(ctx, known))
        return Ask((msg("contacts.post.question"),), post_options(posts))

    def answer(self, step: str, ctx: Context, data: dict[str, Any], answer: Answer) -> Outcome:
        post = ctx.world.post(answer.picked) if answer.picked else None
        if post is None:
            if answer.number is not None:
                return Stay(say=(msg("common.not_in_list"),))
            return Stay(say=(msg("common.not_understood"),))
        return Home(say=self._details(ctx, post))

    @staticmethod
    def _details(ctx: Context, post: PostInfo) -> tuple[Msg, ...]:
        lines: list[Msg] = [
            msg(
                "contacts.details",
                post=raw(post.name),
                address=raw(post.address or "-"),
                phone=raw(post.phone or "-"),
                email=raw(post.email or "-"),
            )
        ]
        lines.extend(hours_lines(ctx.world.opening_hours(post.code)))
        lines.append(msg("contacts.timezone", timezone=raw(post.timezone)))
        return tuple(lines)

    def help(self, step: str) -> Msg:
        return msg("contacts.post.help")
