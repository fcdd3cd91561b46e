"""Voice prompts: upload (multipart, any audio ffmpeg reads, converted to OGG/Opus) or delete
the clip of a message in a language. Translators of that language and administrators only.
The clips themselves are served, unauthenticated but unguessable, by api.http.voice_files."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Request, Response, UploadFile
from pydantic import BaseModel

from api.domain import voice as domain
from api.domain.errors import NotVisible, Refused
from api.http.staff.deps import CurrentStaff, DbDep, NowDep, staff_write
from api.http.staff.errors import ProblemError, ProblemRoute, responses
from api.http.staff.translations import KeyPath, LangPath, refresh_renderer, require_translator

router = APIRouter(
    tags=["translations"], route_class=ProblemRoute, responses=responses(401, 403, 404, 422)
)


class VoicePublic(BaseModel):
    lang: str
    key: str
    url: str


@router.put(
    "/voice/{lang}/{key}",
    summary="Upload the voice prompt of a message in a language (multipart `file`)",
    responses=responses(413, 422),
)
def put_voice(
    lang: LangPath,
    key: KeyPath,
    file: Annotated[UploadFile, File(description="Audio: OGG, WebM, MP3, WAV, M4A…")],
    staff: CurrentStaff,
    db: DbDep,
    now: NowDep,
    request: Request,
) -> VoicePublic:
    require_translator(staff, lang)
    data = file.file.read(domain.MAX_UPLOAD + 1)
    try:
        with staff_write(db, staff, now) as tx:
            token = domain.save_voice(tx, lang, key, data)
    except NotVisible as exc:
        raise ProblemError(404, f"no such {exc.what}") from None
    except Refused as exc:
        raise ProblemError(403 if exc.code == "forbidden" else 422, exc.detail) from None
    refresh_renderer(request)
    base = request.app.state.settings.public_base_url.rstrip("/")
    return VoicePublic(lang=lang, key=key, url=f"{base}/voice/{token}.ogg")


@router.delete("/voice/{lang}/{key}", status_code=204, summary="Remove a voice prompt")
def delete_voice(
    lang: LangPath, key: KeyPath, staff: CurrentStaff, db: DbDep, now: NowDep, request: Request
) -> Response:
    require_translator(staff, lang)
    try:
        with staff_write(db, staff, now) as tx:
            domain.delete_voice(tx, lang, key)
    except NotVisible as exc:
        raise ProblemError(404, f"no such {exc.what}") from None
    except Refused as exc:
        raise ProblemError(403, exc.detail) from None
    refresh_renderer(request)
    return Response(status_code=204)
