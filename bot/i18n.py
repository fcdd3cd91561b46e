"""Rendering message keys into text, in the reader's language.

Catalogs are the .po files under locales/ (read with Babel at start-up, no compile step).
Each language falls back to French, explicitly, key by key. Entries marked fuzzy are drafts
awaiting a native speaker's review: they are used, and `i18n stats` counts them apart.
Texts reviewed by translators in the console overlay the catalogs (an `Overlay`, read from
the database by api/): the renderer asks the overlay for its version at most every
`poll_seconds`, a cheap read, and reloads the texts only when it has moved, so every process
uses a reviewed text within seconds, with nothing more per turn than a clock comparison.
Dates and times are formatted with Babel where CLDR knows the language, else with the day
and month names that locales/<lang>/calendar.yaml holds.
"""

from __future__ import annotations

import logging
import string
import threading
import time as clock
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Protocol

from babel import Locale, UnknownLocaleError
from babel.dates import format_date

from bot.channels import Media
from bot.locales import languages, load_calendar, read_catalog
from flows.messages import Attachment, Msg, Reply

log = logging.getLogger(__name__)

FALLBACK = "fr"
POLL_SECONDS = 2.0  # how stale a process's reviewed texts may be, at most
# CLDR locales used for formatting; languages absent here use their calendar.yaml
BABEL_LOCALES = {"fr": "fr_BF", "ff": "ff_Latn_BF", "en": "en"}
DATE_PATTERN = "EEEE d MMMM"


@dataclass(frozen=True)
class RenderedReply:
    """A reply as text: the body, the bare labels of its numbered choices, and the files sent
    with it, before the text (a voice prompt, then its attachments' files: a QR code, a
    calendar file)."""

    text: str
    choices: tuple[str, ...] = ()
    media: tuple[Media, ...] = ()

    def with_numbers(self) -> str:
        """Body followed by '1. label' lines: the form for WhatsApp, Telegram and terminals."""
        if not self.choices:
            return self.text
        lines = [f"{i}. {label}" for i, label in enumerate(self.choices, start=1)]
        return "\n".join([self.text, "", *lines])


class Overlay(Protocol):
    """Texts that replace the catalogs' (reviewed in the console), with a version to poll."""

    def version(self) -> int:
        """Moves whenever the texts change; must be cheap (read every few seconds)."""
        ...

    def texts(self) -> Mapping[str, Mapping[str, str]]:
        """language → key → text."""
        ...

    def voices(self) -> Mapping[str, Mapping[str, str]]:
        """language → key → the token of its voice prompt (served at /voice/{token}.ogg)."""
        ...


class Attachments(Protocol):
    """Where the files of a reply's attachments are served (api/ knows, flows only name them)."""

    def media(self, attachment: Attachment) -> tuple[Media, ...]:
        """Its files, each with its kind (a proof: its QR code as an image, its calendar file
        as a document); none for an attachment this resolver does not know."""
        ...


class _Formatter(string.Formatter):
    def __init__(self, renderer: Renderer, lang: str) -> None:
        self.renderer = renderer
        self.lang = lang

    def format_field(self, value: Any, format_spec: str) -> str:
        return self.renderer.value(value, self.lang)


class Renderer:
    """Implements flows.engine.Texts: `render(msg, lang)` → text."""

    def __init__(
        self,
        root: Path | None = None,
        overlay: Overlay | None = None,
        poll_seconds: float = POLL_SECONDS,
        voice_base_url: str = "",
        attachments: Attachments | None = None,
    ) -> None:
        self.overlay = overlay
        self.attachments = attachments
        self.voice_base_url = voice_base_url.rstrip("/")
        self._voices: Mapping[str, Mapping[str, str]] = {}
        self.poll_seconds = poll_seconds
        self._overlay_texts: Mapping[str, Mapping[str, str]] = {}
        self._overlay_version: int | None = None
        self._checked_at = float("-inf")
        self._lock = threading.Lock()
        self.messages: dict[str, dict[str, str]] = {}
        self.drafts: dict[str, set[str]] = {}
        for lang in languages(root):
            try:
                catalog = read_catalog(lang, root)
            except FileNotFoundError:
                continue
            self.messages[lang] = {str(m.id): str(m.string) for m in catalog if m.id and m.string}
            self.drafts[lang] = {str(m.id) for m in catalog if m.id and m.fuzzy}
        self.calendars = {lang: load_calendar(lang, root) for lang in self.messages}
        self._locales: dict[str, Locale | None] = {}
        self._rendered: dict[Hashable, str] = {}  # render()'s memo

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.messages)

    def refresh(self, *, force: bool = False) -> None:
        """Reload the overlay if its version moved (at most every `poll_seconds`, unless
        forced). A failing overlay keeps the texts it gave last: the bot goes on talking."""
        if self.overlay is None:
            return
        now = clock.monotonic()
        if not force and now - self._checked_at < self.poll_seconds:
            return
        with self._lock:
            self._checked_at = now
            try:
                version = self.overlay.version()
                if version != self._overlay_version:
                    texts, voices = self.overlay.texts(), self.overlay.voices()
                    self._overlay_texts, self._voices = texts, voices
                    self._overlay_version = version
                    self._rendered = {}
            except Exception:
                log.exception("reviewed texts could not be read; the previous ones are kept")

    def is_overlaid(self, key: str, lang: str) -> bool:
        return key in self._overlay_texts.get(lang, {})

    def template(self, key: str, lang: str) -> str:
        self.refresh()
        reviewed = self._overlay_texts.get(lang)
        if reviewed and key in reviewed:
            return reviewed[key]
        own = self.messages.get(lang, {})
        if key in own:
            return own[key]
        return self.messages.get(FALLBACK, {}).get(key, key)

    def render(self, message: Msg, lang: str) -> str:
        """The message in `lang`. Kept once rendered (the same few hundred messages — a menu,
        a day's label — are rendered thousands of times a minute), until the reviewed texts
        change."""
        self.refresh()
        memo = _memo_key(message, lang)
        if memo is None:
            return self.fill(self.template(message.key, lang), message.params, lang)
        text = self._rendered.get(memo)
        if text is None:
            text = self.fill(self.template(message.key, lang), message.params, lang)
            if len(self._rendered) >= MEMO_SIZE:
                self._rendered.clear()
            self._rendered[memo] = text
        return text

    def fill(self, template: str, params: Mapping[str, Any], lang: str) -> str:
        """A template with its {names} replaced by the values, rendered in `lang`."""
        if not params:
            return template
        try:
            return _Formatter(self, lang).vformat(template, (), _Params(params))
        except (ValueError, IndexError):
            return template  # a broken translation shows its words rather than failing

    def voice_url(self, key: str, lang: str) -> str | None:
        """Where the voice prompt of this message in this language is served, if it has one."""
        self.refresh()
        token = self._voices.get(lang, {}).get(key)
        return f"{self.voice_base_url}/voice/{token}.ogg" if token else None

    def render_reply(self, reply: Reply, lang: str, *, voice: bool = False) -> RenderedReply:
        """The reply as text; with `voice`, and the voice prompt of its last line that has
        one (the question of the step, usually); then the files of its attachments, when this
        renderer knows where they are served."""
        text = "\n".join(self.render(line, lang) for line in reply.lines)
        choices = tuple(self.render(c, lang) for c in reply.choices)
        media = self.voice_for(reply.lines, lang) if voice else ()
        return RenderedReply(text, choices, media + self.attached(reply.attachments))

    def voice_for(self, lines: Sequence[Msg], lang: str) -> tuple[Media, ...]:
        """The voice prompt of the last of these lines that has one in `lang`, if any."""
        urls = (self.voice_url(line.key, lang) for line in reversed(lines))
        url = next((u for u in urls if u), None)
        return (Media(url),) if url else ()

    def attached(self, attachments: Sequence[Attachment]) -> tuple[Media, ...]:
        """The files of these attachments (a proof's QR code and calendar file), where this
        renderer knows they are served; none otherwise."""
        if self.attachments is None:
            return ()
        return tuple(media for a in attachments for media in self.attachments.media(a))

    # -- values ------------------------------------------------------------------------------

    def value(self, value: Any, lang: str) -> str:
        if isinstance(value, Msg):
            return self.render(value, lang)
        if isinstance(value, datetime):
            return f"{self.format_day(value.date(), lang)} {self.format_time(value.time(), lang)}"
        if isinstance(value, date):
            return self.format_day(value, lang)
        if isinstance(value, time):
            return self.format_time(value, lang)
        return str(value)

    def _locale(self, lang: str) -> Locale | None:
        if lang not in self._locales:
            try:
                self._locales[lang] = Locale.parse(BABEL_LOCALES.get(lang, lang))
            except (UnknownLocaleError, ValueError):
                self._locales[lang] = None
        return self._locales[lang]

    def format_day(self, day: date, lang: str) -> str:
        calendar = self.calendars.get(lang)
        if calendar:
            pattern = str(calendar.get("date_pattern", "{weekday} {day} {month}"))
            return pattern.format(
                weekday=calendar["days"]["wide"][day.weekday()],
                day=day.day,
                month=calendar["months"]["wide"][day.month - 1],
                year=day.year,
            )
        locale = self._locale(lang) or self._locale(FALLBACK)
        return format_date(day, DATE_PATTERN, locale=locale)

    @staticmethod
    def format_time(moment: time, lang: str) -> str:
        return f"{moment.hour:02d}:{moment.minute:02d}"


MEMO_SIZE = 20_000  # rendered messages kept; the memo starts afresh when it is full


# Values that are immutable and equal only when they render the same (an object hashed by
# its identity is not: another may take its address once it is gone).
_PLAIN = frozenset({str, int, float, bool, type(None), date, datetime, time})


class _Unkept(Exception):
    """A value the memo does not key on."""


def _memo_key(message: Msg, lang: str) -> Hashable | None:
    """What a rendering depends on besides the catalogs; None when a value is of another kind."""
    if not message.params:
        return (lang, message.key)
    try:
        return (lang, _frozen(message))
    except _Unkept:
        return None


def _frozen(value: Any) -> Hashable:
    kind = type(value)
    if kind is Msg:
        return (value.key, tuple((k, _frozen(v)) for k, v in value.params.items()))
    if kind not in _PLAIN:
        raise _Unkept
    if kind is datetime and value.tzinfo is not None:
        return (kind, value, str(value.tzinfo))  # equal instants in two zones render apart
    return (kind, value)  # a date and a datetime of one day are equal keys: the type parts them


class _Params(Mapping[str, Any]):
    """Message parameters; a placeholder without a value renders as itself, never fails."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = params

    def __getitem__(self, key: str) -> Any:
        return self.params.get(key, f"{{{key}}}")

    def __iter__(self) -> Iterator[str]:
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)
