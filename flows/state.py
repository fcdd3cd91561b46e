"""The conversation state, as stored between turns (a small JSON object)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class StoredOption:
    """A choice as it was shown: its value, its label folded, and the words that select it."""

    value: str
    label: str
    words: tuple[str, ...] = ()
    lexicon: str = ""  # "services:passport": the lexicons' words for it, looked up on answer


@dataclass(frozen=True)
class Conversation:
    """Where a citizen is: flow and step, what the flow has gathered, the choices last shown.

    `options` holds, for the question last asked, each choice's value and its label as the
    citizen saw it, so that "2" or a word means what was on the screen.
    """

    lang: str | None = None
    flow: str = "menu"
    step: str = "main"
    data: dict[str, Any] = field(default_factory=dict)
    options: tuple[StoredOption, ...] = ()
    updated_at: datetime | None = None
    misses: int = 0  # answers in a row the bot could not understand (flows.engine)
    # what the citizen last typed to the bot, and where ("booking.post"): shown to an agent
    recent: tuple[tuple[str, str], ...] = ()

    def at(self, flow: str, step: str, data: dict[str, Any] | None = None) -> Conversation:
        return replace(self, flow=flow, step=step, data=dict(data or {}), options=())

    def to_json(self) -> dict[str, Any]:
        return {
            "lang": self.lang,
            "flow": self.flow,
            "step": self.step,
            "data": self.data,
            "options": [[o.value, o.label, list(o.words), o.lexicon] for o in self.options],
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            **({"misses": self.misses} if self.misses else {}),
            **({"recent": [list(pair) for pair in self.recent]} if self.recent else {}),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any] | None) -> Conversation | None:
        if not raw:
            return None
        try:
            updated = raw.get("updated_at")
            return cls(
                lang=raw.get("lang"),
                flow=str(raw.get("flow") or "menu"),
                step=str(raw.get("step") or "main"),
                data=dict(raw.get("data") or {}),
                options=tuple(
                    StoredOption(
                        str(o[0]),
                        str(o[1]),
                        tuple(str(w) for w in o[2]),
                        str(o[3] or "") if len(o) > 3 else "",
                    )
                    for o in raw.get("options") or ()
                ),
                updated_at=datetime.fromisoformat(updated) if updated else None,
                misses=int(raw.get("misses") or 0),
                recent=tuple((str(w), str(t)) for w, t in raw.get("recent") or ()),
            )
        except (TypeError, ValueError, IndexError, KeyError):
            return None  # an unreadable state starts over rather than failing the turn
