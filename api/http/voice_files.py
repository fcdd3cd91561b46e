"""`GET /voice/{token}.ogg`: a voice prompt, for WhatsApp (Twilio fetches the media URL) and
Telegram (sendVoice by URL). No login — the providers fetch it — but the token is 192 random
bits: the URL cannot be guessed, and a new recording gets a new one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from api.domain import voice

router = APIRouter(include_in_schema=False)


@router.api_route("/voice/{token}.ogg", methods=["GET", "HEAD"])  # Twilio checks media with HEAD
def voice_clip(
    token: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{16,64}$")], request: Request
) -> Response:
    audio = voice.clip(request.app.state.engine, token)
    if audio is None:
        return Response(status_code=404)
    return Response(
        audio,
        media_type=voice.OGG,
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )
