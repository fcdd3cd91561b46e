"""Translations reviewed by their speakers: the review of each catalog entry, in the database.

The catalogs in `locales/` stay the source in git; a `translation` row overlays one entry of
one language as a translator left it, and the bot uses it at once (`SqlOverlay`, polled by
bot.i18n.Renderer in every process). An entry's status, for a language:

- `reviewed`: a translator approved it against the current French (or the catalog has it
  without the fuzzy flag and nobody has touched it in the console);
- `changed`: it was reviewed, and the French source has changed since: to review again, its
  text kept meanwhile;
- `draft`: anything else (the catalog's fuzzy drafts, a text saved without approving).

A save is refused (`Refused`, code `placeholders` or `too_long`) when the text's `{names}`
differ from the French ones, or when, filled with long realistic values, it exceeds
WhatsApp's limit. Every change is audited and bumps `translation_version`.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from babel.messages.pofile import read_po
from sqlalchemy.engine import Connection, Engine

from api.db import read
from api.domain.audit import StaffWrite
from api.domain.errors import NotVisible, Refused
from api.domain.tables import table
from api.i18n_check import placeholders, sample_params
from api.i18n_tools import glossary_hints
from api.models import GlossaryTerm, Staff, Translation, TranslationVersion, VoicePrompt
from bot.channels import TEXT_LIMITS
from bot.i18n import FALLBACK, Renderer
from bot.locales import catalog_path, locales_dir, read_catalog
from flows.engine import LANGUAGES

translation = table(Translation)
translation_version = table(TranslationVersion)
staff_table = table(Staff)
glossary_term = table(GlossaryTerm)
voice_prompt = table(VoicePrompt)

WHATSAPP_LIMIT = TEXT_LIMITS["whatsapp"]  # the shorter of the channels' limits
REVIEWED_LANGUAGES = tuple(lang for lang in LANGUAGES if lang != FALLBACK)


class ReviewStatus(StrEnum):
    draft = "draft"
    reviewed = "reviewed"
    changed = "changed"


# --- the catalogs, as read from locales/ once per process ---------------------------------------


@dataclass(frozen=True)
class CatalogEntry:
    key: str
    source: str  # the French text
    english: str
    text: str  # this language's catalog text
    fuzzy: bool
    locations: tuple[str, ...]  # flows/menu.py:114
    notes: tuple[str, ...]  # the comments for translators (`# i18n: …` in the code)
    params: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Catalogs:
    """Every language's entries, keyed by message key, in the French catalog's order."""

    entries: Mapping[str, Mapping[str, CatalogEntry]]
    root: Path

    def of(self, lang: str) -> Mapping[str, CatalogEntry]:
        if lang not in self.entries:
            raise NotVisible("language")
        return self.entries[lang]

    def entry(self, lang: str, key: str) -> CatalogEntry:
        found = self.of(lang).get(key)
        if found is None:
            raise NotVisible("message")
        return found


def _texts(lang: str, root: Path) -> dict[str, Any]:
    try:
        return {str(m.id): m for m in read_catalog(lang, root) if m.id}
    except FileNotFoundError:
        return {}


@lru_cache(maxsize=4)
def catalogs(root: Path | None = None) -> Catalogs:
    base = root or locales_dir()
    french = _texts(FALLBACK, base)
    english = _texts("en", base)
    template = {}
    pot = base / "messages.pot"
    if pot.exists():
        with pot.open("rb") as handle:
            template = {str(m.id): m for m in read_po(handle) if m.id}
    by_lang: dict[str, dict[str, CatalogEntry]] = {}
    for lang in LANGUAGES:
        if not catalog_path(lang, base).exists():
            continue
        own = _texts(lang, base)
        entries = {}
        for key in sorted(french):
            source = str(french[key].string or "")
            info = template.get(key)
            entries[key] = CatalogEntry(
                key=key,
                source=source,
                english=str(english[key].string or "") if key in english else "",
                text=str(own[key].string or "") if key in own else "",
                fuzzy=bool(own[key].fuzzy) if key in own else True,
                locations=tuple(f"{f}:{n}" for f, n in info.locations) if info else (),
                notes=tuple(str(c) for c in info.auto_comments) if info else (),
                params=frozenset(placeholders(source)),
            )
        by_lang[lang] = entries
    return Catalogs(by_lang, base)


@lru_cache(maxsize=4)
def _sample_renderer(root: Path) -> Renderer:
    return Renderer(root)


# --- checks ---------------------------------------------------------------------------------


def check_text(entry: CatalogEntry, lang: str, text: str, root: Path) -> None:
    """Refuse a text whose {names} differ from the French, or too long once filled in."""
    try:
        found = placeholders(text)
    except ValueError as exc:
        raise Refused("placeholders", f"broken braces: {exc}") from None
    missing = sorted(entry.params - found)
    extra = sorted(found - entry.params)
    if missing or extra:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(f"{{{n}}}" for n in missing))
        if extra:
            parts.append("unknown " + ", ".join(f"{{{n}}}" for n in extra))
        raise Refused(
            "placeholders",
            "placeholders must be the French text's: " + "; ".join(parts),
            missing=" ".join(missing),
            extra=" ".join(extra),
        )
    rendered = sample_rendering(entry, lang, text, root)
    if len(rendered) > WHATSAPP_LIMIT:
        raise Refused(
            "too_long",
            f"{len(rendered)} characters with long sample values, over WhatsApp's "
            f"{WHATSAPP_LIMIT:,}",
            length=str(len(rendered)),
        )


def sample_rendering(entry: CatalogEntry, lang: str, text: str, root: Path) -> str:
    """The text as a citizen would read it, its {names} filled with long realistic values."""
    renderer = _sample_renderer(root)
    return renderer.fill(text, sample_params(entry.params, renderer, lang), lang)


# --- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TranslationItem:
    key: str
    source: str
    english: str
    text: str
    status: ReviewStatus
    comment: str
    previous_text: str | None
    reviewed_by: str | None
    locations: tuple[str, ...]
    notes: tuple[str, ...]


def status_of(entry: CatalogEntry, row: Any | None) -> ReviewStatus:
    if row is None:
        return ReviewStatus.draft if entry.fuzzy or not entry.text else ReviewStatus.reviewed
    if row.reviewed and row.source != entry.source:
        return ReviewStatus.changed
    return ReviewStatus.reviewed if row.reviewed else ReviewStatus.draft


def _rows(conn: Connection, lang: str) -> dict[str, Any]:
    query = (
        sa.select(translation, staff_table.c.email)
        .select_from(translation.outerjoin(staff_table, staff_table.c.id == translation.c.staff_id))
        .where(translation.c.lang == lang)
    )
    return {row.key: row for row in conn.execute(query)}


def list_translations(
    conn: Connection, lang: str, status: ReviewStatus | None = None, root: Path | None = None
) -> list[TranslationItem]:
    entries = catalogs(root).of(lang)
    rows = _rows(conn, lang)
    items = []
    for key, entry in entries.items():
        row = rows.get(key)
        state = status_of(entry, row)
        if status is not None and state is not status:
            continue
        items.append(
            TranslationItem(
                key=key,
                source=entry.source,
                english=entry.english,
                text=row.text if row is not None else entry.text,
                status=state,
                comment=row.comment if row is not None else "",
                previous_text=row.previous_text if row is not None else None,
                reviewed_by=row.email if row is not None else None,
                locations=entry.locations,
                notes=entry.notes,
            )
        )
    return items


@dataclass(frozen=True)
class Progress:
    lang: str
    total: int
    reviewed: int
    changed: int

    @property
    def pct(self) -> float:
        return 100.0 * self.reviewed / self.total if self.total else 100.0


def progress(conn: Connection, root: Path | None = None) -> list[Progress]:
    """Per language under review: how many entries are reviewed, how many changed since."""
    result = []
    for lang in REVIEWED_LANGUAGES:
        if lang not in catalogs(root).entries:
            continue
        items = list_translations(conn, lang, root=root)
        reviewed = sum(1 for i in items if i.status is ReviewStatus.reviewed)
        changed = sum(1 for i in items if i.status is ReviewStatus.changed)
        result.append(Progress(lang, len(items), reviewed, changed))
    return result


# --- writing ----------------------------------------------------------------------------------


def bump_version(conn: Connection) -> None:
    updated = conn.execute(
        translation_version.update()
        .where(translation_version.c.id == 1)
        .values(version=translation_version.c.version + 1)
    ).rowcount
    if not updated:
        conn.execute(translation_version.insert().values(id=1, version=1))


def save_translation(
    tx: StaffWrite,
    lang: str,
    key: str,
    text: str,
    *,
    reviewed: bool,
    comment: str | None = None,
    root: Path | None = None,
) -> TranslationItem:
    """Save a translator's text (approved or not); refused as `check_text` says."""
    if not tx.staff.may_translate(lang):
        raise Refused("forbidden", f"not a translator of {lang}")
    cats = catalogs(root)
    entry = cats.entry(lang, key)
    if lang == FALLBACK:
        raise Refused("source", "French is the source: change it in the code's catalog")
    text = text.strip()
    if not text:
        raise Refused("empty", "the text is empty")
    check_text(entry, lang, text, cats.root)
    old = _rows(tx.conn, lang).get(key)
    before = {"text": old.text, "reviewed": old.reviewed} if old is not None else None
    current = old.text if old is not None else entry.text
    values = {
        "text": text,
        "source": entry.source,
        "reviewed": reviewed,
        "previous_text": current if current != text else (old.previous_text if old else None),
        "comment": (comment if comment is not None else (old.comment if old else ""))[:1000],
        "staff_id": tx.staff.id,
        "updated_at": tx.now,
    }
    if old is None:
        tx.conn.execute(translation.insert().values(lang=lang, key=key, **values))
    else:
        tx.conn.execute(
            translation.update()
            .where(translation.c.lang == lang, translation.c.key == key)
            .values(**values)
        )
    bump_version(tx.conn)
    tx.audit(
        "translation.review" if reviewed else "translation.edit",
        "translation",
        f"{lang}:{key}"[:40],
        before,
        {"text": text, "reviewed": reviewed},
    )
    return next(i for i in list_translations(tx.conn, lang, root=root) if i.key == key)


# --- the bot's overlay ----------------------------------------------------------------------


class SqlOverlay:
    """Implements bot.i18n.Overlay: the translators' texts, and a version to poll."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def version(self) -> int:
        with read(self.engine) as conn:
            found = conn.execute(
                sa.select(translation_version.c.version).where(translation_version.c.id == 1)
            ).scalar()
        return int(found or 0)

    def texts(self) -> dict[str, dict[str, str]]:
        return self._by_lang(translation.c.lang, translation.c.key, translation.c.text)

    def voices(self) -> dict[str, dict[str, str]]:
        return self._by_lang(voice_prompt.c.lang, voice_prompt.c.key, voice_prompt.c.token)

    def _by_lang(self, *columns: sa.ColumnElement[Any]) -> dict[str, dict[str, str]]:
        """language → key → value, from (lang, key, value) columns."""
        result: dict[str, dict[str, str]] = {}
        with read(self.engine) as conn:
            for lang, key, value in conn.execute(sa.select(*columns)):
                result.setdefault(lang, {})[key] = value
        return result


# --- the glossary: locales/glossary.csv, with the translators' changes ----------------------


def glossary(conn: Connection, root: Path | None = None) -> list[dict[str, str]]:
    """The glossary's rows (`term_id`, `fr`, `en`, `mos`…, `notes`), as glossary.csv has them
    with what translators changed in the console put over them."""
    rows = _read_csv(catalogs(root).root / "glossary.csv")
    by_id = {row["term_id"]: row for row in rows}
    for term_id, lang, text in conn.execute(
        sa.select(glossary_term.c.term_id, glossary_term.c.lang, glossary_term.c.text)
    ):
        if term_id in by_id:
            by_id[term_id][lang] = text
    return rows


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def terms_used(french: str, lang: str, rows: list[dict[str, str]]) -> list[str]:
    """'passeport = paspɔr (passeport)': the glossary terms a French text uses, in `lang`."""
    return glossary_hints(french, lang, rows)


def save_term(tx: StaffWrite, term_id: str, lang: str, text: str) -> None:
    """A translator's wording of a consular term in their language."""
    if not tx.staff.may_translate(lang) or lang == FALLBACK:
        raise Refused("forbidden", f"not a translator of {lang}")
    text = " ".join(text.split())[:200]
    if not text:
        raise Refused("empty", "the term is empty")
    rows = {row["term_id"]: row for row in glossary(tx.conn)}
    if term_id not in rows:
        raise NotVisible("term")
    before = {"text": rows[term_id].get(lang, "")}
    where = (glossary_term.c.term_id == term_id, glossary_term.c.lang == lang)
    values = {"text": text, "staff_id": tx.staff.id, "updated_at": tx.now}
    if tx.conn.execute(glossary_term.update().where(*where).values(**values)).rowcount == 0:
        tx.conn.execute(glossary_term.insert().values(term_id=term_id, lang=lang, **values))
    bump_version(tx.conn)
    tx.audit("glossary.edit", "glossary_term", f"{lang}:{term_id}"[:40], before, {"text": text})
