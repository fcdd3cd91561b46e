"""Choices that several flows offer: posts, services, yes/no, and the names of things."""

from __future__ import annotations

from datetime import date

from flows.engine import Context
from flows.messages import Msg, Option, msg, raw
from flows.text import fold
from flows.world import PostInfo

SERVICE_NAMES: dict[str, Msg] = {
    "passport": msg("service.passport"),
    "cnib": msg("service.cnib"),
    "consular_card": msg("service.consular_card"),
    "civil_status": msg("service.civil_status"),
    "legalization": msg("service.legalization"),
    "laissez_passer": msg("service.laissez_passer"),
    "other": msg("service.other"),
}

SERVICE_DOCUMENTS: dict[str, Msg] = {
    "passport": msg("service.passport.documents"),
    "cnib": msg("service.cnib.documents"),
    "consular_card": msg("service.consular_card.documents"),
    "civil_status": msg("service.civil_status.documents"),
    "legalization": msg("service.legalization.documents"),
    "laissez_passer": msg("service.laissez_passer.documents"),
    "other": msg("service.other.documents"),
}

WEEKDAY_NAMES: tuple[Msg, ...] = (
    msg("weekday.monday"),
    msg("weekday.tuesday"),
    msg("weekday.wednesday"),
    msg("weekday.thursday"),
    msg("weekday.friday"),
    msg("weekday.saturday"),
    msg("weekday.sunday"),
)


def service_name(code: str) -> Msg:
    return SERVICE_NAMES.get(code) or raw(code)


def sorted_posts(ctx: Context) -> list[PostInfo]:
    """Posts in the sender's country first (from the phone number), then the others."""
    posts = ctx.world.posts()
    return sorted(posts, key=lambda p: p.country != ctx.who.country)


def post_options(posts: list[PostInfo]) -> tuple[Option, ...]:
    return tuple(
        Option(post.code, raw(post.name), (fold(post.city), fold(post.code))) for post in posts
    )


def service_options(codes: list[str]) -> tuple[Option, ...]:
    return tuple(Option(code, service_name(code), lexicon=("services", code)) for code in codes)


def yes_no_options() -> tuple[Option, ...]:
    return (
        Option("yes", msg("common.yes")),
        Option("no", msg("common.no")),
    )


def day_label(day: date) -> Msg:
    return msg("common.day", day=day)
