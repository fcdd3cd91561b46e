"""Contacts and opening hours of a post."""

from __future__ import annotations

from typing import Any

from flows.choices import WEEKDAY_NAMES, post_options, sorted_posts
from flows.engine import Answer, Ask, Context, Home, Outcome, Stay
from flows.messages import Msg, msg, raw


class ContactsFlow:
    name = "contacts"

    def ask(self, step: str, ctx: Context, data: dict[str, Any]) -> Ask | Outcome:
        posts = sorted_posts(ctx)
        if not posts:
            return Home(say=(msg("booking.no_posts"),))
        return Ask((msg("contacts.post.question"),), post_options(posts))

    def answer(self, step: str, ctx: Context, data: dict[str, Any], answer: Answer) -> Outcome:
        post = ctx.world.post(answer.picked) if answer.picked else None
        if post is None:
            if answer.number is not None:
                return Stay(say=(msg("common.not_in_list"),))
            return Stay(say=(msg("common.not_understood"),))
        lines: list[Msg] = [
            msg(
                "contacts.details",
                post=raw(post.name),
                address=raw(post.address or "-"),
                phone=raw(post.phone or "-"),
                email=raw(post.email or "-"),
            )
        ]
        for hours in sorted(ctx.world.opening_hours(post.code), key=lambda h: (h.weekday, h.opens)):
            lines.append(
                msg(
                    "contacts.hours",
                    weekday=WEEKDAY_NAMES[hours.weekday],
                    opens=hours.opens,
                    closes=hours.closes,
                )
            )
        lines.append(msg("contacts.timezone", timezone=raw(post.timezone)))
        return Home(say=tuple(lines))

    def help(self, step: str) -> Msg:
        return msg("contacts.post.help")
