"""Translations under review: list a language's entries, save or approve one.

Only translators of that language and administrators (403 else). A save whose placeholders
differ from the French, or too long for WhatsApp, is a 422 with the reason (api.domain
.translations). The bot of this process uses the text at once, the other processes within
seconds (bot.i18n polls the version).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Request
from pydantic import BaseModel, Field

from api.db import read
from api.domain import translations as domain
from api.domain.errors import NotVisible, Refused
from api.domain.staff import StaffPrincipal
from api.domain.translations import ReviewStatus, TranslationItem
from api.http.staff.deps import CurrentStaff, DbDep, NowDep, staff_write
from api.http.staff.errors import ProblemError, ProblemRoute, responses

router = APIRouter(
    tags=["translations"], route_class=ProblemRoute, responses=responses(401, 403, 404, 422)
)

LangPath = Annotated[str, Path(pattern=r"^[a-z]{2,3}$", description="mos, dyu, ff, en…")]
KeyPath = Annotated[
    str, Path(pattern=r"^[a-z][a-z0-9_.]{0,79}$", description="menu.main.question…")
]


class TranslationPublic(BaseModel):
    key: str
    source: str = Field(description="The French text")
    english: str
    text: str = Field(description="The current text in this language")
    status: ReviewStatus
    comment: str
    previous_text: str | None
    reviewed_by: str | None
    locations: list[str]

    @classmethod
    def of(cls, item: TranslationItem) -> TranslationPublic:
        return cls(
            key=item.key,
            source=item.source,
            english=item.english,
            text=item.text,
            status=item.status,
            comment=item.comment,
            previous_text=item.previous_text,
            reviewed_by=item.reviewed_by,
            locations=list(item.locations),
        )


class TranslationList(BaseModel):
    lang: str
    items: list[TranslationPublic]
    total: int
    reviewed: int


class TranslationUpdate(BaseModel):
    text: str = Field(min_length=1, max_length=4096)
    reviewed: bool = True
    comment: str | None = Field(default=None, max_length=1000)


def require_translator(staff: StaffPrincipal, lang: str) -> None:
    if not staff.may_translate(lang):
        raise ProblemError(403, f"translators of {lang} and administrators only")


def refresh_renderer(request: Request) -> None:
    """This process's bot uses the new text for its very next turn."""
    messaging = getattr(request.app.state, "messaging", None)
    if messaging is not None:
        messaging.renderer.refresh(force=True)


@router.get("/translations/{lang}", summary="A language's messages and their review status")
def list_translations(
    lang: LangPath,
    staff: CurrentStaff,
    db: DbDep,
    status: Annotated[ReviewStatus | None, Query(description="draft, reviewed or changed")] = None,
) -> TranslationList:
    require_translator(staff, lang)
    with read(db) as conn:
        try:
            everything = domain.list_translations(conn, lang)
        except NotVisible as exc:
            raise ProblemError(404, f"no such {exc.what}") from None
    items = [i for i in everything if status is None or i.status is status]
    reviewed = sum(1 for i in everything if i.status is ReviewStatus.reviewed)
    return TranslationList(
        lang=lang,
        items=[TranslationPublic.of(i) for i in items],
        total=len(everything),
        reviewed=reviewed,
    )


@router.put(
    "/translations/{lang}/{key}",
    summary="Save a message's text, approved (reviewed) or not",
    responses=responses(422),
)
def put_translation(
    lang: LangPath,
    key: KeyPath,
    body: Annotated[TranslationUpdate, Body()],
    staff: CurrentStaff,
    db: DbDep,
    now: NowDep,
    request: Request,
) -> TranslationPublic:
    require_translator(staff, lang)
    try:
        with staff_write(db, staff, now) as tx:
            item = domain.save_translation(
                tx, lang, key, body.text, reviewed=body.reviewed, comment=body.comment
            )
    except NotVisible as exc:
        raise ProblemError(404, f"no such {exc.what}") from None
    except Refused as exc:
        status = 403 if exc.code == "forbidden" else 422
        raise ProblemError(status, exc.detail) from None
    refresh_renderer(request)
    return TranslationPublic.of(item)
