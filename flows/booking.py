"""Booking an appointment: post → service → day → time → full name → confirmation.

Fair access: each rule is told at the step where it applies, before the questions it would
waste. A phone at its allowance for a post hears it (and when it lifts) before the service
question; a citizen who already holds an appointment for the service there sees it at once,
with a choice to reschedule it, book for another person (a parent for a child), or go back;
a full name that already holds one, or is at its allowance, hears it at the name step.

The same steps reschedule an appointment: with `reschedule` in the data, post, service and
name are known, and the confirmation moves the appointment instead of booking a new one.

What a sentence already said fills the data before a step is asked ("passeport à Abidjan
demain": `post`, `service`, `want_day`): each question whose answer is known, and valid, is
skipped; a wish that cannot be met (a day that is full) is said, and the question asked.
With `understood` in the data, the questions restate what is known ("Passeport à Abidjan :
quel jour ?").
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flows.appointments import describe
from flows.choices import (
    day_label,
    post_options,
    service_name,
    service_options,
    sorted_posts,
    yes_no_options,
)
from flows.engine import Answer, Ask, Context, Goto, Home, Outcome, Stay
from flows.menu import read
from flows.messages import Msg, Option, msg, raw
from flows.understanding import Understood, parse_date, parse_time, yes_no
from flows.world import AppointmentInfo, BookingOutcome, LimitInfo, LimitKind, SlotOption

# the slot of the data that each step's own answer fills
OWN_SLOT = {"post": "post", "service": "service", "day": "want_day", "time": "want_time"}
DAYS_SHOWN = 6
TIMES_SHOWN = 12
ALTERNATIVES = 4
NAME_MIN, NAME_MAX = 3, 80


def full_name(text: str) -> str | None:
    """A full name as given (letters of any script, accents, apostrophes, hyphens; no digit),
    trimmed; None when it cannot be one. The chat's rule, and the desk's for a walk-in."""
    name = text.strip(" .,;:-")
    letters = sum(ch.isalpha() for ch in name)
    if not (NAME_MIN <= len(name) <= NAME_MAX) or letters < NAME_MIN:
        return None
    return None if any(ch.isdigit() for ch in name) else name


HELP = {
    "post": msg("booking.post.help"),
    "service": msg("booking.service.help"),
    "day": msg("booking.day.help"),
    "time": msg("booking.time.help"),
    "name": msg("booking.name.help"),
    "confirm": msg("booking.confirm.help"),
    "held": msg("booking.held.help"),
    "waitlist": msg("booking.waitlist.help"),
}
WAITLIST_OPTIONS = (
    Option("join", msg("booking.waitlist.join")),
    Option("services", msg("booking.waitlist.services")),
)
HELD_ACTIONS = (
    Option("reschedule", msg("booking.held.reschedule")),
    Option("another", msg("booking.held.another")),
    Option("back", msg("booking.held.back")),
)


def _today(ctx: Context, tz: str) -> date:
    return ctx.now.astimezone(ZoneInfo(tz)).date()


class BookingFlow:
    name = "booking"

    # -- questions ---------------------------------------------------------------------------

    def ask(self, step: str, ctx: Context, data: dict[str, Any]) -> Ask | Outcome:
        return getattr(self, f"_ask_{step}", self._ask_post)(ctx, data)

    def _ask_post(self, ctx: Context, data: dict[str, Any]) -> Ask | Outcome:
        posts = sorted_posts(ctx)
        if not posts:
            return Home(say=(msg("booking.no_posts"),))
        known = data.get("post")
        if known and any(p.code == known for p in posts):
            return Goto("booking", "service", data)
        rest = {k: v for k, v in data.items() if k != "post"}
        if rest.get("service"):
            question = msg("booking.post.question_for", service=service_name(rest["service"]))
            return Ask((question,), post_options(posts))
        return Ask((msg("booking.post.question"),), post_options(posts))

    def _ask_service(self, ctx: Context, data: dict[str, Any]) -> Ask | Outcome:
        offers = ctx.world.services(data["post"])
        if not offers:
            return Goto("booking", "post", say=(msg("booking.no_services"),))
        stopped = self._phone_limit(ctx, data)
        if stopped is not None:
            return stopped
        codes = [offer.code for offer in offers]
        if data.get("service") in codes:
            return Goto("booking", "day", data)
        post = ctx.world.post(data["post"])
        where = raw(post.name if post else data["post"])
        return Ask((msg("booking.service.question", post=where),), service_options(codes))

    def _ask_day(self, ctx: Context, data: dict[str, Any]) -> Ask | Outcome:
        if not data.get("reschedule"):
            stopped = self._phone_limit(ctx, data)
            if stopped is not None:
                return stopped
            if not data.get("another") and self._held(ctx, data) is not None:
                return Goto("booking", "held", data)
        lines: list[Msg] = []
        if data.get("want_day"):  # a day the sentence named: take it if it is open
            want = date.fromisoformat(data["want_day"])
            data = {k: v for k, v in data.items() if k != "want_day"}
            if ctx.world.open_times(data["post"], data["service"], want, ctx.now):
                return Goto("booking", "time", {**data, "day": want.isoformat()})
            nearby = self._days_near(ctx, data, want)
            if nearby:
                data["days"] = [d.isoformat() for d in nearby]
                lines.append(msg("booking.day_unavailable", day=want))
        days = [date.fromisoformat(d) for d in data.get("days") or ()]
        if not days:
            days = ctx.world.open_days(data["post"], data["service"], ctx.now, DAYS_SHOWN)
        window = self._no_show_window(ctx, data)
        if window is not None:  # too many no-shows: said, and only the nearer days
            last = _today(ctx, self._tz(ctx, data)) + timedelta(days=window.window_days or 0)
            days = [d for d in days if d <= last]
            lines.append(
                msg(
                    "booking.limit.no_shows_window",
                    limit=window.limit,
                    days=window.days,
                    window=window.window_days or 0,
                )
            )
        if not days:
            if data.get("reschedule"):
                return Home(say=(msg("booking.no_days"),))
            return Goto("booking", "waitlist", {"post": data["post"], "service": data["service"]})
        options = tuple(Option(d.isoformat(), day_label(d)) for d in days)
        if data.get("understood"):
            question = msg("booking.day.question_at", **self._known(ctx, data))
        else:
            question = msg("booking.day.question", service=service_name(data["service"]))
        return Ask((*lines, question), options)

    def _ask_time(self, ctx: Context, data: dict[str, Any]) -> Ask | Outcome:
        day = date.fromisoformat(data["day"])
        slots = self._slots(ctx, data, day)
        if not slots:
            rest = {k: v for k, v in data.items() if k not in {"day", "days", "times"}}
            return Goto("booking", "day", rest, say=(msg("booking.day_full", day=day),))
        lines: list[Msg] = []
        if data.get("want_time"):  # a time the sentence named: take it if it is free
            want = time.fromisoformat(data["want_time"])
            data = {k: v for k, v in data.items() if k != "want_time"}
            exact = [s for s in slots if s.local.time() == want]
            if exact:
                return self._after_time(data, exact[0].starts_at.isoformat())
            data["times"] = [s.starts_at.isoformat() for s in self._nearest(slots, want)]
            lines.append(msg("booking.time_unavailable", time=want))
        wanted = data.get("times")
        if wanted:
            slots = [s for s in slots if s.starts_at.isoformat() in wanted] or slots
        options = tuple(
            Option(s.starts_at.isoformat(), msg("common.time", time=s.local.time()))
            for s in slots[:TIMES_SHOWN]
        )
        if data.get("understood"):
            question = msg("booking.time.question_at", day=day, **self._known(ctx, data))
        else:
            question = msg("booking.time.question", day=day)
        return Ask((*lines, question), options)

    def _ask_held(self, ctx: Context, data: dict[str, Any]) -> Ask | Outcome:
        held = self._held(ctx, data)
        if held is None:
            return Goto("booking", "day", {**data, "another": True})
        return Ask((msg("booking.held.question", item=describe(held)),), HELD_ACTIONS)

    def _ask_waitlist(self, ctx: Context, data: dict[str, Any]) -> Ask:
        post = ctx.world.post(data["post"])
        question = msg(
            "booking.waitlist.question",
            service=service_name(data["service"]),
            post=raw(post.city if post else data["post"]),
        )
        return Ask((question,), WAITLIST_OPTIONS)

    def _ask_name(self, ctx: Context, data: dict[str, Any]) -> Ask:
        return Ask((msg("booking.name.question"),))

    def _ask_confirm(self, ctx: Context, data: dict[str, Any]) -> Ask | Outcome:
        post = ctx.world.post(data["post"])
        if post is None:
            return Home(say=(msg("booking.no_posts"),))
        local = datetime.fromisoformat(data["time"]).astimezone(ZoneInfo(post.timezone))
        key = "booking.confirm.reschedule" if data.get("reschedule") else "booking.confirm.question"
        summary = msg(
            key,
            service=service_name(data["service"]),
            post=raw(post.name),
            day=local.date(),
            time=local.time(),
            name=raw(data["name"]),
        )
        return Ask((summary,), yes_no_options())

    # -- answers -----------------------------------------------------------------------------

    def answer(self, step: str, ctx: Context, data: dict[str, Any], answer: Answer) -> Outcome:
        handler = getattr(self, f"_on_{step}", None)
        if handler is None:
            return Home()
        if step in OWN_SLOT and answer.number is None:
            merged = self._sentence(step, ctx, data, answer)
            if merged is not None:
                return merged
        return handler(ctx, data, answer)  # type: ignore[no-any-return]

    @staticmethod
    def _sentence(step: str, ctx: Context, data: dict[str, Any], answer: Answer) -> Outcome | None:
        """A sentence that says more than this step asks ("demain à 9h" at the day): all of
        it goes into the data, and the steps it answers are skipped."""
        said: Understood = read(ctx, answer)
        slots = said.slots
        if data.get("reschedule"):  # moving an appointment keeps its post and service
            slots = {k: v for k, v in slots.items() if k not in {"post", "service"}}
        if not set(slots) - {OWN_SLOT[step]}:
            return None
        keep = {k: v for k, v in data.items() if k not in {"days", "times"}}
        if "post" in slots and slots["post"] != keep.get("post"):
            keep = {k: v for k, v in keep.items() if k not in {"day", "time"}}
        if "want_day" in slots:
            keep = {k: v for k, v in keep.items() if k not in {"day", "time"}}
        return Goto("booking", "post", {**keep, **slots, "understood": True})

    @staticmethod
    def _not_understood(answer: Answer, count: int) -> Stay:
        if answer.number is not None:
            return Stay(say=(msg("common.not_an_option", count=count),))
        return Stay(say=(msg("common.not_understood"),))

    def _on_post(self, ctx: Context, data: dict[str, Any], answer: Answer) -> Outcome:
        if answer.picked is None:
            return self._not_understood(answer, len(ctx.world.posts()))
        chosen = {"post": answer.picked}
        wanted = data.get("service")  # set when coming from "services and documents"
        if wanted and wanted in {o.code for o in ctx.world.services(answer.picked)}:
            return Goto("booking", "day", {**chosen, "service": wanted})
        return Goto("booking", "service", chosen)

    def _on_service(self, ctx: Context, data: dict[str, Any], answer: Answer) -> Outcome:
        if answer.picked is None:
            return self._not_understood(answer, len(ctx.world.services(data["post"])))
        return Goto("booking", "day", {"post": data["post"], "service": answer.picked})

    def _on_waitlist(self, ctx: Context, data: dict[str, Any], answer: Answer) -> Outcome:
        if answer.picked == "join":
            return Goto("booking", "name", {**data, "waitlist": True})
        if answer.picked == "services":
            return Goto("booking", "service", {"post": data["post"]})
        return self._not_understood(answer, len(WAITLIST_OPTIONS))

    def _on_held(self, ctx: Context, data: dict[str, Any], answer: Answer) -> Outcome:
        held = self._held(ctx, data)
        if answer.picked == "back":
            return Goto("booking", "service", {"post": data["post"]})
        if answer.picked == "another" or (answer.picked == "reschedule" and held is None):
            return Goto("booking", "day", {**data, "another": True})
        if answer.picked == "reschedule" and held is not None:
            moved = {"post": held.post.code, "service": held.service_code}
            return Goto("booking", "day", {**moved, "name": held.full_name, "reschedule": held.id})
        return self._not_understood(answer, len(HELD_ACTIONS))

    def _on_day(self, ctx: Context, data: dict[str, Any], answer: Answer) -> Outcome:
        post = ctx.world.post(data["post"])
        if post is None:
            return Home()
        rest = {k: v for k, v in data.items() if k != "days"}
        wanted = parse_date(answer.folded, _today(ctx, post.timezone), ctx.chain)
        # a bare number is an option; "le 3" is the 3rd of the month, not the third option
        if answer.picked is not None and (wanted is None or answer.folded.isdigit()):
            return Goto("booking", "time", {**rest, "day": answer.picked})
        if wanted is None:
            return self._not_understood(answer, DAYS_SHOWN)
        if ctx.world.open_times(data["post"], data["service"], wanted, ctx.now):
            return Goto("booking", "time", {**rest, "day": wanted.isoformat()})
        nearby = self._days_near(ctx, data, wanted)
        if not nearby:
            return Home(say=(msg("booking.no_days"),))
        return Stay(
            say=(msg("booking.day_unavailable", day=wanted),),
            data={**rest, "days": [d.isoformat() for d in nearby]},
        )

    def _on_time(self, ctx: Context, data: dict[str, Any], answer: Answer) -> Outcome:
        rest = {k: v for k, v in data.items() if k != "times"}
        if answer.picked is not None:
            return self._after_time(data, answer.picked)
        wanted = parse_time(answer.folded)
        if wanted is None:
            return self._not_understood(answer, TIMES_SHOWN)
        day = date.fromisoformat(data["day"])
        slots = self._slots(ctx, data, day)
        exact = [s for s in slots if s.local.time() == wanted]
        if exact:
            return self._after_time(data, exact[0].starts_at.isoformat())
        nearest = self._nearest(slots, wanted)
        return Stay(
            say=(msg("booking.time_unavailable", time=wanted),),
            data={**rest, "times": [s.starts_at.isoformat() for s in nearest]},
        )

    @staticmethod
    def _after_time(data: dict[str, Any], starts_at: str) -> Outcome:
        chosen = {k: v for k, v in data.items() if k != "times"} | {"time": starts_at}
        known = data.get("reschedule") or data.get("name")  # a lost race keeps the name given
        return Goto("booking", "confirm" if known else "name", chosen)

    def _on_name(self, ctx: Context, data: dict[str, Any], answer: Answer) -> Outcome:
        name = full_name(answer.text)
        if name is None:
            return Stay(say=(msg("booking.name.invalid"),))
        said = read(ctx, answer)
        if said.intent or said.request or said.booking:  # "je veux annuler" is no name
            return Stay(say=(msg("booking.name.invalid"),))
        if not data.get("reschedule"):  # this person's own rules, before the confirmation
            stopped = ctx.world.booking_limit(
                ctx.who.citizen_id, data["post"], data["service"], name, ctx.now
            )
            if stopped is not None and stopped.kind is not LimitKind.no_shows_window:
                return Stay(say=(self._limit_said(ctx, data, stopped),))
        if data.get("waitlist"):
            where = ctx.world.post(data["post"])
            place = ctx.world.join_waitlist(
                ctx.who.citizen_id, data["post"], data["service"], name, ctx.now
            )
            joined = msg(
                "booking.waitlist.joined",
                place=place,
                service=service_name(data["service"]),
                post=raw(where.city if where else data["post"]),
            )
            return Home(say=(joined,))
        return Goto("booking", "confirm", {**data, "name": name})

    def _on_confirm(self, ctx: Context, data: dict[str, Any], answer: Answer) -> Outcome:
        agreed = {"yes": True, "no": False}.get(answer.picked or "")
        if agreed is None:
            agreed = yes_no(answer.folded, ctx.chain)
        if agreed is None:
            return Stay(say=(msg("common.answer_yes_no"),))
        if not agreed:
            return Home(say=(msg("booking.abandoned"),))
        starts_at = datetime.fromisoformat(data["time"])
        who = ctx.who.citizen_id
        if data.get("reschedule"):
            result = ctx.world.reschedule(who, int(data["reschedule"]), starts_at, ctx.now)
        else:
            result = ctx.world.book(
                who, data["post"], data["service"], starts_at, data["name"], ctx.now
            )
        if result.outcome is BookingOutcome.booked and result.appointment is not None:
            booked = result.appointment
            key = "booking.rescheduled" if data.get("reschedule") else "booking.confirmed"
            done = msg(
                key,
                reference=booked.reference,
                service=service_name(booked.service_code),
                post=raw(booked.post.name),
                address=raw(booked.post.address),
                day=booked.local.date(),
                time=booked.local.time(),
            )
            return Home(say=(done,))
        if result.outcome is BookingOutcome.limit_reached:
            return Home(say=(msg("booking.limit_reached"),))
        # taken meanwhile, or no longer bookable: offer the nearest times of that day
        rest = {k: v for k, v in data.items() if k not in {"time", "times"}}
        day = date.fromisoformat(data["day"])
        slots = self._slots(ctx, data, day)
        if not slots:
            return Goto(
                "booking",
                "day",
                {k: v for k, v in rest.items() if k != "day"},
                say=(msg("booking.taken_day_full"),),
            )
        post = ctx.world.post(data["post"])
        lost = starts_at.astimezone(ZoneInfo(post.timezone)).time() if post else time(0)
        nearest = self._nearest(slots, lost)
        return Goto(
            "booking",
            "time",
            {**rest, "times": [s.starts_at.isoformat() for s in nearest]},
            say=(msg("booking.taken"),),
        )

    # -- helpers -----------------------------------------------------------------------------

    @staticmethod
    def _held(ctx: Context, data: dict[str, Any]) -> AppointmentInfo | None:
        """The sender's upcoming appointment for this service at this post, if any."""
        upcoming = ctx.world.upcoming(ctx.who.citizen_id, ctx.now)
        return next(
            (
                a
                for a in upcoming
                if a.post.code == data["post"] and a.service_code == data.get("service")
            ),
            None,
        )

    def _phone_limit(self, ctx: Context, data: dict[str, Any]) -> Outcome | None:
        """The phone's allowance at the post, told before any other question about it."""
        stopped = ctx.world.booking_limit(ctx.who.citizen_id, data["post"], None, None, ctx.now)
        if stopped is None or stopped.kind is LimitKind.no_shows_window:
            return None
        return Home(say=(self._limit_said(ctx, data, stopped),))

    @staticmethod
    def _no_show_window(ctx: Context, data: dict[str, Any]) -> LimitInfo | None:
        if data.get("reschedule"):
            return None
        said = ctx.world.booking_limit(ctx.who.citizen_id, data["post"], None, None, ctx.now)
        return said if said is not None and said.kind is LimitKind.no_shows_window else None

    @staticmethod
    def _tz(ctx: Context, data: dict[str, Any]) -> str:
        post = ctx.world.post(data["post"])
        return post.timezone if post else "UTC"

    @staticmethod
    def _limit_said(ctx: Context, data: dict[str, Any], stopped: LimitInfo) -> Msg:
        if stopped.kind is LimitKind.name_held:
            return msg("booking.limit.name_held")
        post = ctx.world.post(data["post"])
        lifts = stopped.lifts_at or ctx.now
        day = lifts.astimezone(ZoneInfo(post.timezone if post else "UTC")).date()
        if stopped.kind is LimitKind.name:
            return msg("booking.limit.name", limit=stopped.limit, days=stopped.days, day=day)
        if stopped.kind is LimitKind.no_shows:
            return msg("booking.limit.no_shows", limit=stopped.limit, days=stopped.days, day=day)
        return msg("booking.limit.phone", limit=stopped.limit, days=stopped.days, day=day)

    @staticmethod
    def _known(ctx: Context, data: dict[str, Any]) -> dict[str, Msg]:
        """What a sentence said, restated in the question: "Passeport à Abidjan : quel jour ?"."""
        post = ctx.world.post(data["post"])
        return {
            "service": service_name(data["service"]),
            "post": raw(post.city if post else data["post"]),
        }

    @staticmethod
    def _slots(ctx: Context, data: dict[str, Any], day: date) -> list[SlotOption]:
        return ctx.world.open_times(data["post"], data["service"], day, ctx.now)

    @staticmethod
    def _nearest(slots: list[SlotOption], wanted: time) -> list[SlotOption]:
        def distance(slot: SlotOption) -> int:
            t = slot.local.time()
            return abs((t.hour * 60 + t.minute) - (wanted.hour * 60 + wanted.minute))

        return sorted(sorted(slots, key=distance)[:ALTERNATIVES], key=lambda s: s.starts_at)

    @staticmethod
    def _days_near(ctx: Context, data: dict[str, Any], wanted: date) -> list[date]:
        days = ctx.world.open_days(data["post"], data["service"], ctx.now, 40)
        nearest = sorted(days, key=lambda d: abs((d - wanted).days))[:ALTERNATIVES]
        return sorted(nearest)

    def help(self, step: str) -> Msg:
        return HELP.get(step, msg("menu.main.help"))
