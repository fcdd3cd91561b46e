"""The catalogs' checks (`diaspora-bot i18n check`): the template against the code, every
catalog complete, placeholders the same as the French and given by the code, every message and
the longest replies within the channels' limits once rendered with long, realistic values
(`sample_params`, also the console's previews), the lexicons and the calendars."""

from __future__ import annotations

import string
from collections.abc import Iterable, Iterator
from datetime import date, time
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.messages.pofile import PoFileError

from api import console_i18n
from api.i18n_tools import (
    TEMPLATE,
    KeyUse,
    _code_calls,
    _header,
    _locales,
    _read,
    _rel,
    extract_keys,
    project_root,
)
from bot.channels import TEXT_LIMITS
from bot.i18n import BABEL_LOCALES, FALLBACK, Renderer
from bot.locales import catalog_path, languages, read_yaml
from flows.engine import LANGUAGES
from flows.lexicon import Lexicon
from flows.messages import Msg, Reply, raw

WHATSAPP_LIMIT = TEXT_LIMITS["whatsapp"]
TELEGRAM_LIMIT = TEXT_LIMITS["telegram"]


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
