"""No console page shows a word the catalog cannot translate: every visible text of the console's
templates — text between tags and the attributes a person reads or hears (aria-label,
placeholder, title, alt, data-label) — is inside a Jinja expression, `{{ _("…") }}`. A new page
or a new sentence written raw fails here, before an English-speaking agent meets it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from api import console_i18n
from api.i18n_tools import project_root

TEMPLATES = project_root() / console_i18n.TEMPLATES
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_RAW_BLOCK = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.S | re.I)
_TAG = re.compile(r"<[^>]*>", re.S)
_READ_ATTRIBUTES = re.compile(
    r"""\b(aria-label|placeholder|title|alt|data-label)\s*=\s*("[^"]*"|'[^']*')""", re.I
)
_LETTER = re.compile(r"[^\W\d_]")
_PLACEHOLDER = re.compile(r"\{\w+\}")
# What stays as it is in every language: the product's name, the providers', codes, examples.
RAW = {
    "Diaspora Bot",
    "WhatsApp",
    "Telegram",
    "CSV",
    "JSON",
    "UTC",
    "min",
    "ABJ-2026-000123",
    "RDV-…",
}


@dataclass(frozen=True)
class Raw:
    """A visible text outside `_()`: where, and what."""

    template: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.template}:{self.line}: {self.text!r}"


def _mask(source: str, pattern: re.Pattern[str]) -> str:
    """The source with each match blanked out (same length, newlines kept), so that offsets
    and line numbers stay those of the file."""
    return pattern.sub(lambda m: re.sub(r"[^\n]", "\x00", m.group(0)), source)


def _visible(text: str) -> bool:
    words = " ".join(text.replace("\x00", " ").split())
    if not _LETTER.search(words):
        return False
    if _PLACEHOLDER.fullmatch(words):  # a chat variable shown as code: <code>{service}</code>
        return False
    return words not in RAW and not all(
        part in RAW for part in re.split(r"[\s()·—,:]+", words) if part
    )


def raw_texts(path: Path) -> list[Raw]:
    """The visible texts of one template that are not translated."""
    source = path.read_text(encoding="utf-8")
    masked = _mask(_mask(source, _JINJA), _RAW_BLOCK)
    found: list[Raw] = []

    def note(offset: int, text: str) -> None:
        line = source.count("\n", 0, offset) + 1
        found.append(Raw(path.name, line, " ".join(text.replace("\x00", " ").split())))

    position = 0
    for tag in _TAG.finditer(masked):
        between = masked[position : tag.start()]
        if _visible(between):
            note(position, between)
        for attribute in _READ_ATTRIBUTES.finditer(tag.group(0)):
            value = attribute.group(2)[1:-1]
            if _visible(value):
                note(tag.start() + attribute.start(), f"{attribute.group(1)}={value}")
        position = tag.end()
    if _visible(masked[position:]):
        note(position, masked[position:])
    return found


def test_every_visible_text_of_the_console_goes_through_the_catalog() -> None:
    templates = sorted(TEMPLATES.glob("*.html"))
    assert len(templates) > 20
    raw = [str(r) for path in templates for r in raw_texts(path)]
    assert raw == [], "console texts outside _():\n" + "\n".join(raw)


def test_the_labels_of_text_html_are_imported_in_the_pages_language() -> None:
    """`{% import %}` without context is cached by Jinja: its `_()` labels would stay in the
    language of the first page rendered."""
    imports = re.compile(r"\{%-?\s*import\s+\"console/_text.html\"[^%]*%\}")
    found = [
        (p.name, m.group(0))
        for p in TEMPLATES.glob("*.html")
        for m in imports.finditer(p.read_text())
    ]
    assert found
    assert [f for f in found if "with context" not in f[1]] == []


def test_the_guard_sees_a_raw_text_and_a_raw_attribute(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text(
        '{% block title %}Annonces{% endblock %}\n<p>{{ _("Bonjour") }} {{ name }}</p>\n'
        '<input placeholder="Nom complet" aria-label="{{ _("Nom") }}">\n'
        "<button>Envoyer</button><small>Diaspora Bot</small>\n"
        '<script>var x = "pas du texte";</script>{# un commentaire #}\n',
        encoding="utf-8",
    )
    assert [str(r) for r in raw_texts(page)] == [
        "page.html:1: 'Annonces'",
        "page.html:3: 'placeholder=Nom complet'",
        "page.html:4: 'Envoyer'",
    ]
