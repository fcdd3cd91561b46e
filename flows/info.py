"""Services and the documents to bring, with the fees of the posts in the sender's country."""

from __future__ import annotations

from typing import Any

from flows.choices import SERVICE_DOCUMENTS, service_name, service_options, sorted_posts
from flows.engine import Answer, Ask, Context, Goto, Outcome, Stay
from flows.messages import Msg, Option, msg, raw

NEXT = (
    Option("book", msg("info.next.book")),
    Option("other", msg("info.next.other")),
)


class InfoFlow:
    name = "info"

    def _codes(self, ctx: Context) -> list[str]:
        codes: list[str] = []
        for post in sorted_posts(ctx):
            for offer in ctx.world.services(post.code):
                if offer.code not in codes:
                    codes.append(offer.code)
            if codes:
                break
        return codes

    def ask(self, step: str, ctx: Context, data: dict[str, Any]) -> Ask | Outcome:
        if step == "service":
            return Ask((msg("info.service.question"),), service_options(self._codes(ctx)))
        code = data["service"]
        lines: list[Msg] = [
            msg("info.details", service=service_name(code)),
            SERVICE_DOCUMENTS.get(code, msg("service.other.documents")),
        ]
        posts = sorted_posts(ctx)
        local = [p for p in posts if p.country == ctx.who.country] or posts[:1]
        for post in local:
            fee = next((o.fee_note for o in ctx.world.services(post.code) if o.code == code), "")
            if fee:
                lines.append(msg("info.fee", post=raw(post.name), fee=raw(fee)))
        lines.append(msg("info.in_person"))
        lines.append(msg("info.next.question"))
        return Ask(tuple(lines), NEXT)

    def answer(self, step: str, ctx: Context, data: dict[str, Any], answer: Answer) -> Outcome:
        if step == "service":
            if answer.picked is None:
                return Stay(say=(msg("common.not_understood"),))
            return Goto("info", "details", {"service": answer.picked})
        if answer.picked == "book":
            return Goto("booking", "post", {"service": data["service"]})
        if answer.picked == "other":
            return Goto("info", "service")
        return Stay(say=(msg("common.not_understood"),))

    def help(self, step: str) -> Msg:
        return msg("info.help")
