"""The front door `/`, the web simulator `/simulator`, and the static files of the pages.

`/simulator` is a phone-like chat page (a Jinja2 template and a small vanilla script, no build
step, nothing from a CDN) that talks to `POST /api/v1/simulator/messages` like any client.
It exists only while SIMULATOR_ENABLED is true (404 otherwise); `/` leads to it then, and to
the staff console otherwise.

`/static/{name}` serves the files of api/static/ by name: the folder is listed once at
import, so nothing outside it (no `..`, no subfolder) can ever be asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from api.http.problems import problem

_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = Jinja2Templates(directory=_ROOT / "templates")
STATIC_DIR = _ROOT / "static"
STATIC_FILES = (
    {p.name: p for p in STATIC_DIR.iterdir() if p.is_file()} if STATIC_DIR.is_dir() else {}
)
MEDIA_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
DEFAULT_PHONE = "+2250701000001"

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}

router = APIRouter(include_in_schema=False)


@router.get("/", response_model=None)
def front_door(request: Request) -> Response:
    enabled = request.app.state.settings.simulator_enabled
    return RedirectResponse("/simulator" if enabled else "/console/", status_code=307)


@router.get("/simulator", response_model=None)
def simulator_page(request: Request) -> Response:
    if not request.app.state.settings.simulator_enabled:
        return problem(404, "Not Found", "the simulator is disabled")
    response = TEMPLATES.TemplateResponse(
        request, "simulator.html", {"default_phone": DEFAULT_PHONE}
    )
    response.headers.update(PAGE_HEADERS)
    return response


@router.get("/static/{name}", response_model=None)
def static_file(name: Annotated[str, PathParam(max_length=64)]) -> Response:
    path = STATIC_FILES.get(name)
    if path is None:
        return problem(404, "Not Found")
    return FileResponse(
        path,
        media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )
