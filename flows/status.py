"""Where is my request? The reference issued by staff, the date of birth unless the sender's
verified phone is the request's, then the status and what to do next.

Nothing said before verification tells whether a reference exists.
"""

from __future__ import annotations

import math
import re
from datetime import date
from typing import Any

from flows.choices import service_name
from flows.engine import Answer, Ask, Context, Goto, Home, Outcome, Stay
from flows.messages import Msg, msg, raw
from flows.understanding import request_reference
from flows.world import LookupOutcome, LookupResult

REFERENCE = re.compile(r"^([A-Z]{3})[\s\-_/.]*(\d{4})[\s\-_/.]*(\d{1,6})$")
_BIRTH_NUMERIC = re.compile(r"^(\d{1,2})\s+(\d{1,2})\s+(\d{4})$")

STATUS_TEXTS: dict[str, Msg] = {
    "received": msg("status.received"),
    "in_progress": msg("status.in_progress"),
    "ready": msg("status.ready"),
    "delivered": msg("status.delivered"),
    "rejected": msg("status.rejected"),
}
HELP = {"reference": msg("status.reference.help"), "birth_date": msg("status.birth_date.help")}


def normalise_reference(text: str) -> str | None:
    """'abj 2026 123' → 'ABJ-2026-000123'; None when it cannot be a reference."""
    match = REFERENCE.match(text.strip().upper())
    if not match:
        return None
    post, year, serial = match.groups()
    return f"{post}-{year}-{int(serial):06d}"


def parse_birth_date(folded: str, ctx: Context) -> date | None:
    """'12/03/1990', '12-3-1990', '12 mars 1990' (folded: '12 03 1990', '12 mars 1990')."""
    words = folded.split()
    day = month = year = None
    match = _BIRTH_NUMERIC.match(folded)
    if match:
        day, month, year = (int(g) for g in match.groups())
    elif len(words) == 3 and words[0].isdigit() and words[2].isdigit():
        for lex in ctx.chain:
            if words[1] in lex.months:
                day, month, year = int(words[0]), lex.months[words[1]], int(words[2])
                break
    if day is None or month is None or year is None:
        return None
    try:
        born = date(year, month, day)
    except (ValueError, OverflowError):  # OverflowError: a year of twenty digits
        return None
    return born if date(1900, 1, 1) <= born <= ctx.now.date() else None


def note(reason: str) -> Msg:
    """The consulate's note on a request, on a line of its own; nothing when there is none."""
    if not reason.strip():
        return raw("")
    # i18n: the consulate's note on a request (a rejection reason); starts on a new line
    return msg("status.note", reason=raw(reason))


def describe(result: LookupResult) -> Msg:
    request = result.request
    if request is None:
        return msg("status.wrong")
    return msg(
        "status.found",
        reference=request.reference,
        service=service_name(request.service_code),
        post=raw(request.post.name),
        status=STATUS_TEXTS.get(request.status, raw(request.status)),
        note=note(request.reason),
    )


def _verified(ctx: Context) -> str | None:
    return ctx.who.phone if ctx.who.phone_verified else None


def _minutes_left(result: LookupResult, ctx: Context) -> int:
    """Whole minutes until the lock ends, rounded up (at least 1)."""
    if result.locked_until is None:
        return 1
    seconds = (result.locked_until - ctx.now).total_seconds()
    return max(1, math.ceil(seconds / 60))


class StatusFlow:
    name = "status"

    def ask(self, step: str, ctx: Context, data: dict[str, Any]) -> Ask | Outcome:
        if step == "birth_date":
            return Ask((msg("status.birth_date.question"),))
        if data.get("given"):  # the reference came in a sentence: look it up at once
            outcome = self._look_up(ctx, str(data["given"]))
            if isinstance(outcome, Stay):  # a wrong one: said, and the question asked
                return Goto("status", "reference", say=outcome.say)
            return outcome
        return Ask((msg("status.reference.question"),))

    def answer(self, step: str, ctx: Context, data: dict[str, Any], answer: Answer) -> Outcome:
        if step == "birth_date":
            return self._on_birth_date(ctx, data, answer)
        reference = normalise_reference(answer.text) or request_reference(answer.text)
        if reference is None:
            return Stay(say=(msg("status.reference.invalid"),))
        return self._look_up(ctx, reference)

    def _look_up(self, ctx: Context, reference: str) -> Outcome:
        result = ctx.world.lookup(
            reference, None, _verified(ctx), ctx.now, sender=ctx.who.citizen_id
        )
        return self._outcome(result, {"reference": reference}, ctx)

    def _on_birth_date(self, ctx: Context, data: dict[str, Any], answer: Answer) -> Outcome:
        born = parse_birth_date(answer.folded, ctx)
        if born is None:
            return Stay(say=(msg("status.birth_date.invalid"),))
        result = ctx.world.lookup(
            data["reference"], born, _verified(ctx), ctx.now, sender=ctx.who.citizen_id
        )
        return self._outcome(result, data, ctx)

    @staticmethod
    def _outcome(result: LookupResult, data: dict[str, Any], ctx: Context) -> Outcome:
        if result.outcome is LookupOutcome.found:
            return Home(say=(describe(result),))
        if result.outcome is LookupOutcome.locked:
            return Home(say=(msg("status.locked", minutes=_minutes_left(result, ctx)),))
        if result.outcome is LookupOutcome.needs_birth_date:
            return Goto("status", "birth_date", data)
        return Stay(say=(msg("status.wrong"),))

    def help(self, step: str) -> Msg:
        return HELP.get(step, msg("status.reference.help"))
