"""Translation tools: extract the message keys, count reviews, merge updates (the catalogs'
checks are api.i18n_check).

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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import PoFileError, read_po, write_po
from babel.util import pathmatch

from api import console_i18n
from bot.i18n import FALLBACK
from bot.locales import DOMAIN, catalog_path, languages
from flows.messages import Msg, msg
from flows.text import contains_phrase, fold

KEYWORD = "msg"
KEY_LIKE = re.compile(r"^[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+$")  # booking.day.question
COMMENT_TAG = "i18n:"  # `# i18n: …` just above a msg() call becomes a note for translators
PROJECT = "diaspora-bot"
TEMPLATE = "messages.pot"
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


def key_count(root: Path | None = None) -> int:
    return len(extract_keys(root or project_root()))


def catalog_languages(root: Path | None = None) -> tuple[str, ...]:
    return languages(_locales(root or project_root()))
