"""`i18n export` and `i18n import`: between the reviews in the database and the catalogs in git.

- export: every language's texts saved in the console go into its `.po` file. An approved
  text (reviewed against the current French) loses the fuzzy flag; a text saved without
  approving, or reviewed against a French that has changed since, stays fuzzy with its text.
  The header credits the translators (`Last-Translator`, and one `# Reviewed by` line each).
- import: the `.po` files as edited in Poedit. An entry that is translated and not fuzzy is
  stored as reviewed, against the French its `#. fr:` comment shows (the French the
  translator read): if that is no longer the current French, the entry is "changed", to
  review again, its text kept. Entries identical to the database's, and untouched drafts,
  are skipped; every stored entry is audited (without a staff member: the command line).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from api.db import write
from api.domain import audit
from api.domain.translations import (
    REVIEWED_LANGUAGES,
    ReviewStatus,
    bump_version,
    catalogs,
    list_translations,
    staff_table,
    status_of,
    translation,
)
from api.i18n_tools import _dump, _read, french_seen
from api.models import utcnow
from bot.locales import catalog_path


@dataclass(frozen=True)
class Report:
    lang: str
    written: int
    reviewed: int


def export(engine: Engine, locales: Path) -> list[Report]:
    """Write the database's texts into locales/<lang>/LC_MESSAGES/messages.po."""
    cats = catalogs(locales)
    reports = []
    with write(engine) as conn:
        for lang in REVIEWED_LANGUAGES:
            path = catalog_path(lang, locales)
            if not path.exists() or lang not in cats.entries:
                continue
            items = {i.key: i for i in list_translations(conn, lang, root=locales)}
            rows = list(
                conn.execute(
                    sa.select(translation.c.key, translation.c.updated_at, staff_table.c.email)
                    .select_from(
                        translation.outerjoin(
                            staff_table, staff_table.c.id == translation.c.staff_id
                        )
                    )
                    .where(translation.c.lang == lang)
                    .order_by(translation.c.updated_at)
                )
            )
            if not rows:
                reports.append(Report(lang, 0, 0))
                continue
            catalog = _read(path)
            written = reviewed = 0
            for row in rows:
                item = items.get(row.key)
                message = catalog.get(row.key)
                if item is None or message is None:
                    continue
                message.string = item.text
                if item.status is ReviewStatus.reviewed:
                    message.flags.discard("fuzzy")
                    message.user_comments = [
                        c for c in message.user_comments if "not a native speaker" not in c
                    ]
                    reviewed += 1
                else:
                    message.flags.add("fuzzy")
                written += 1
            translators = sorted({str(r.email) for r in rows if r.email})
            if translators:
                last = next(str(r.email) for r in reversed(rows) if r.email)
                catalog.last_translator = f"{last} <{last}>"
                catalog.revision_date = utcnow()
                kept = [
                    line
                    for line in catalog.header_comment.splitlines()
                    if not line.startswith("# Reviewed by ")
                ]
                catalog.header_comment = "\n".join(
                    [*kept, *(f"# Reviewed by {email}" for email in translators)]
                )
            path.write_bytes(_dump(catalog, lang))
            reports.append(Report(lang, written, reviewed))
    catalogs.cache_clear()
    return reports


def import_catalogs(engine: Engine, locales: Path, files: list[Path]) -> list[Report]:
    """Load .po files edited in Poedit (each names its language in its header)."""
    cats = catalogs(locales)
    reports = []
    now = utcnow()
    with write(engine) as conn:
        for file in files:
            catalog = _read(file)
            lang = str(catalog.locale_identifier or catalog.locale or file.parent.parent.name)
            if lang not in REVIEWED_LANGUAGES or lang not in cats.entries:
                raise ValueError(f"{file}: language {lang!r} is not one under review")
            entries = cats.entries[lang]
            existing = {
                row.key: row
                for row in conn.execute(sa.select(translation).where(translation.c.lang == lang))
            }
            written = reviewed = 0
            for message in catalog:
                key = str(message.id or "")
                entry = entries.get(key)
                text = str(message.string or "").strip()
                if entry is None or not text:
                    continue
                seen = french_seen(list(message.auto_comments)) or entry.source
                approved = not message.fuzzy
                old = existing.get(key)
                if old is None and not approved and text == entry.text.strip():
                    continue  # an untouched draft: the catalog has it already
                if old is not None and (old.text, old.reviewed, old.source) == (
                    text,
                    approved,
                    seen,
                ):
                    continue
                values = {
                    "text": text,
                    "source": seen,
                    "reviewed": approved,
                    "previous_text": (old.text if old is not None else entry.text) or None,
                    "staff_id": None,
                    "updated_at": now,
                }
                if old is None:
                    conn.execute(
                        translation.insert().values(lang=lang, key=key, comment="", **values)
                    )
                else:
                    conn.execute(
                        translation.update()
                        .where(translation.c.lang == lang, translation.c.key == key)
                        .values(**values)
                    )
                audit.record(
                    conn,
                    staff_id=None,
                    action="translation.import",
                    entity="translation",
                    entity_id=f"{lang}:{key}"[:40],
                    before={"text": old.text} if old is not None else None,
                    after={"text": text, "reviewed": approved},
                    now=now,
                )
                written += 1
                reviewed += status_of(entry, _Row(text, seen, approved)) is ReviewStatus.reviewed
            if written:
                bump_version(conn)
            reports.append(Report(lang, written, reviewed))
    return reports


@dataclass(frozen=True)
class _Row:
    text: str
    source: str
    reviewed: bool
