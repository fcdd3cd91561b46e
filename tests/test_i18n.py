"""The five languages: catalogs complete and consistent, drafts marked, dates in each
language, greetings and numbers understood, and the tools a reviewer and a developer use."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from datetime import date, time
from pathlib import Path

import pytest
import yaml
from babel.dates import format_date
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from api import i18n_check, i18n_tools
from bot.i18n import Renderer
from bot.locales import catalog_path, languages, load_calendar, load_lexicons
from flows.engine import LANGUAGES
from flows.messages import Msg, msg
from flows.text import expand, fold
from flows.understanding import detect_language, number

ROOT = i18n_tools.project_root()
LOCALES = ROOT / "locales"
DRAFTED = ("mos", "dyu", "ff")
LEFTOVER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(LOCALES)


@pytest.fixture(scope="module")
def keys() -> dict[str, i18n_tools.KeyUse]:
    return i18n_tools.extract_keys(ROOT)


def _catalog(lang: str, base: Path = LOCALES) -> Catalog:
    with catalog_path(lang, base).open("rb") as handle:
        return read_po(handle)


# --- i18n check -------------------------------------------------------------------------------


def test_check_finds_no_problem() -> None:
    assert i18n_check.check(ROOT) == []


def test_the_cli_check_passes() -> None:
    command = Path(sys.executable).parent / "diaspora-bot"
    done = subprocess.run(
        [str(command), "i18n", "check"], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.fullmatch(r"ok: \d+ keys, 5 languages\n", done.stdout), done.stdout


def test_the_five_catalogs_hold_every_key_of_the_code(
    keys: dict[str, i18n_tools.KeyUse], renderer: Renderer
) -> None:
    assert len(keys) > 100
    for lang in LANGUAGES:
        missing = sorted(set(keys) - set(renderer.messages[lang]))
        assert not missing, f"{lang}: {missing}"


def test_stats_count_drafts_as_translated_not_reviewed() -> None:
    by_lang = {row.lang: row for row in i18n_tools.stats(ROOT)}
    assert set(by_lang) == set(LANGUAGES)
    for lang in ("fr", "en"):
        assert by_lang[lang].translated == by_lang[lang].reviewed == by_lang[lang].total
    for lang in DRAFTED:
        row = by_lang[lang]
        assert row.translated == row.total
        assert row.reviewed < row.total // 10  # only the entries without words


# --- rendering --------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_key_renders_with_realistic_values(
    lang: str, keys: dict[str, i18n_tools.KeyUse], renderer: Renderer
) -> None:
    french = renderer.messages["fr"]
    for key, use in sorted(keys.items()):
        names = i18n_check.placeholders(french[key]) | use.params
        params = i18n_check.sample_params(names, renderer, lang)
        text = renderer.render(Msg(key, params), lang)
        assert text.strip(), f"{lang}: {key} is empty"
        assert not LEFTOVER.search(text), f"{lang}: {key} leaves a placeholder: {text!r}"
        shown_keys = [k for k in keys if k in text]
        assert not shown_keys, f"{lang}: {key} shows a key instead of text: {shown_keys}"
        assert len(text) <= i18n_check.WHATSAPP_LIMIT, f"{lang}: {key} is {len(text)} long"


def test_french_and_english_wording_that_the_scripts_rely_on(renderer: Renderer) -> None:
    def fr(key: str, **params: object) -> str:
        return renderer.render(msg(key, **params), "fr")

    choose = fr("language.choose.question")
    assert "Choisissez votre langue" in choose
    assert "Choose your language" in choose
    assert re.search(r"(?i)rendez-vous", fr("menu.book"))
    assert re.search(r"(?i)suivre", fr("menu.track"))
    assert re.search(r"(?i)mes rendez-vous", fr("menu.my_appointments"))
    assert re.search(r"(?i)(annonces|d[eé]sabonn|plus de messages)", fr("common.stopped"))
    assert "START" in fr("common.stopped")
    assert "REPRENDRE" in fr("common.stopped")
    assert re.search(r"(?i)nom", fr("booking.name.question"))
    assert re.search(r"(?i)service", fr("booking.service.help"))
    assert re.search(r"(?i)num[eé]ro", fr("booking.service.help"))
    assert "ABJ-2026-000123" in fr("status.reference.question")
    assert "annulé" in fr("appointments.cancelled", item="RDV-ABC123")
    confirmed = fr(
        "booking.confirmed",
        reference="RDV-ABC123",
        service=msg("service.passport"),
        post="Consulat général, Abidjan",
        address="Plateau",
        day=date(2026, 12, 2),
        time=time(9, 30),
    )
    for part in ("RDV-ABC123", "Passeport", "Consulat général, Abidjan", "09:30", "menu 4"):
        assert part in confirmed
    assert re.search(r"(?i)appointment", renderer.render(msg("menu.book"), "en"))
    assert re.search(r"(?i)name", renderer.render(msg("booking.name.question"), "en"))


def test_moore_menu_and_welcome_are_moore(renderer: Renderer) -> None:
    entries = ("book", "track", "my_appointments", "info", "contacts", "language")
    keys = ["common.welcome", "menu.main.question", *(f"menu.{e}" for e in entries)]
    for key in keys:
        text = renderer.render(msg(key), "mos")
        assert text != renderer.render(msg(key), "fr"), key
        assert not re.search(r"(?i)(bienvenue|choisissez|tapez|rendez-vous au consulat)", text)


def test_no_text_writes_the_numbered_choices_itself(renderer: Renderer) -> None:
    for lang in LANGUAGES:
        for key, text in renderer.messages[lang].items():
            assert not re.search(r"(?m)^\s*1[.)] ", text), f"{lang}: {key}"


# --- drafts -----------------------------------------------------------------------------------


def _has_words(text: str) -> bool:
    return any(ch.isalpha() for ch in LEFTOVER.sub("", text))


@pytest.mark.parametrize("lang", DRAFTED)
def test_drafts_are_fuzzy_and_show_the_french_source(lang: str) -> None:
    french = {str(m.id): str(m.string) for m in _catalog("fr") if m.id}
    for message in _catalog(lang):
        if not message.id:
            continue
        if _has_words(str(message.string)):
            assert message.fuzzy, f"{lang}: {message.id} is a draft but not marked fuzzy"
        first_line = french[str(message.id)].split("\n")[0]
        comments = " ".join(message.auto_comments)  # long lines are wrapped
        assert f"fr: {first_line}" in comments, message.id


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_french_and_english_have_no_draft(lang: str) -> None:
    assert [m.id for m in _catalog(lang) if m.id and m.fuzzy] == []


def test_every_catalog_has_a_plural_forms_header() -> None:
    for lang in LANGUAGES:
        text = catalog_path(lang, LOCALES).read_text(encoding="utf-8")
        assert re.search(r'^"Plural-Forms: nplurals=\d; plural=', text, re.M), lang


def test_drafts_follow_the_glossary(renderer: Renderer) -> None:
    """Where the glossary gives a loanword, the drafts use it."""
    for lang in DRAFTED:
        assert "rendez-vous" in renderer.render(msg("menu.book"), lang)
        assert "CNIB" in renderer.render(msg("service.cnib"), lang)
        assert "passeport" in renderer.render(msg("service.passport"), lang)
        assert "Carte consulaire" in renderer.render(msg("service.consular_card"), lang)


# --- dates ------------------------------------------------------------------------------------


def test_dates_in_each_language(renderer: Renderer) -> None:
    monday, wednesday = date(2026, 12, 7), date(2026, 12, 2)
    assert renderer.format_day(wednesday, "fr") == "mercredi 2 décembre"
    assert renderer.format_day(wednesday, "en") == "Wednesday 2 December"
    for lang in ("mos", "dyu"):  # CLDR lacks them: the names are data in locales/
        calendar = load_calendar(lang, LOCALES)
        assert calendar is not None
        monday_name = calendar["days"]["wide"][0]
        december = calendar["months"]["wide"][11]
        assert renderer.format_day(monday, lang) == f"{monday_name} 7 {december}"
        rendered = renderer.render(msg("booking.day_full", day=monday), lang)
        assert monday_name in rendered
    assert renderer.format_day(date(2026, 12, 7), "mos").startswith("Tẽnen")
    assert renderer.format_day(date(2026, 12, 7), "dyu").startswith("Tɛnɛn")
    assert renderer.format_day(monday, "ff") == format_date(
        monday, "EEEE d MMMM", locale="ff_Latn_BF"
    )
    assert renderer.format_time(time(9, 5), "mos") == "09:05"


# --- understanding ----------------------------------------------------------------------------


GREETINGS = [
    ("Ne y yibeoogo", "mos"),
    ("Ne y windga", "mos"),
    ("I ni sɔgɔma", "dyu"),
    ("I ni sogoma", "dyu"),
    ("Jam waali", "ff"),
    ("Hello", "en"),
    ("Good morning", "en"),
    ("Bonjour", "fr"),  # recognised, and still answered with the language menu
    ("bjr", "fr"),
    ("merci", "fr"),  # a French word: the first contact leads to the language menu as well
    ("ok", None),
    ("1", None),
    ("🙂", None),
    ("", None),
]


@pytest.mark.parametrize(("text", "expected"), GREETINGS)
def test_greetings_detect_the_language(text: str, expected: str | None) -> None:
    lexicons = load_lexicons(LOCALES)
    folded = expand(fold(text), lexicons["fr"].shortcuts)
    found = detect_language(folded, [lexicons[code] for code in LANGUAGES])
    assert found == expected


def test_special_letters_are_folded() -> None:
    assert fold("Ɔwɔ") == "owo"
    assert fold("I ni sɔgɔma") == "i ni sogoma"
    assert fold("Tẽnen, Arzũma") == "tenen arzuma"
    assert fold("Ŋaa ɛ ã") == "naa e a"
    assert fold("jam ɓaɗɗo ƴ") == "jam baddo y"


NUMBERS = {
    "fr": ["un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "dix"],
    "en": ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"],
    "mos": ["a ye", "a yiibu", "a tãabo", "a naase", "a nu", "a yoobe", "a yopoe", "a nii",
            "a wae", "a piiga"],
    "dyu": ["kelen", "fila", "saba", "naani", "duuru", "wɔɔrɔ", "wolonwula", "seegin",
            "kɔnɔntɔn", "tan"],
    "ff": ["go'o", "ɗiɗi", "tati", "nayi", "joyi", "jeego", "jeeɗiɗi", "jeetati", "jeenayi",
           "sappo"],
}  # fmt: skip


def _number_cases() -> list[object]:
    cases: list[object] = []
    for lang, words in NUMBERS.items():
        for value, word in enumerate(words, start=1):
            cases.append(pytest.param(lang, word, value, id=f"{lang}-{value}"))
    return cases


@pytest.mark.parametrize(("lang", "word", "value"), _number_cases())
def test_numbers_as_words(lang: str, word: str, value: int) -> None:
    lexicons = load_lexicons(LOCALES)
    assert number(fold(word), lexicons.chain(lang)) == value


# --- the tools on a copy of the project -------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of what the tools read: babel.cfg, locales/ and the Python code."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "static", "templates", "migrations")
    for folder in ("flows", "bot", "api"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=skip)
    shutil.copytree(LOCALES, tmp_path / "locales")
    shutil.copy(ROOT / "babel.cfg", tmp_path / "babel.cfg")
    return tmp_path


def _contents(base: Path) -> dict[str, list[tuple[object, ...]]]:
    """What the template and catalogs say, without where the code is (line numbers move)."""
    found: dict[str, list[tuple[object, ...]]] = {}
    for path in sorted([base / i18n_tools.TEMPLATE, *base.glob("*/LC_MESSAGES/messages.po")]):
        with path.open("rb") as handle:
            catalog = read_po(handle)
        found[str(path.relative_to(base))] = [
            (m.id, m.string, sorted(m.flags), m.auto_comments, m.user_comments)
            for m in catalog
            if m.id
        ]
    return found


def test_the_catalogs_are_up_to_date_with_the_code(project: Path) -> None:
    """`i18n update` on the committed files changes nothing but line numbers."""
    before = _contents(project / "locales")
    i18n_tools.update(project)
    assert _contents(project / "locales") == before
    once = {p: p.read_bytes() for p in sorted((project / "locales").rglob("*.po*"))}
    i18n_tools.update(project)
    assert {p: p.read_bytes() for p in once} == once  # and a second run, nothing at all


def test_a_new_key_reaches_every_catalog_empty(project: Path) -> None:
    (project / "flows" / "zz_new.py").write_text(
        'from flows.messages import msg\n\nNEW = msg("service.passport.fees", fee="50 000")\n',
        encoding="utf-8",
    )
    assert "service.passport.fees" in " ".join(i18n_check.check(project))
    report = i18n_tools.update(project)
    assert any("service.passport.fees" in line for line in report)
    for lang in LANGUAGES:
        entry = _catalog(lang, project / "locales").get("service.passport.fees")
        assert entry is not None
        assert entry.string == ""  # never guessed from a similar key
        assert not entry.fuzzy
    problems = i18n_check.check(project)
    assert "fr: service.passport.fees: empty" in problems
    assert "mos: service.passport.fees: empty" in problems
    # Plural-Forms survives the update for the languages CLDR lacks
    text = catalog_path("dyu", project / "locales").read_text(encoding="utf-8")
    assert '"Plural-Forms: nplurals=1; plural=0;\\n"' in text


def test_a_key_chosen_at_run_time_must_be_declared(project: Path) -> None:
    (project / "api" / "zz_dynamic.py").write_text(
        "from flows.messages import msg\n\n\n"
        "def pick(flag: bool):\n"
        '    key = "common.brand_new" if flag else "common.yes"\n'
        "    return msg(key)\n\n\n"
        "def anything(key: str):\n"
        "    return msg(key)\n",
        encoding="utf-8",
    )
    problems = i18n_check.check(project)
    assert any("'common.brand_new'" in p and "zz_dynamic.py:6" in p for p in problems)
    assert any("zz_dynamic.py:10" in p and "cannot see" in p for p in problems)


def test_check_reports_broken_catalogs(project: Path) -> None:
    base = project / "locales"
    mos = catalog_path("mos", base)
    text = mos.read_text(encoding="utf-8")
    text = text.replace('"Yaafa, {day} pida zaka."', '"Yaafa, {jour} pida zaka."')
    mos.write_text(text, encoding="utf-8")
    fr = catalog_path("fr", base)
    fr.write_text(
        re.sub(r'"Plural-Forms: [^"]*"\n', "", fr.read_text(encoding="utf-8")), encoding="utf-8"
    )
    en = catalog_path("en", base)
    en.write_text(
        en.read_text(encoding="utf-8").replace('msgstr "Book an appointment"', 'msgstr ""'),
        encoding="utf-8",
    )
    dyu = catalog_path("dyu", base)
    dyu.write_text(
        dyu.read_text(encoding="utf-8").replace(
            'msgstr "Hakɛto, {day} fara."', f'msgstr "Hakɛto, {{day}} {"fara " * 400}"'
        ),
        encoding="utf-8",
    )
    lexicon = base / "ff" / "lexicon.yaml"
    data = yaml.safe_load(lexicon.read_text(encoding="utf-8"))
    del data["weekdays"][6]
    lexicon.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")

    problems = i18n_check.check(project)
    joined = "\n".join(problems)
    assert "mos: booking.day_full: placeholders ['jour'] differ from French ['day']" in problems
    assert "locales/fr/LC_MESSAGES/messages.po: no Plural-Forms header (run update)" in problems
    assert "en: menu.book: empty" in problems
    assert re.search(r"dyu: booking\.day_full: \d+ characters, over WhatsApp's 1,600", joined)
    assert "locales/ff/lexicon.yaml: invalid" in joined

    ff = catalog_path("ff", base)
    ff.write_text('msgid "a"\nmsgstr "b"\nthis is not a po file\n', encoding="utf-8")
    assert any("ff/LC_MESSAGES/messages.po: does not parse" in p for p in i18n_check.check(project))


def test_a_sixth_language_is_data_only(project: Path) -> None:
    base = project / "locales"
    (base / "gux").mkdir()
    lexicon = yaml.safe_load((base / "mos" / "lexicon.yaml").read_text(encoding="utf-8"))
    lexicon.update(language="gux", name="Gulmancema", review="draft")
    (base / "gux" / "lexicon.yaml").write_text(
        yaml.safe_dump(lexicon, allow_unicode=True), encoding="utf-8"
    )
    shutil.copy(base / "mos" / "calendar.yaml", base / "gux" / "calendar.yaml")

    i18n_tools.update(project)

    assert catalog_path("gux", base).exists()
    assert languages(base) == (*LANGUAGES, "gux")
    assert i18n_check.check(project) == []  # an incomplete extra language is not an error
    gux = {row.lang: row for row in i18n_tools.stats(project)}["gux"]
    assert (gux.translated, gux.reviewed) == (0, 0)
    text = catalog_path("gux", base).read_text(encoding="utf-8")
    assert "Plural-Forms:" in text
    assert "#. fr: Prendre rendez-vous" in text
    renderer = Renderer(base)
    assert "gux" in renderer.languages
    assert renderer.render(msg("menu.book"), "gux") == "Prendre rendez-vous"  # French fallback
    assert renderer.format_day(date(2026, 12, 7), "gux").startswith("Tẽnen")
