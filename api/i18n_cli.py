"""`diaspora-bot i18n …`: the translators' and developers' commands (logic in api.i18n_tools
and api.i18n_check).

- `check`  every problem of the catalogs, one per line; exit 1 if any (run by the test suite)
- `stats`  per language: how much is translated, how much reviewed by a native speaker
- `update` after adding or removing a msg("key") in the code: re-extract and merge
- `export` the texts reviewed in the console (database) into the .po files, translators credited
- `import` .po files edited in Poedit into the database (the bot uses them at once)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from api import i18n_check, i18n_tools

i18n_app = typer.Typer(
    help="Translations: the catalogs under locales/ (see README, Languages).",
    no_args_is_help=True,
)

RootOption = Annotated[
    Path | None,
    typer.Option(
        "--root",
        help="Project folder holding babel.cfg, locales/ and the code (default: this checkout).",
        file_okay=False,
        exists=True,
    ),
]


@i18n_app.command("check")
def check(root: RootOption = None) -> None:
    """Every catalog complete and consistent: keys, placeholders, lengths, headers, lexicons."""
    problems = i18n_check.check(root)
    for problem in problems:
        typer.echo(problem)
    if problems:
        typer.echo(f"{len(problems)} problem(s)", err=True)
        raise typer.Exit(1)
    keys = i18n_tools.key_count(root)
    langs = i18n_tools.catalog_languages(root)
    typer.echo(f"ok: {keys} keys, {len(langs)} languages")


@i18n_app.command("stats")
def stats(root: RootOption = None) -> None:
    """Per language: translated and reviewed (translated and not marked fuzzy), in %."""
    rows = i18n_tools.stats(root)
    typer.echo(f"{'language':<10}{'keys':>6}{'translated':>14}{'reviewed':>14}")
    for row in rows:
        typer.echo(
            f"{row.lang:<10}{row.total:>6}"
            f"{row.translated:>6} {row.translated_pct:6.1f}%"
            f"{row.reviewed:>6} {row.reviewed_pct:6.1f}%"
        )
    progress = _console_progress()
    if progress:
        typer.echo("")
        typer.echo(f"{'console':<10}{'keys':>6}{'reviewed':>14}{'changed':>9}  (database)")
        for item in progress:
            counts = f"{item.reviewed:>6} {item.pct:6.1f}%{item.changed:>9}"
            typer.echo(f"{item.lang:<10}{item.total:>6}{counts}")


def _console_progress() -> list[Any]:
    """The review progress of the database (the console's), when one is configured and at
    the schema's head; [] otherwise (a checkout without a database)."""
    try:
        from api.db import create_engine, read
        from api.domain.translations import progress
        from api.settings import load_settings

        url = load_settings().sqlalchemy_url
        if url.get_backend_name() == "sqlite" and not Path(url.database or "").exists():
            return []  # no database here: creating one would be a surprise
        engine = create_engine(url)
        try:
            with read(engine) as conn:
                return progress(conn)
        finally:
            engine.dispose()
    except Exception:
        return []


@i18n_app.command("update")
def update(root: RootOption = None) -> None:
    """Re-extract the keys from the code into messages.pot and merge them into every catalog."""
    for line in i18n_tools.update(root):
        typer.echo(line)


@i18n_app.command("export")
def export(root: RootOption = None) -> None:
    """Write the texts reviewed in the console into locales/<lang>/LC_MESSAGES/messages.po."""
    from api.cli import database, settings
    from api.i18n_review import export as export_reviews

    base = (root or i18n_tools.project_root()) / "locales"
    with database(settings()) as engine:
        reports = export_reviews(engine, base)
    for report in reports:
        typer.echo(
            f"{report.lang}: {report.written} text(s) written, {report.reviewed} reviewed "
            "(fuzzy removed)"
        )


@i18n_app.command("import")
def import_po(
    files: Annotated[
        list[Path],
        typer.Argument(help="The .po files edited in Poedit.", exists=True, dir_okay=False),
    ],
    root: RootOption = None,
) -> None:
    """Load .po files edited in Poedit: translated, not fuzzy = reviewed (the bot uses them)."""
    from api.cli import database, settings
    from api.i18n_review import import_catalogs

    base = (root or i18n_tools.project_root()) / "locales"
    with database(settings()) as engine:
        try:
            reports = import_catalogs(engine, base, list(files))
        except ValueError as exc:
            typer.echo(f"diaspora-bot: {exc}", err=True)
            raise typer.Exit(1) from None
    for report in reports:
        typer.echo(f"{report.lang}: {report.written} text(s) stored, {report.reviewed} reviewed")
