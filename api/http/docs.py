"""The API's description: `/openapi.json`, Swagger UI at `/docs`, ReDoc at `/redoc`.

Every asset is served by the app itself (Swagger UI and ReDoc from the `fastapi-offline`
package, under `/docs/static/`): a consulate's intranet without internet access still has
its documentation, and no third-party CDN sees who reads it. Who may read it is `API_DOCS`:
`public` (the default of the local demo), `staff` (the default elsewhere: a staff bearer token
or a console session; a browser without one is sent to the console login), or `off` (404).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from api import db
from api.domain.staff import staff_for_token
from api.http.console.session import ConsoleSession, load_staff
from api.http.problems import problem

OPENAPI = "/openapi.json"
STATIC = "/docs/static"
_ASSETS = Path(str(files("fastapi_offline") / "static"))


def _is_staff(request: Request) -> bool:
    """A live staff bearer token, or a logged-in console session."""
    now = request.app.state.clock()
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    with db.read(request.app.state.engine) as conn:
        if scheme.lower() == "bearer" and token:
            return staff_for_token(conn, token.strip(), now) is not None
        return load_staff(conn, ConsoleSession.from_request(request), now) is not None


def _refused(request: Request, page: bool) -> Response | None:
    """None when the docs may be shown to this request; else the answer."""
    mode = request.app.state.settings.api_docs
    if mode == "public":
        return None
    if mode == "off":
        return problem(404, "Not Found")
    if _is_staff(request):
        return None
    if page:
        return RedirectResponse(f"/console/login?next={request.url.path}", status_code=303)
    return problem(401, "Unauthorized", "staff only", headers={"WWW-Authenticate": "Bearer"})


def install(app: FastAPI) -> None:
    """Add the three routes and the assets to an app built with `docs_url=None`,
    `redoc_url=None` and `openapi_url=None`."""
    app.mount(STATIC, StaticFiles(directory=_ASSETS), name="docs-static")

    @app.get(OPENAPI, include_in_schema=False)
    def openapi(request: Request) -> Response:
        return _refused(request, page=False) or JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    def swagger(request: Request) -> Response:
        return _refused(request, page=True) or get_swagger_ui_html(
            openapi_url=OPENAPI,
            title=f"{app.title} — Swagger UI",
            swagger_js_url=f"{STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> Response:
        return _refused(request, page=True) or get_redoc_html(
            openapi_url=OPENAPI,
            title=f"{app.title} — ReDoc",
            redoc_js_url=f"{STATIC}/redoc.standalone.js",
            redoc_favicon_url=f"{STATIC}/favicon.png",
            with_google_fonts=False,
        )
