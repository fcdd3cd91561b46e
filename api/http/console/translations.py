"""Translations: the review of the citizens' messages by their speakers, and the glossary.

A translator sees the languages they review (an administrator every language): progress per
language, the entries to review / reviewed / whose French changed since, and for each one its
key, the French and English texts, where the code uses it, how it looks on a phone with long
sample values, and the glossary terms it uses. Approve as is, or edit and approve; a comment
for the team. The same use cases as the staff API (api.domain.translations).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import File, Form, Path, Query, Response, UploadFile

from api import db
from api.domain import translations as domain
from api.domain import voice
from api.domain.audit import staff_write
from api.domain.errors import NotVisible, Refused
from api.domain.translations import REVIEWED_LANGUAGES, ReviewStatus
from api.http.console.base import Desk, DeskDep, FormDesk, not_found, section_router

router = section_router()

LangPath = Annotated[str, Path(pattern=r"^[a-z]{2,3}$")]
KeyPath = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_.]{0,79}$")]
LANGUAGE_NAMES = {"mos": "Mooré", "dyu": "Dioula", "ff": "Fulfulde", "en": "English"}
STATUSES = tuple(s.value for s in ReviewStatus)


def _languages(desk: Desk) -> list[str]:
    return [lang for lang in REVIEWED_LANGUAGES if desk.staff.may_translate(lang)]


def _lang_for(desk: Desk, lang: str) -> str:
    if lang not in _languages(desk):
        raise not_found(desk, "language")
    return lang


def _refresh(desk: Desk) -> None:
    messaging = getattr(desk.request.app.state, "messaging", None)
    if messaging is not None:
        messaging.renderer.refresh(force=True)


@router.get("/translations", response_model=None)
def overview(desk: DeskDep) -> Response:
    langs = _languages(desk)
    with db.read(desk.engine) as conn:
        progress = [p for p in domain.progress(conn) if p.lang in langs]
    return desk.page(
        "console/translations.html", "translations", progress=progress, names=LANGUAGE_NAMES
    )


@router.get("/translations/{lang}", response_model=None)
def entries(
    desk: DeskDep,
    lang: LangPath,
    status: Annotated[str, Query(max_length=10)] = "draft",
) -> Response:
    lang = _lang_for(desk, lang)
    wanted = ReviewStatus(status) if status in STATUSES else None
    with db.read(desk.engine) as conn:
        items = domain.list_translations(conn, lang)
    counts = {s: sum(1 for i in items if i.status.value == s) for s in STATUSES}
    shown = [i for i in items if wanted is None or i.status is wanted]
    return desk.page(
        "console/translation_list.html",
        "translations",
        lang=lang,
        language=LANGUAGE_NAMES.get(lang, lang),
        items=shown,
        status=wanted.value if wanted else "all",
        counts=counts,
        total=len(items),
    )


@router.get("/translations/{lang}/{key}", response_model=None)
def entry(desk: DeskDep, lang: LangPath, key: KeyPath) -> Response:
    lang = _lang_for(desk, lang)
    with db.read(desk.engine) as conn:
        found = [i for i in domain.list_translations(conn, lang) if i.key == key]
        rows = domain.glossary(conn)
        clip = voice.token_of(conn, lang, key)
    if not found:
        raise not_found(desk, "message")
    item = found[0]
    catalog_entry = domain.catalogs().entry(lang, key)
    phone = domain.sample_rendering(catalog_entry, lang, item.text, domain.catalogs().root)
    return desk.page(
        "console/translation.html",
        "translations",
        lang=lang,
        language=LANGUAGE_NAMES.get(lang, lang),
        item=item,
        phone=phone,
        terms=domain.terms_used(item.source, lang, rows),
        limit=domain.WHATSAPP_LIMIT,
        clip=f"/voice/{clip}.ogg" if clip else None,
        max_seconds=int(voice.MAX_SECONDS),
    )


@router.post("/translations/{lang}/{key}", response_model=None)
def review(
    desk: FormDesk,
    lang: LangPath,
    key: KeyPath,
    text: Annotated[str, Form(max_length=4096)] = "",
    comment: Annotated[str, Form(max_length=1000)] = "",
    action: Annotated[str, Form(max_length=10)] = "approve",
) -> Response:
    lang = _lang_for(desk, lang)
    here = f"/console/translations/{lang}/{key}"
    try:
        with staff_write(desk.engine, desk.staff, desk.now) as tx:
            domain.save_translation(
                tx, lang, key, text, reviewed=action != "draft", comment=comment.strip()
            )
    except NotVisible as exc:
        raise not_found(desk, exc.what) from None
    except Refused as exc:
        desk.session.flash("error", f"translation_{exc.code}", **exc.params)
        return desk.redirect(here)
    _refresh(desk)
    desk.session.flash("ok", "translation_saved" if action == "draft" else "translation_approved")
    with db.read(desk.engine) as conn:
        to_review = [
            i.key
            for i in domain.list_translations(conn, lang)
            if i.status is not ReviewStatus.reviewed and i.key != key
        ]
    return desk.redirect(f"/console/translations/{lang}/{to_review[0]}" if to_review else here)


@router.get("/glossary", response_model=None)
def glossary_page(desk: DeskDep) -> Response:
    with db.read(desk.engine) as conn:
        rows = domain.glossary(conn)
    langs = _languages(desk)
    return desk.page(
        "console/glossary.html", "translations", rows=rows, langs=langs, names=LANGUAGE_NAMES
    )


@router.post("/glossary/{term_id}/{lang}", response_model=None)
def glossary_edit(
    desk: FormDesk,
    term_id: Annotated[str, Path(pattern=r"^[a-z0-9_]{1,40}$")],
    lang: LangPath,
    text: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    lang = _lang_for(desk, lang)
    try:
        with staff_write(desk.engine, desk.staff, desk.now) as tx:
            domain.save_term(tx, term_id, lang, text)
    except NotVisible as exc:
        raise not_found(desk, exc.what) from None
    except Refused as exc:
        desk.session.flash("error", f"glossary_{exc.code}")
        return desk.redirect("/console/glossary")
    desk.session.flash("ok", "glossary_saved")
    return desk.redirect("/console/glossary")


@router.post("/voice/{lang}/{key}", response_model=None)
def voice_upload(
    desk: FormDesk,
    lang: LangPath,
    key: KeyPath,
    file: Annotated[UploadFile, File()],
) -> Response:
    """A clip recorded in the browser (MediaRecorder) or chosen from the computer."""
    lang = _lang_for(desk, lang)
    here = f"/console/translations/{lang}/{key}"
    data = file.file.read(voice.MAX_UPLOAD + 1)
    try:
        with staff_write(desk.engine, desk.staff, desk.now) as tx:
            voice.save_voice(tx, lang, key, data)
    except NotVisible as exc:
        raise not_found(desk, exc.what) from None
    except Refused as exc:
        desk.session.flash("error", f"voice_{exc.code}")
        return desk.redirect(here)
    _refresh(desk)
    desk.session.flash("ok", "voice_saved")
    return desk.redirect(here)


@router.post("/voice/{lang}/{key}/delete", response_model=None)
def voice_delete(desk: FormDesk, lang: LangPath, key: KeyPath) -> Response:
    lang = _lang_for(desk, lang)
    here = f"/console/translations/{lang}/{key}"
    try:
        with staff_write(desk.engine, desk.staff, desk.now) as tx:
            voice.delete_voice(tx, lang, key)
    except NotVisible:
        return desk.redirect(here)
    _refresh(desk)
    desk.session.flash("ok", "voice_deleted")
    return desk.redirect(here)
