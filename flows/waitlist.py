"""A waitlist offer: a seat held for the citizen first in line, told by message; "1" takes it,
"2" leaves it to the next. The conversation is put on this step by the back office when the
offer is made (api.domain.waitlist), with `entry` and `until` (the offer holds till then)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from flows.choices import service_name, yes_no_options
from flows.engine import Answer, Ask, Context, Home, Outcome, Stay
from flows.messages import Msg, msg, proof_of, raw
from flows.understanding import yes_no
from flows.world import BookingOutcome


class WaitlistFlow:
    name = "waitlist"

    def ask(self, step: str, ctx: Context, data: dict[str, Any]) -> Ask | Outcome:
        offer = ctx.world.waitlist_offer(ctx.who.citizen_id, int(data.get("entry", 0)), ctx.now)
        if offer is None:
            return Home(say=(msg("waitlist.offer.gone"),))
        until = offer.expires_at.astimezone(ZoneInfo(offer.post.timezone))
        question = msg(
            "waitlist.offer.question",
            service=service_name(offer.service_code),
            post=raw(offer.post.name),
            day=offer.local.date(),
            time=offer.local.time(),
            until=until.time(),
        )
        return Ask((question,), yes_no_options())

    def answer(self, step: str, ctx: Context, data: dict[str, Any], answer: Answer) -> Outcome:
        agreed = {"yes": True, "no": False}.get(answer.picked or "")
        if agreed is None and answer.number in (1, 2):
            agreed = answer.number == 1
        if agreed is None:
            agreed = yes_no(answer.folded, ctx.chain)
        if agreed is None:
            return Stay(say=(msg("common.answer_yes_no"),))
        entry = int(data.get("entry", 0))
        result = ctx.world.answer_offer(ctx.who.citizen_id, entry, agreed, ctx.now)
        if not agreed:
            return Home(say=(msg("waitlist.offer.declined"),))
        booked = result.appointment
        if result.outcome is BookingOutcome.limit_reached:
            return Home(say=(msg("booking.limit_reached"),))
        if result.outcome is not BookingOutcome.booked or booked is None:
            return Home(say=(msg("waitlist.offer.gone"),))
        done = msg(
            "booking.confirmed",
            reference=booked.reference,
            service=service_name(booked.service_code),
            post=raw(booked.post.name),
            address=raw(booked.post.address),
            day=booked.local.date(),
            time=booked.local.time(),
        )
        # i18n: under a booking's confirmation, when its QR code image comes with it
        return Home(say=(done, msg("booking.proof")), attach=(proof_of(booked.reference),))

    def help(self, step: str) -> Msg:
        return msg("waitlist.offer.help")
