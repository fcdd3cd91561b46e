"""My appointments: the sender's upcoming appointments, then reschedule, cancel or back."""

from __future__ import annotations

from typing import Any

from flows.choices import service_name, yes_no_options
from flows.engine import Answer, Ask, Context, Goto, Home, Outcome, Stay
from flows.messages import Msg, Option, msg, raw
from flows.understanding import yes_no
from flows.world import AppointmentInfo

HELP = {
    "list": msg("appointments.list.help"),
    "actions": msg("appointments.actions.help"),
    "cancel": msg("appointments.cancel.help"),
}
ACTIONS = (
    Option("reschedule", msg("appointments.action.reschedule")),
    Option("cancel", msg("appointments.action.cancel")),
    Option("back", msg("appointments.action.back")),
)


def describe(appointment: AppointmentInfo) -> Msg:
    return msg(
        "appointments.item",
        reference=appointment.reference,
        service=service_name(appointment.service_code),
        post=raw(appointment.post.city),
        day=appointment.local.date(),
        time=appointment.local.time(),
    )


class AppointmentsFlow:
    name = "appointments"

    def _find(self, ctx: Context, data: dict[str, Any]) -> AppointmentInfo | None:
        wanted = int(data.get("id", 0))
        return next(
            (a for a in ctx.world.upcoming(ctx.who.citizen_id, ctx.now) if a.id == wanted), None
        )

    def ask(self, step: str, ctx: Context, data: dict[str, Any]) -> Ask | Outcome:
        if step == "list":
            upcoming = ctx.world.upcoming(ctx.who.citizen_id, ctx.now)
            if not upcoming:
                return Home(say=(msg("appointments.none"),))
            lines: list[Msg] = []
            wanted = data.get("reference")
            if wanted:  # "annuler RDV-ABC123": straight to that appointment
                found = next((a for a in upcoming if a.reference == wanted), None)
                if found is not None:
                    return self._chosen(ctx, data, found.id)
                lines.append(msg("appointments.reference_unknown", reference=wanted))
            options = tuple(
                Option(str(a.id), describe(a), (a.reference.lower(), a.reference[4:].lower()))
                for a in upcoming
            )
            lines.append(msg("appointments.list.question", count=len(upcoming)))
            return Ask(tuple(lines), options)
        appointment = self._find(ctx, data)
        if appointment is None:
            return Goto("appointments", "list", say=(msg("appointments.gone"),))
        if step == "actions":
            return Ask((msg("appointments.actions.question", item=describe(appointment)),), ACTIONS)
        return Ask(
            (msg("appointments.cancel.question", item=describe(appointment)),), yes_no_options()
        )

    def answer(self, step: str, ctx: Context, data: dict[str, Any], answer: Answer) -> Outcome:
        if step == "list":
            if answer.picked is None:
                return _not_understood(answer)
            return self._chosen(ctx, data, int(answer.picked))
        if step == "actions":
            return self._on_action(ctx, data, answer)
        agreed = {"yes": True, "no": False}.get(answer.picked or "")
        if agreed is None:
            agreed = yes_no(answer.folded, ctx.chain)
        if agreed is None:
            return Stay(say=(msg("common.answer_yes_no"),))
        appointment = self._find(ctx, data)
        if not agreed or appointment is None:
            return Home(say=(msg("appointments.kept"),))
        if ctx.world.cancel(ctx.who.citizen_id, appointment.id, ctx.now):
            return Home(say=(msg("appointments.cancelled", item=describe(appointment)),))
        return Home(say=(msg("appointments.gone"),))

    def _chosen(self, ctx: Context, data: dict[str, Any], appointment_id: int) -> Outcome:
        """An appointment chosen: its actions, or straight the one a sentence asked for."""
        then = data.get("then")
        if then == "cancel":
            return Goto("appointments", "cancel", {"id": appointment_id})
        if then == "reschedule":
            return self._reschedule(ctx, {"id": appointment_id})
        return Goto("appointments", "actions", {"id": appointment_id})

    def _reschedule(self, ctx: Context, data: dict[str, Any]) -> Outcome:
        appointment = self._find(ctx, data)
        if appointment is None:
            return Goto("appointments", "list", say=(msg("appointments.gone"),))
        return Goto(
            "booking",
            "day",
            {
                "post": appointment.post.code,
                "service": appointment.service_code,
                "name": appointment.full_name,
                "reschedule": appointment.id,
            },
        )

    def _on_action(self, ctx: Context, data: dict[str, Any], answer: Answer) -> Outcome:
        if answer.picked == "back":
            return Goto("appointments", "list")
        if answer.picked == "cancel":
            return Goto("appointments", "cancel", data)
        if answer.picked == "reschedule":
            return self._reschedule(ctx, data)
        return _not_understood(answer)

    def help(self, step: str) -> Msg:
        return HELP.get(step, msg("menu.main.help"))


def _not_understood(answer: Answer) -> Stay:
    if answer.number is not None:
        return Stay(say=(msg("common.not_in_list"),))
    return Stay(say=(msg("common.not_understood"),))
