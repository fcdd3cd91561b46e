"""Reading the data folder `locales/`: catalogs, lexicons, calendars of languages CLDR lacks."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from flows.engine import LANGUAGES
from flows.lexicon import Lexicon, Lexicons

DOMAIN = "messages"


def locales_dir() -> Path:
    """`LOCALES_DIR`, else the `locales/` folder beside the code."""
    configured = os.environ.get("LOCALES_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parent.parent / "locales"


def catalog_path(lang: str, root: Path | None = None) -> Path:
    return (root or locales_dir()) / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalog(lang: str, root: Path | None = None) -> Catalog:
    with catalog_path(lang, root).open("rb") as handle:
        return read_po(handle, locale=None, domain=DOMAIN)


def read_yaml(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top")
    return data


def languages(root: Path | None = None) -> tuple[str, ...]:
    """The menu's five languages, then any other language folder that has a catalog."""
    base = root or locales_dir()
    extra = (
        sorted(
            p.name
            for p in base.iterdir()
            if p.is_dir() and p.name not in LANGUAGES and catalog_path(p.name, base).exists()
        )
        if base.exists()
        else []
    )
    return (*LANGUAGES, *extra)


@lru_cache(maxsize=4)
def load_lexicons(root: Path | None = None) -> Lexicons:
    base = root or locales_dir()
    by_lang = {}
    for lang in languages(base):
        path = base / lang / "lexicon.yaml"
        if path.exists():
            by_lang[lang] = Lexicon.from_mapping(read_yaml(path))
    return Lexicons(by_lang=by_lang)


def load_calendar(lang: str, root: Path | None = None) -> dict[str, Any] | None:
    path = (root or locales_dir()) / lang / "calendar.yaml"
    return read_yaml(path) if path.exists() else None
