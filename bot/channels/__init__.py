"""Channels: each module turns one provider's raw payloads into `bot.runtime.Inbound`, renders
replies into that provider's format, and sends through a client injected at construction.

- `telegram`  — python-telegram-bot (the only module that imports `telegram`)
- `whatsapp`  — Twilio (the only module that imports `twilio`)
- `simulator` — the web chat and the tests

What every channel shares lives here: how long one message may be, how a long text is cut,
and the files that go with a message (`Media`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

VOICE = "voice"  # a voice note: OGG/Opus, played as audio
IMAGE = "image"  # a picture (PNG, JPEG)


@dataclass(frozen=True)
class Media:
    """A file sent with a message, by a URL the provider fetches. `kind` says how it is
    shown: WhatsApp takes any kind as a media URL (TwiML `<Media>`, REST `MediaUrl`), Telegram
    has a method per kind (`sendVoice`, `sendPhoto`)."""

    url: str
    kind: str = VOICE

    def to_json(self) -> dict[str, str]:
        return {"url": self.url, "kind": self.kind}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Media:
        return cls(str(raw["url"]), str(raw.get("kind") or VOICE))


# Longest text one provider message carries (characters).
TEXT_LIMITS: dict[str, int] = {"whatsapp": 1600, "telegram": 4096}


def split_text(text: str, limit: int) -> list[str]:
    """Cut `text` into parts of at most `limit` characters, on line boundaries when possible,
    else on spaces, else anywhere. Never returns an empty list; parts are stripped of the
    newlines they were cut at."""
    if limit < 1:
        raise ValueError("limit must be positive")
    if len(text) <= limit:
        return [text]
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) <= limit:
            current = candidate
            continue
        if current:
            parts.append(current)
        current = ""
        while len(line) > limit:
            cut = line.rfind(" ", 0, limit + 1)
            if cut <= 0:
                cut = limit
            parts.append(line[:cut].rstrip())
            line = line[cut:].lstrip()
        current = line
    if current or not parts:
        parts.append(current)
    return [part for part in parts if part] or [text[:limit]]


def text_limit(channel: str) -> int | None:
    """The channel's longest message, or None when it has no limit (the simulator)."""
    return TEXT_LIMITS.get(channel)
