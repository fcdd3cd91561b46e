"""The console's own words: French in the templates, English in a gettext catalog.

Staff read the console in French first, English second. Unlike the citizens' catalogs (whose
msgids are symbolic keys, because flows emit keys), the console's msgids are its French text,
written in the templates as `{{ _("Rendez-vous") }}` or, with values,
`{{ _("%(count)s rendez-vous", count=n) }}` (Jinja's new-style gettext: the values are
escaped, the text is not re-interpolated by hand). French is thus the source and needs no
catalog; `locales/console.pot` is the template extracted from `api/templates/console/`, and
`locales/en/LC_MESSAGES/console.po` the English.

`diaspora-bot i18n update` re-extracts and merges this catalog with the citizens' ones;
`diaspora-bot i18n check` reports an English entry that is missing, fuzzy or whose
`%(placeholders)s` differ from the French, and a template out of date.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import PoFileError, read_po, write_po

DOMAIN = "console"
SOURCE = "fr"
LANGUAGES = ("fr", "en")  # the console's, in the order of its switch
NAMES = {"fr": "Français", "en": "English"}
TEMPLATE = "console.pot"
TEMPLATES = Path("api") / "templates" / "console"
_METHODS = [("**.html", "jinja2")]
_OPTIONS = {"**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "true"}}
_KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2)}
_PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")

current: ContextVar[str] = ContextVar("console_language", default=SOURCE)


def catalog_file(lang: str, locales: Path) -> Path:
    return locales / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


# --- at run time --------------------------------------------------------------------------------


@lru_cache(maxsize=len(LANGUAGES))
def _texts(lang: str, locales: Path) -> dict[tuple[str, int], str]:
    """(msgid, plural index) → text, for one language; {} for French (the msgids)."""
    path = catalog_file(lang, locales)
    if lang == SOURCE or not path.exists():
        return {}
    with path.open("rb") as handle:
        catalog = read_po(handle, domain=DOMAIN)
    texts: dict[tuple[str, int], str] = {}
    for message in catalog:
        if not message.id or message.fuzzy:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for index, text in enumerate(strings):
            if text:
                texts[(str(ids[0]), index)] = str(text)
    return texts


class Words:
    """The gettext callables installed in the console's Jinja environment. Each call reads the
    language of the page being rendered (`current`, set by the console's `render`)."""

    def __init__(self, locales: Path) -> None:
        self.locales = locales

    def gettext(self, message: str) -> str:
        return _texts(current.get(), self.locales).get((message, 0), message)

    def ngettext(self, singular: str, plural: str, count: int) -> str:
        texts = _texts(current.get(), self.locales)
        index = 0 if count == 1 else 1  # French and English: one form, then the other
        found = texts.get((singular, index))
        if found is not None:
            return found
        return singular if count == 1 else plural


@contextlib.contextmanager
def speaking(lang: str) -> Iterator[None]:
    """Render in `lang` (one of LANGUAGES; anything else is French) inside the block."""
    token = current.set(lang if lang in LANGUAGES else SOURCE)
    try:
        yield
    finally:
        current.reset(token)


def choose(asked: str | None, accept_language: str | None) -> str:
    """The console's language: the one the staff member chose, else the browser's first
    preference among ours, else French."""
    if asked in LANGUAGES:
        return asked
    for part in (accept_language or "").split(","):
        tag = part.split(";", 1)[0].strip().lower()[:2]
        if tag in LANGUAGES:
            return tag
    return SOURCE


# --- for i18n update and check ------------------------------------------------------------------


def extract(root: Path) -> Catalog:
    """The console's template: every `_()`/`ngettext()` of its Jinja templates."""
    template = Catalog(project="diaspora-bot console", domain=DOMAIN, fuzzy=False)
    found = extract_from_dir(
        str(root / TEMPLATES),
        method_map=_METHODS,
        options_map=_OPTIONS,
        keywords=_KEYWORDS,
        comment_tags=("i18n:",),
        strip_comment_tags=True,
    )
    for filename, lineno, message, comments, _context in found:
        location = (str(TEMPLATES / filename), lineno)
        template.add(message, None, [location], auto_comments=comments)
    return template


def _read(path: Path) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle, domain=DOMAIN, abort_invalid=True)


def _dump(catalog: Catalog) -> bytes:
    buffer = io.BytesIO()
    write_po(buffer, catalog, sort_output=True, ignore_obsolete=True, include_lineno=False)
    return buffer.getvalue()


def _shape(catalog: Catalog) -> list[tuple[object, list[str]]]:
    """What a template says, without its dates and line numbers (not written)."""
    return sorted((str(m.id), sorted({path for path, _line in m.locations})) for m in catalog)


def update(root: Path, locales: Path) -> list[str]:
    """Re-extract the console's template and merge it into the English catalog."""
    if not (root / TEMPLATES).is_dir():  # a checkout of catalogs alone
        return []
    template = extract(root)
    pot = locales / TEMPLATE
    with contextlib.suppress(FileNotFoundError, PoFileError, ValueError):
        old = _read(pot)
        if _shape(old) == _shape(template):
            template.creation_date = old.creation_date  # unchanged: no churn in git
    pot.write_bytes(_dump(template))
    report = [f"locales/{TEMPLATE}: {sum(1 for m in template if m.id)} texts"]
    for lang in LANGUAGES:
        if lang == SOURCE:
            continue
        path = catalog_file(lang, locales)
        if path.exists():
            catalog = _read(path)
        else:
            catalog = Catalog(
                locale=lang,
                domain=DOMAIN,
                project="diaspora-bot console",
                fuzzy=False,
                last_translator="the development team",
            )
            path.parent.mkdir(parents=True, exist_ok=True)
        before = {m.id for m in catalog if m.id}
        catalog.update(template, no_fuzzy_matching=True, update_header_comment=False)
        after = {m.id for m in catalog if m.id}
        path.write_bytes(_dump(catalog))
        new = len(after - before)
        report.append(
            f"locales/{lang}/LC_MESSAGES/{DOMAIN}.po: {len(after)} texts"
            + (f", {new} new (empty, to translate)" if new else "")
        )
    _texts.cache_clear()
    return report


def _ids(value: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """A message's id or string as a tuple (one item, or the plural forms)."""
    if value is None:
        return ()
    return tuple(str(v) for v in value) if isinstance(value, tuple | list) else (value,)


def check(root: Path, locales: Path) -> list[str]:
    """Every problem of the console's catalog; [] when fine."""
    if not (root / TEMPLATES).is_dir():
        return []
    problems: list[str] = []
    code = {_ids(m.id)[0]: m for m in extract(root) if m.id}
    pot = locales / TEMPLATE
    try:
        known = {_ids(m.id)[0] for m in _read(pot) if m.id}
    except FileNotFoundError:
        return [f"locales/{TEMPLATE}: missing: run `diaspora-bot i18n update`"]
    except (PoFileError, ValueError) as exc:
        return [f"locales/{TEMPLATE}: does not parse: {exc}"]
    if known != set(code):
        problems.append(f"locales/{TEMPLATE}: out of date with the templates (run update)")
    for lang in LANGUAGES:
        if lang == SOURCE:
            continue
        path = catalog_file(lang, locales)
        where = f"locales/{lang}/LC_MESSAGES/{DOMAIN}.po"
        try:
            catalog = _read(path)
        except FileNotFoundError:
            problems.append(f"{where}: missing: run `diaspora-bot i18n update`")
            continue
        except (PoFileError, ValueError) as exc:
            problems.append(f"{where}: does not parse: {exc}")
            continue
        entries = {_ids(m.id)[0]: m for m in catalog if m.id}
        for source in sorted(code):
            entry = entries.get(source)
            strings = _ids(entry.string) if entry is not None else ()
            if entry is None or not all(s.strip() for s in strings) or not strings:
                problems.append(f"{where}: {source!r}: {'missing' if entry is None else 'empty'}")
                continue
            if entry.fuzzy:
                problems.append(f"{where}: {source!r}: fuzzy (check the English, then unmark)")
            wanted = set(_PLACEHOLDER.findall(" ".join(_ids(code[source].id))))
            for text in strings:
                if set(_PLACEHOLDER.findall(text)) != wanted:
                    problems.append(
                        f"{where}: {source!r}: placeholders differ from the French {sorted(wanted)}"
                    )
    return problems
