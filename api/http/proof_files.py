"""`GET /proof/{token}/qr.png` and `GET /proof/{token}/rendez-vous.ics`: the QR code and the
calendar file of an appointment, for the providers that fetch media by URL (Twilio, Telegram)
and for the citizen who opens them (the last segment names the file). No login; the token is
signed (api.domain.appointment_proof), so the URL cannot be guessed from a reference, and a
forged or unknown one is a 404. HEAD too: Twilio checks a media's Content-Type with it. The
calendar file speaks the citizen's language, through the catalogs as the bot does."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from api import db
from api.domain import appointment_proof as proof

router = APIRouter(include_in_schema=False)

Token = Annotated[str, Path(max_length=80)]  # anything else than a proof of ours is a 404
_HEADERS = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"}


def _found(request: Request, token: str) -> proof.ProvenAppointment | None:
    with db.read(request.app.state.engine) as conn:
        return proof.find(conn, request.app.state.proof_key, token)


@router.api_route(f"/proof/{{token}}/{proof.QR_FILE}", methods=["GET", "HEAD"])
def proof_qr(token: Token, request: Request) -> Response:
    if _found(request, token) is None:
        return Response(status_code=404)
    return Response(proof.qr_png(token.upper()), media_type=proof.PNG, headers=_HEADERS)


@router.api_route(f"/proof/{{token}}/{proof.CALENDAR_FILE}", methods=["GET", "HEAD"])
def proof_calendar(token: Token, request: Request) -> Response:
    with db.read(request.app.state.engine) as conn:
        ics = proof.calendar_file(conn, request.app.state.proof_key, token)
    if ics is None:
        return Response(status_code=404)
    disposition = f'attachment; filename="{proof.CALENDAR_FILE}"'
    return Response(
        ics,
        media_type=f"{proof.ICS}; charset=utf-8",
        headers={**_HEADERS, "Content-Disposition": disposition},
    )
