"""What flows say: message keys with parameters, and numbered choices. Never text.

`msg("booking.ask_post")` both builds a message and marks its key for extraction into the
catalogs (babel.cfg extracts the first argument of `msg`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Msg:
    """A catalog key and the values for its {placeholders}.

    Values may be str, int, date, datetime or time (rendered in the reader's language), or
    another Msg (rendered first, e.g. a service name inside a sentence).
    """

    key: str
    params: Mapping[str, Any] = field(default_factory=dict)


def msg(key: str, **params: Any) -> Msg:
    return Msg(key, params)


def raw(text: str) -> Msg:
    """Text that is data, not wording (a post's name, an address): shown as it is."""
    return Msg("common.raw", {"text": text})


@dataclass(frozen=True)
class Option:
    """One numbered choice: what it means (`value`, JSON-able) and what it shows (`label`)."""

    value: str
    label: Msg
    synonyms: tuple[str, ...] = ()  # extra words that select it (a city, a code)
    # words of the lexicons that select it, looked up when the answer comes:
    # ("services", "passport") or ("intents", "book")
    lexicon: tuple[str, str] | None = None


@dataclass(frozen=True)
class Attachment:
    """Something sent with a reply beside its text, named by what it is, never by where it
    lives: the bot resolves it to files at URLs (`bot.i18n.Attachments`).

    `kind` is `proof` (an appointment's proof: its QR code, and its calendar file where the
    channel takes one); `subject` says whose (the appointment's reference)."""

    kind: str
    subject: str


def proof_of(reference: str) -> Attachment:
    """The proof of the appointment with this reference (QR code and calendar file)."""
    return Attachment("proof", reference)


@dataclass(frozen=True)
class Reply:
    """One message to the citizen: lines of text, then numbered choices (from 1), and what is
    attached to it."""

    lines: tuple[Msg, ...]
    choices: tuple[Msg, ...] = ()
    attachments: tuple[Attachment, ...] = ()
