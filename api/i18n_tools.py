"""Translation tools: extract the message keys, check the catalogs, count reviews, merge updates.

Logic only; `diaspora-bot i18n …` (api/i18n_cli.py) prints what these functions return.

- Keys are symbolic (`booking.day.question`), never English text. They are the first argument
  of `msg("key", …)` in flows/, bot/ and api/, extracted with Babel as `babel.cfg` says.
- `locales/messages.pot` is the template; `locales/<lang>/LC_MESSAGES/messages.po` the catalogs.
  French is the source language: every other entry carries the current French text as an
  extracted comment (`#. fr: …`), refreshed by `update`, with the glossary terms it uses.
- Entries marked fuzzy are drafts awaiting a native speaker's review. They are used at run
  time; `stats` counts them as translated but not reviewed.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import io
import os
import re
import string
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, time
from importlib import metadata
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import PoFileError, read_po, write_po
from babel.util import pathmatch

from api import console_i18n
from bot.i18n import BABEL_LOCALES, FALLBACK, Renderer
from bot.locales import DOMAIN, catalog_path, languages, read_yaml
from flows.engine import LANGUAGES
from flows.lexicon import Lexicon
from flows.messages import Msg, Reply, msg, raw
from flows.text import contains_phrase, fold

KEYWORD = "msg"
KEY_LIKE = re.compile(r"^[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+$")  # booking.day.question
COMMENT_TAG = "i18n:"  # `# i18n: …` just above a msg() call becomes a note for translators
PROJECT = "diaspora-bot"
TEMPLATE = "messages.pot"
WHATSAPP_LIMIT = 1600
TELEGRAM_LIMIT = 4096
# Babel writes no Plural-Forms header for locales that CLDR lacks, and `Catalog.update` drops
# one added by hand: `update` puts it back. No key uses plurals; this keeps gettext tools happy.
PLURAL_FORMS = {"mos": "nplurals=2; plural=(n > 1);", "dyu": "nplurals=1; plural=0;"}
DEFAULT_PLURAL_FORMS = "nplurals=2; plural=(n != 1);"

# Keys that the code does not write as msg("literal", …), so that the extractor cannot see
# them: flows.messages.raw builds Msg("common.raw", …), and flows/booking.py picks its
# confirmation keys in a variable, reminders keep theirs in a table. Named here, in a folder
# that babel.cfg extracts, so that `pybabel extract` and `i18n update` put them in
# messages.pot. `check` reports any other msg() call whose key it cannot resolve: a variable
# assigned literal keys in the same function, or else the key-like literals of the same file
# (`reminder.day_before`), must all be known keys.
RUNTIME_KEYS: tuple[Msg, ...] = (
    msg("common.raw", text=""),
    msg("booking.confirm.question"),
    msg("booking.confirm.reschedule"),
    msg("booking.confirmed"),
    msg("booking.rescheduled"),
    msg("reminder.day_before"),  # api/domain/reminders.py: msg(reminder.key, …)
    msg("reminder.two_hours"),
)


@dataclass(frozen=True)
class LanguageStats:
    lang: str
    total: int
    translated: int
    reviewed: int  # translated and not fuzzy

    @property
    def translated_pct(self) -> float:
        return 100.0 * self.translated / self.total if self.total else 100.0

    @property
    def reviewed_pct(self) -> float:
        return 100.0 * self.reviewed / self.total if self.total else 100.0


@dataclass
class KeyUse:
    """Where the code uses a key, with which parameters, and its notes for translators."""

    locations: list[tuple[str, int]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    params: set[str] = field(default_factory=set)
    open_params: bool = False  # called with **params: the names are not known


# --- paths --------------------------------------------------------------------------------------


def project_root() -> Path:
    """The folder holding babel.cfg, locales/ and the code (flows/, bot/, api/)."""
    return Path(__file__).resolve().parent.parent


def _locales(root: Path) -> Path:
    return root / "locales"


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


# --- extraction ---------------------------------------------------------------------------------


def _mapping(root: Path) -> tuple[list[tuple[str, str]], dict[str, dict[str, Any]]]:
    with (root / "babel.cfg").open(encoding="utf-8") as handle:
        parsed = parse_mapping_cfg(handle, str(root / "babel.cfg"))  # type: ignore[no-untyped-call]
    method_map, options_map = parsed
    return method_map, options_map


def _python_files(root: Path) -> Iterator[tuple[str, Path]]:
    """The files babel.cfg maps to the Python extractor, as (relative name, path)."""
    method_map, _options = _mapping(root)
    patterns = [pattern for pattern, method in method_map if method == "python"]
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            relative = _rel(path, root)
            if any(pathmatch(pattern, relative) for pattern in patterns):
                yield relative, path


def extract_keys(root: Path | None = None) -> dict[str, KeyUse]:
    """Every key in the code, found afresh by Babel's extractor, with its parameters."""
    root = root or project_root()
    method_map, options_map = _mapping(root)
    found: dict[str, KeyUse] = {}
    with contextlib.redirect_stderr(io.StringIO()):  # Babel warns on stderr; check() reports
        for filename, lineno, message, comments, _context in extract_from_dir(
            root,
            method_map,
            options_map,
            keywords={KEYWORD: None},
            comment_tags=(COMMENT_TAG,),
            strip_comment_tags=True,
        ):
            key = message if isinstance(message, str) else message[0]
            if not key:
                continue
            use = found.setdefault(key, KeyUse())
            use.locations.append((Path(filename).as_posix(), lineno))
            use.comments.extend(c for c in comments if c not in use.comments)
    calls, _problems = _code_calls(root, found)
    for key, call in calls.items():
        if key in found:
            found[key].params |= call.params
            found[key].open_params |= call.open_params
    return found


def _constant_keys(node: ast.expr) -> set[str] | None:
    """The strings an expression can be: a literal, or `"a" if c else "b"`; None if unknown."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        body, orelse = _constant_keys(node.body), _constant_keys(node.orelse)
        if body is not None and orelse is not None:
            return body | orelse
    return None


@dataclass
class _Use:
    params: set[str] = field(default_factory=set)
    open_params: bool = False
    indirect: list[str] = field(default_factory=list)  # where a variable names the key


class _Calls(ast.NodeVisitor):
    """msg() calls of one file: their keys (resolving simple variables) and keyword names."""

    def __init__(self, filename: str, namespaces: set[str]) -> None:
        self.filename = filename
        self.namespaces = namespaces
        self.scopes: list[dict[str, set[str] | None]] = [{}]
        self.literals: set[str] = set()
        self.uses: dict[str, _Use] = {}
        self.problems: list[str] = []

    def visit_Module(self, node: ast.Module) -> None:
        self.scopes = [self._assignments(node)]
        self.literals = {
            n.value
            for n in ast.walk(node)
            if isinstance(n, ast.Constant)
            and isinstance(n.value, str)
            and KEY_LIKE.match(n.value)
            and n.value.split(".")[0] in self.namespaces
        }
        self.generic_visit(node)

    def _scoped(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        scope = self._assignments(node)
        arguments = node.args
        for arg in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]:
            scope[arg.arg] = None  # a parameter: any key at all
        self.scopes.append(scope)
        self.generic_visit(node)
        self.scopes.pop()

    visit_FunctionDef = _scoped
    visit_AsyncFunctionDef = _scoped

    @staticmethod
    def _assignments(scope: ast.AST) -> dict[str, set[str] | None]:
        names: dict[str, set[str] | None] = {}
        for node in ast.walk(scope):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        known = names.get(target.id, set())
                        keys = _constant_keys(node.value)
                        names[target.id] = None if known is None or keys is None else known | keys
        return names

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name == KEYWORD and node.args:
            where = f"{self.filename}:{node.lineno}"
            keys = _constant_keys(node.args[0])
            indirect = keys is None
            if keys is None:
                keys = self._resolve(node.args[0])
            if keys is None:
                self.problems.append(
                    f"{where}: msg() with a key the extractor cannot see: write the key as a "
                    "literal, or name it in api/i18n_tools.py RUNTIME_KEYS"
                )
            else:
                params = {kw.arg for kw in node.keywords if kw.arg is not None}
                for key in keys:
                    use = self.uses.setdefault(key, _Use())
                    use.params |= params
                    use.open_params |= any(kw.arg is None for kw in node.keywords)
                    if indirect:
                        use.indirect.append(where)
        self.generic_visit(node)

    def _resolve(self, node: ast.expr) -> set[str] | None:
        """A local variable: the literals assigned to it. Anything else (`reminder.key`): the
        key-like literals of the file, when there are some."""
        if isinstance(node, ast.Name):
            for scope in reversed(self.scopes):
                if node.id in scope:
                    return scope[node.id]
        return self.literals or None


def _code_calls(root: Path, known: Iterable[str]) -> tuple[dict[str, _Use], list[str]]:
    """Every msg() call of the mapped files; problems for keys that extraction misses."""
    known = set(known)
    namespaces = {key.split(".")[0] for key in known}
    uses: dict[str, _Use] = {}
    problems: list[str] = []
    for relative, path in _python_files(root):
        try:
            tree = ast.parse(path.read_bytes(), filename=relative)
        except SyntaxError as exc:
            problems.append(f"{relative}: cannot parse: {exc.msg}")
            continue
        calls = _Calls(relative, namespaces)
        calls.visit(tree)
        problems.extend(calls.problems)
        for key, use in calls.uses.items():
            total = uses.setdefault(key, _Use())
            total.params |= use.params
            total.open_params |= use.open_params
            total.indirect.extend(use.indirect)
    for key in sorted(uses):
        if key not in known and uses[key].indirect:
            problems.append(
                f"{uses[key].indirect[0]}: msg() may use {key!r}, which the extractor cannot "
                "see: name it in api/i18n_tools.py RUNTIME_KEYS"
            )
    return uses, problems


def _version() -> str:
    try:
        return metadata.version(PROJECT)
    except metadata.PackageNotFoundError:
        return "0"


def build_template(keys: dict[str, KeyUse]) -> Catalog:
    template = Catalog(project=PROJECT, version=_version(), fuzzy=True)
    for key in sorted(keys):
        use = keys[key]
        template.add(key, "", locations=use.locations, auto_comments=use.comments)
    return template


# --- reading and writing catalogs ---------------------------------------------------------------


def _read(path: Path, *, strict: bool = False) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle, locale=None, domain=DOMAIN, abort_invalid=strict)


def _header(text: str) -> str:
    """The msgstr of the header entry (`msgid ""`), as written in the file."""
    start = text.find('msgid ""')
    if start < 0:
        return ""
    end = text.find("\n\n", start)
    return text[start : end if end >= 0 else len(text)]


def plural_forms_for(lang: str) -> str:
    """The Plural-Forms header of a language: CLDR's, ours for mos/dyu, else gettext's default."""
    if lang in PLURAL_FORMS:
        return PLURAL_FORMS[lang]
    try:
        catalog = Catalog(locale=lang)
    except ValueError:
        return DEFAULT_PLURAL_FORMS
    return catalog.plural_forms if catalog.locale is not None else DEFAULT_PLURAL_FORMS


def _dump(catalog: Catalog, lang: str | None) -> bytes:
    buffer = io.BytesIO()
    write_po(buffer, catalog, sort_output=True, ignore_obsolete=True)
    text = buffer.getvalue().decode("utf-8")
    if lang is not None and "Plural-Forms:" not in _header(text):
        header = _header(text)
        fixed = header.replace(
            '"MIME-Version:', f'"Plural-Forms: {plural_forms_for(lang)}\\n"\n"MIME-Version:', 1
        )
        text = text.replace(header, fixed, 1)
    return text.encode("utf-8")


# --- glossary -----------------------------------------------------------------------------------


def read_glossary(root: Path) -> list[dict[str, str]]:
    path = _locales(root) / "glossary.csv"
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _terms(value: str) -> list[str]:
    """'rendez-vous (RDV)' → ['rendez vous']; 'dossier / demande' → ['dossier', 'demande']."""
    words = []
    for part in value.split("/"):
        part = part.split("(")[0].strip()
        if part:
            words.append(fold(part))
    return words


def glossary_hints(french: str, lang: str, glossary: list[dict[str, str]]) -> list[str]:
    """The glossary entries that the French text uses, in the target language."""
    folded = fold(french)
    hints = []
    for row in glossary:
        target = (row.get(lang) or "").strip()
        if not target:
            continue
        if any(
            contains_phrase(folded, term) or contains_phrase(folded, term + "s")
            for term in _terms(row.get("fr") or "")
        ):
            hints.append(f"{row['fr']} = {target}")
    return hints


def french_seen(auto_comments: list[str]) -> str | None:
    """The French text an entry's `#. fr: …` comments show (the one its translator read)."""
    lines = [c[len("fr: ") :] for c in auto_comments if c.startswith("fr: ")]
    if not lines or lines == ["(missing)"]:
        return None
    return "\n".join(lines)


def source_comments(french: str, lang: str, glossary: list[dict[str, str]]) -> list[str]:
    """The comments a non-French entry carries: the French text, then glossary terms."""
    lines = [f"fr: {line}" for line in french.split("\n")] if french else ["fr: (missing)"]
    hints = glossary_hints(french, lang, glossary)
    if hints:
        lines.append("glossary: " + "; ".join(hints))
    return lines


# --- update -------------------------------------------------------------------------------------


def _catalog_languages(root: Path) -> list[str]:
    """Languages with a catalog, plus folders with a lexicon but no catalog yet (a new one)."""
    base = _locales(root)
    found = list(languages(base))
    if base.exists():
        for folder in sorted(p for p in base.iterdir() if p.is_dir()):
            if folder.name not in found and (folder / "lexicon.yaml").exists():
                found.append(folder.name)
    return found


def _same_template(old: Catalog, new: Catalog) -> bool:
    def shape(catalog: Catalog) -> list[tuple[Any, ...]]:
        return [
            # comments as words: a long one comes back from the file wrapped on two lines
            (m.id, tuple(m.locations), " ".join(m.auto_comments).split())
            for m in sorted((m for m in catalog if m.id), key=lambda m: str(m.id))
        ]

    return shape(old) == shape(new)


def update(root: Path | None = None) -> list[str]:
    """Re-extract the keys into messages.pot and merge them into every catalog.

    New keys arrive empty (never guessed from a similar key), keys gone from the code are
    dropped, fuzzy flags and translators' comments are kept, each non-French entry's comment
    shows the current French text, and Plural-Forms is restored. Returns what changed.
    """
    root = root or project_root()
    base = _locales(root)
    template = build_template(extract_keys(root))
    pot_path = base / TEMPLATE
    if pot_path.exists():
        with contextlib.suppress(PoFileError, ValueError, OSError):
            old = _read(pot_path)
            if _same_template(old, template):
                template.creation_date = old.creation_date
    base.mkdir(parents=True, exist_ok=True)
    pot_path.write_bytes(_dump(template, None))
    report = [f"{_rel(pot_path, root)}: {sum(1 for m in template if m.id)} keys"]

    glossary = read_glossary(root)
    ordered = sorted(_catalog_languages(root), key=lambda lang: lang != FALLBACK)
    french: dict[str, str] = {}
    for lang in ordered:
        path = catalog_path(lang, base)
        if path.exists():
            catalog = _read(path)
        else:
            catalog = Catalog(locale=lang, project=PROJECT, version=_version(), fuzzy=False)
            path.parent.mkdir(parents=True, exist_ok=True)
        before = {str(m.id) for m in catalog if m.id}
        source_changed: list[str] = []
        catalog.update(template, no_fuzzy_matching=True, update_header_comment=False)
        after = {str(m.id) for m in catalog if m.id}
        for message in catalog:
            if not message.id:
                continue
            key = str(message.id)
            if lang == FALLBACK:
                french[key] = str(message.string or "")
            else:
                seen = french_seen(list(message.auto_comments))
                now_french = french.get(key, "")
                reviewed = bool(message.string) and not message.fuzzy
                if reviewed and seen is not None and seen != now_french:
                    message.flags.add("fuzzy")  # reviewed against another French: review again
                    source_changed.append(key)
                comments = list(template[key].auto_comments) if template.get(key) else []
                message.auto_comments = comments + source_comments(
                    french.get(key, ""), lang, glossary
                )
        path.write_bytes(_dump(catalog, lang))
        added, dropped = sorted(after - before), sorted(before - after)
        line = f"{_rel(path, root)}: {len(after)} keys"
        if added:
            line += f", {len(added)} new (empty, to translate): {', '.join(added)}"
        if dropped:
            line += f", {len(dropped)} no longer in the code (dropped): {', '.join(dropped)}"
        if source_changed:
            line += (
                f", {len(source_changed)} French changed since review (fuzzy again, text kept):"
                f" {', '.join(source_changed)}"
            )
        report.append(line)
    report.extend(console_i18n.update(root, base))
    return report


# --- stats --------------------------------------------------------------------------------------


def stats(root: Path | None = None) -> list[LanguageStats]:
    """Per language: how many of the code's keys are translated, and how many reviewed."""
    root = root or project_root()
    keys = set(extract_keys(root))
    result = []
    for lang in languages(_locales(root)):
        path = catalog_path(lang, _locales(root))
        entries = {}
        if path.exists():
            entries = {str(m.id): m for m in _read(path) if m.id}
        translated = [k for k in keys if k in entries and entries[k].string]
        reviewed = [k for k in translated if not entries[k].fuzzy]
        result.append(LanguageStats(lang, len(keys), len(translated), len(reviewed)))
    return result


# --- check --------------------------------------------------------------------------------------


def placeholders(text: str) -> set[str]:
    """The {names} of a template; ValueError when its braces are broken."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


_LONG_POST = "Consulat général du Burkina Faso à Abidjan, Côte d'Ivoire (Plateau, avenue Terrasson)"
_LONG_ADDRESS = (
    "Immeuble de la Caisse de stabilisation, 4e étage, boulevard de la République, "
    "avenue Terrasson de Fougères, Plateau, 01 BP 908 Abidjan 01, Côte d'Ivoire"
)
_LONG_FEE = (
    "50 000 FCFA au Burkina ; à l'étranger, selon le poste : 80 € avec une carte consulaire "
    "valide, 160 € sans. Timbre fiscal de 200 FCFA en plus. Paiement sur place uniquement."
)
_LONG_REASON = (
    "Dossier incomplet : l'extrait d'acte de naissance fourni n'est pas lisible et le "
    "certificat de nationalité a plus de trois mois. Merci de revenir avec un extrait récent, "
    "un certificat de nationalité de moins de trois mois et une copie légalisée de la CNIB. "
    "Aucun nouveau rendez-vous n'est nécessaire pour déposer ces pièces au guichet."
)


def sample_values() -> dict[str, list[Any]]:
    """Realistic, long values for each parameter name; the longest rendering is kept."""
    half = Msg("contacts.hours.clock_minutes", {"hour": 12, "minute": "30"})
    day = date(2026, 9, 30)  # a Wednesday in September: long names in most languages
    # Msg(), not msg(): these samples must not count as uses of the keys in messages.pot
    item = Msg(
        "appointments.item",
        {
            "reference": "RDV-ABC123",
            "service": Msg("service.consular_card"),
            "post": raw("New York"),
            "day": day,
            "time": time(14, 30),
        },
    )
    return {
        "day": [day, date(2026, 12, 2)],
        "time": [time(14, 30)],
        "opens": [time(8, 0)],
        "closes": [time(15, 30)],
        "reference": ["RDV-ABC123", "ABJ-2026-000123"],
        "post": [raw(_LONG_POST)],
        "address": [raw(_LONG_ADDRESS)],
        "phone": [raw("+225 27 20 21 22 23 / +225 07 07 07 07 07")],
        "email": [raw("consulat.general.abidjan@diplomatie.gov.bf")],
        "timezone": [raw("America/New_York")],
        "name": [raw("Aminata Ouédraogo-Sawadogo épouse Compaoré Kaboré Zongo Traoré Ki")],
        "reason": [raw(_LONG_REASON)],
        "fee": [raw(_LONG_FEE)],
        "count": [12],
        "text": [raw(_LONG_POST)],
        "item": [item],
        "service": [Msg(f"service.{code}") for code in _SERVICES],
        "status": [Msg(f"status.{s}") for s in _STATUSES],
        "weekday": [Msg(f"weekday.{d}") for d in _WEEKDAYS],
        "days": [
            Msg("contacts.hours.days", {"first": Msg(f"weekday.{a}"), "last": Msg(f"weekday.{b}")})
            for a in _WEEKDAYS
            for b in _WEEKDAYS
        ],
        "times": [
            Msg(
                "contacts.hours.and",
                {
                    "first": Msg("contacts.hours.interval", {"opens": half, "closes": half}),
                    "second": Msg("contacts.hours.interval", {"opens": half, "closes": half}),
                },
            )
        ],
        "hour": [23],
        "minute": ["30"],
    }


_SERVICES = (
    "passport",
    "cnib",
    "consular_card",
    "civil_status",
    "legalization",
    "laissez_passer",
    "other",
)
_STATUSES = ("received", "in_progress", "ready", "delivered", "rejected")
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def sample_params(names: Iterable[str], renderer: Renderer, lang: str) -> dict[str, Any]:
    """For each name, the sample value that renders longest in that language."""
    values = sample_values()
    chosen: dict[str, Any] = {}
    for name in names:
        candidates = values.get(name) or [raw("x" * 80)]
        chosen[name] = max(candidates, key=lambda v: len(renderer.value(v, lang)))
    return chosen


def _replies(renderer: Renderer, lang: str) -> Iterator[tuple[str, list[Msg], list[Msg]]]:
    """The longest replies the flows put together, as (name, lines, choices)."""

    def m(key: str, *names: str) -> Msg:
        return Msg(key, sample_params(names, renderer, lang))

    menu = [m(f"menu.{e}") for e in ("book", "track", "my_appointments", "info", "contacts")]
    menu.append(m("menu.language"))
    names = [raw("Français"), raw("Mooré"), raw("Dioula"), raw("Fulfulde"), raw("English")]
    yield "first contact", [m("common.welcome"), m("language.choose.question")], names
    yield "main menu", [m("common.expired"), m("menu.main.help"), m("menu.main.question")], menu
    for code in _SERVICES:
        fee = m("info.fee", "post", "fee")
        details = Msg("info.details", {"service": Msg(f"service.{code}")})
        lines = [details, m(f"service.{code}.documents"), fee, fee, fee]
        lines += [m("info.in_person"), m("info.next.question")]
        yield f"info {code}", lines, [m("info.next.book"), m("info.next.other")]
    days = [m("common.day", "day")] * 6
    yield (
        "days",
        [m("booking.day_unavailable", "day"), m("booking.day.question", "service")],
        days,
    )
    times = [m("common.time", "time")] * 12
    yield "times", [m("booking.taken"), m("booking.time.question", "day")], times
    confirm = m("booking.confirm.question", "service", "post", "day", "time", "name")
    yield "confirm", [m("booking.confirm.help"), confirm], [m("common.yes"), m("common.no")]
    done = m("booking.confirmed", "reference", "service", "post", "address", "day", "time")
    yield "confirmed", [done, m("menu.main.question")], menu
    contacts = [m("contacts.details", "post", "address", "phone", "email")]
    contacts += [m("contacts.hours.line", "days", "times")] * 4
    contacts += [m("contacts.timezone", "timezone"), m("menu.main.question")]
    yield "contacts", contacts, menu
    found = m("status.found", "reference", "service", "post", "status", "reason")
    yield "status", [found, m("menu.main.question")], menu
    yield (
        "appointments",
        [m("appointments.list.help"), m("appointments.list.question", "count")],
        [m("appointments.item", "reference", "service", "post", "day", "time")] * 5,
    )


def _check_lengths(renderer: Renderer, keys: dict[str, set[str]]) -> list[str]:
    problems = []
    for lang in renderer.languages:
        for key in sorted(keys):
            text = renderer.render(Msg(key, sample_params(keys[key], renderer, lang)), lang)
            problems.extend(_over_limit(f"{lang}: {key}", text))
        for name, lines, choices in _replies(renderer, lang):
            rendered = renderer.render_reply(Reply(tuple(lines), tuple(choices)), lang)
            problems.extend(_over_limit(f"{lang}: reply '{name}'", rendered.with_numbers()))
    return problems


def _over_limit(what: str, text: str) -> list[str]:
    if len(text) > TELEGRAM_LIMIT:
        return [f"{what}: {len(text)} characters, over Telegram's {TELEGRAM_LIMIT:,}"]
    if len(text) > WHATSAPP_LIMIT:
        return [f"{what}: {len(text)} characters, over WhatsApp's {WHATSAPP_LIMIT:,}"]
    return []


def _check_lexicons(root: Path, langs: Iterable[str]) -> list[str]:
    problems = []
    base = _locales(root)
    for lang in langs:
        path = base / lang / "lexicon.yaml"
        if not path.exists():
            problems.append(f"{_rel(path, root)}: missing (words the bot understands)")
            continue
        try:
            lexicon = Lexicon.from_mapping(read_yaml(path))
        except Exception as exc:  # a data file: report whatever is wrong with it
            problems.append(f"{_rel(path, root)}: invalid: {exc}")
            continue
        if lexicon.language != lang:
            problems.append(f"{_rel(path, root)}: language is {lexicon.language!r}, not {lang!r}")
    return problems


def _has_cldr(lang: str) -> bool:
    try:
        Locale.parse(BABEL_LOCALES.get(lang, lang))
    except (UnknownLocaleError, ValueError):
        return False
    return True


def _check_calendars(root: Path, langs: Iterable[str]) -> list[str]:
    problems = []
    for lang in langs:
        path = _locales(root) / lang / "calendar.yaml"
        where = _rel(path, root)
        if not path.exists():
            if not _has_cldr(lang):
                problems.append(
                    f"{where}: missing, and CLDR has no {lang!r}: dates come out French"
                )
            continue
        try:
            data = read_yaml(path)
            days, months = data["days"]["wide"], data["months"]["wide"]
            pattern = str(data.get("date_pattern", "{weekday} {day} {month}"))
            used = placeholders(pattern)
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(f"{where}: invalid: {exc}")
            continue
        if len(days) != 7 or len(months) != 12:
            problems.append(f"{where}: needs 7 day names and 12 month names")
        if not used <= {"weekday", "day", "month", "year"}:
            problems.append(f"{where}: date_pattern uses unknown names {sorted(used)}")
    return problems


def check(root: Path | None = None) -> list[str]:
    """Every problem of the catalogs, the template, the lexicons and calendars; [] when fine."""
    root = root or project_root()
    base = _locales(root)
    problems: list[str] = []
    try:
        code = extract_keys(root)
    except OSError as exc:
        return [f"babel.cfg: {exc}"]
    problems.extend(_code_calls(root, code)[1])

    # the template
    pot_path = base / TEMPLATE
    pot_keys: set[str] = set()
    try:
        pot_keys = {str(m.id) for m in _read(pot_path, strict=True) if m.id}
    except FileNotFoundError:
        problems.append(f"{_rel(pot_path, root)}: missing: run `diaspora-bot i18n update`")
    except (PoFileError, ValueError) as exc:
        problems.append(f"{_rel(pot_path, root)}: does not parse: {exc}")
    else:
        for key in sorted(set(code) - pot_keys):
            problems.append(f"{TEMPLATE}: {key}: in the code, not in the template (run update)")
        for key in sorted(pot_keys - set(code)):
            problems.append(f"{TEMPLATE}: {key}: no longer in the code (run update)")

    # the catalogs
    langs = list(languages(base))
    catalogs: dict[str, dict[str, str]] = {}
    for lang in langs:
        path = catalog_path(lang, base)
        where = _rel(path, root)
        try:
            catalog = _read(path, strict=True)
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            problems.append(f"{where}: missing: run `diaspora-bot i18n update`")
            continue
        except (PoFileError, ValueError) as exc:
            problems.append(f"{where}: does not parse: {exc}")
            continue
        if "Plural-Forms:" not in _header(text):
            problems.append(f"{where}: no Plural-Forms header (run update)")
        catalogs[lang] = {str(m.id): str(m.string or "") for m in catalog if m.id}

    every_key = set(code) | pot_keys
    for entries in catalogs.values():
        every_key |= set(entries)
    for lang in LANGUAGES:  # the five of the menu must be complete; others fall back to French
        if lang not in catalogs:
            continue
        for key in sorted(every_key):
            if not catalogs[lang].get(key, "").strip():
                state = "empty" if key in catalogs[lang] else "missing"
                problems.append(f"{lang}: {key}: {state}")

    # placeholders: the same as the French entry's, and given by the code
    french = catalogs.get(FALLBACK, {})
    params_of: dict[str, set[str]] = {}
    for key in sorted(every_key):
        source = french.get(key, "")
        try:
            wanted = placeholders(source)
        except ValueError as exc:
            problems.append(f"{FALLBACK}: {key}: broken braces: {exc}")
            continue
        params_of[key] = wanted | code.get(key, KeyUse()).params
        bad = sorted(name for name in wanted if not name.isidentifier())
        if bad:
            problems.append(f"{FALLBACK}: {key}: placeholders must be names, not {bad}")
        use = code.get(key)
        if use is not None and not use.open_params:
            for name in sorted(wanted - use.params):
                problems.append(f"{FALLBACK}: {key}: {{{name}}} is never given by the code")
        for lang, entries in catalogs.items():
            text = entries.get(key, "")
            if lang == FALLBACK or not text:
                continue
            try:
                found = placeholders(text)
            except ValueError as exc:
                problems.append(f"{lang}: {key}: broken braces: {exc}")
                continue
            if found != wanted:
                problems.append(
                    f"{lang}: {key}: placeholders {sorted(found)} differ from French "
                    f"{sorted(wanted)}"
                )

    # lengths, once rendered with long, realistic values
    if len(catalogs) == len(langs) and FALLBACK in catalogs:
        problems.extend(_check_lengths(Renderer(base), params_of))

    problems.extend(_check_lexicons(root, langs))
    problems.extend(_check_calendars(root, langs))
    problems.extend(console_i18n.check(root, base))
    return problems


def key_count(root: Path | None = None) -> int:
    return len(extract_keys(root or project_root()))


def catalog_languages(root: Path | None = None) -> tuple[str, ...]:
    return languages(_locales(root or project_root()))
