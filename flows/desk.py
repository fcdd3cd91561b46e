"""Talk to a person (menu 7): from the chat to the consular desk and back.

The citizen says what it is about in one message (a photo or a voice note will do); the bot
says who will answer — the post of their appointments or requests, else of their phone's
country, asked when that leaves several or none — and when: now if the post is open, else
the next opening in the post's time zone ("lundi à partir de 8 h, heure d'Abidjan"). From
then on, what they write goes to the desk (`relays`), except `0`/menu and STOP/START (the
engine's). The conversation itself lives in the world (`flows.world.Desk`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flows.choices import WEEKDAY_NAMES, post_options, sorted_posts
from flows.contacts import clock
from flows.engine import Answer, Ask, Context, Goto, Home, Kind, Outcome, Stay
from flows.messages import Msg, msg, raw
from flows.world import OpeningHours, PostInfo

TOPIC_MAX = 2000  # characters of one message kept for the agent


def next_opening(hours: list[OpeningHours], tz: str, now: datetime) -> datetime | None:
    """When the post is next open, in its time zone: `now` itself when it is open now."""
    local = now.astimezone(ZoneInfo(tz))
    for ahead in range(8):
        day = (local + timedelta(days=ahead)).date()
        for h in sorted((h for h in hours if h.weekday == day.weekday()), key=lambda h: h.opens):
            opens = datetime.combine(day, h.opens, tzinfo=local.tzinfo)
            closes = datetime.combine(day, h.closes, tzinfo=local.tzinfo)
            if local < closes:
                return max(opens, local)
    return None


def when_answered(ctx: Context, post: PostInfo) -> Msg:
    """Who answers and when: "Un agent de … vous répond lundi à partir de 8 h (heure de …)"."""
    local_now = ctx.now.astimezone(ZoneInfo(post.timezone))
    opening = next_opening(ctx.world.opening_hours(post.code), post.timezone, ctx.now)
    name, city = raw(post.name), raw(post.city)
    if opening is None:
        return msg("desk.when.later", post=name)
    if opening <= local_now:
        return msg("desk.when.now", post=name)
    if opening.date() == local_now.date():
        day: Msg = msg("desk.when.today")
    elif opening.date() == local_now.date() + timedelta(days=1):
        day = msg("desk.when.tomorrow")
    else:
        day = WEEKDAY_NAMES[opening.weekday()]
    return msg("desk.when.at", post=name, day=day, time=clock(opening.time()), city=city)


class DeskFlow:
    name = "desk"
    takes_media = frozenset({"topic", "chat"})
    relays = frozenset({"chat"})

    def ask(self, step: str, ctx: Context, data: dict[str, Any]) -> Ask | Outcome:
        if step == "start":
            return self._start(ctx, data)
        if step == "topic":
            post = ctx.world.post(str(data.get("post")))
            if post is None:
                return Goto("desk", "start")
            return Ask((msg("desk.topic.question", post=raw(post.name)),))
        return Ask((msg("desk.chat.relayed"),))

    @staticmethod
    def _start(ctx: Context, data: dict[str, Any]) -> Ask | Outcome:
        current = ctx.world.desk_conversation(ctx.who.citizen_id)
        if current is not None:  # back from the menu: the same conversation goes on
            return Goto("desk", "chat", say=(msg("desk.resumed", post=raw(current.post.name)),))
        if data.get("post") and ctx.world.post(str(data["post"])) is not None:
            return Goto("desk", "topic", {"post": data["post"]})
        posts = ctx.world.desk_posts(ctx.who.citizen_id) or [
            post for post in ctx.world.posts() if post.country == ctx.who.country
        ]
        if len(posts) == 1:
            return Goto("desk", "topic", {"post": posts[0].code})
        choices = posts or sorted_posts(ctx)
        if not choices:
            return Home(say=(msg("booking.no_posts"),))
        return Ask((msg("desk.post.question"),), post_options(choices))

    def answer(self, step: str, ctx: Context, data: dict[str, Any], answer: Answer) -> Outcome:
        if step == "start":
            post = ctx.world.post(answer.picked) if answer.picked else None
            if post is None:
                if answer.number is not None:
                    return Stay(say=(msg("common.not_in_list"),))
                return Stay(say=(msg("common.not_understood"),))
            return Goto("desk", "topic", {"post": post.code})
        text = answer.text.strip()[:TOPIC_MAX]
        if answer.kind is Kind.text and not text:
            return Stay(say=(msg("desk.topic.help"),))
        now, citizen = ctx.now, ctx.who.citizen_id
        if step == "topic":
            post = ctx.world.post(str(data.get("post")))
            if post is None:
                return Goto("desk", "start")
            ctx.world.open_desk(citizen, ctx.who.channel, post.code, ctx.lang, now, ctx.recent)
            ctx.world.to_desk(citizen, ctx.who.channel, text, answer.kind, answer.media, now)
            return Goto("desk", "chat", say=(msg("desk.opened"), when_answered(ctx, post)))
        kept = ctx.world.to_desk(citizen, ctx.who.channel, text, answer.kind, answer.media, now)
        if kept is None:  # closed by the agent meanwhile
            return Home(say=(msg("desk.closed"),))
        return Stay()

    def help(self, step: str) -> Msg:
        if step == "start":
            return msg("desk.post.help")
        return msg("desk.topic.help")
