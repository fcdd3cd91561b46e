"""What every console page stands on: the route class, rendering, the desk (who is logged in,
when), and the small helpers of forms. The sections' routes are in the sibling modules."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path as FilePath
from typing import Annotated, Any, TypeVar, cast
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from babel.dates import format_date
from fastapi import APIRouter, Depends, Form, Path, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from sqlalchemy.engine import Connection, Engine, Row
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import console_i18n, db
from api.domain.audit import StaffWrite, staff_write
from api.domain.errors import NotVisible, NotYours, Refused
from api.domain.staff import StaffPrincipal
from api.domain.tables import table
from api.http.console.session import ConsoleSession, load_staff
from api.http.problems import log_unhandled, unavailable
from api.models import Post, RequestStatus, Service, utcnow

_API = FilePath(__file__).resolve().parent.parent.parent
TEMPLATES = Jinja2Templates(directory=_API / "templates")
TEMPLATES.env.add_extension("jinja2.ext.i18n")
_WORDS = console_i18n.Words(_API.parent / "locales")
TEMPLATES.env.install_gettext_callables(  # type: ignore[attr-defined]
    _WORDS.gettext, _WORDS.ngettext, newstyle=True
)
MAX_ID = 2**31 - 1  # ids are 32-bit integers on PostgreSQL
PAGE_SIZE = 50
HOME = "/console/appointments"
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(2199, 12, 31)

AnyRow = Row[*tuple[Any, ...]]
T = TypeVar("T")

_post = table(Post)
_service = table(Service)

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'"
    ),
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}

# Status keys in the order the pages show them; their French labels are in the templates.
APPOINTMENT_STATUSES = ("booked", "attended", "no_show", "cancelled")
REQUEST_STATUSES = tuple(s.value for s in RequestStatus)


# --- answering: pages, redirects, and the interruptions of dependencies -----------------------


class Interrupt(Exception):
    """Raised by a dependency or a route to answer with `response` at once."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class ConsoleRoute(APIRoute):
    """Routes whose `Interrupt`s become their response, whose malformed forms or query
    strings become a console error page rather than a JSON 422, and whose unexpected errors
    become a kind console page (503 while the database is away, else 500), never a stack
    trace nor raw JSON: the error is logged as the API's are (api.http.problems)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except Interrupt as stop:
                return stop.response
            except RequestValidationError:
                session = ConsoleSession.from_request(request)
                return error_page(request, session, 400, "bad_request")
            except Exception as exc:
                log_unhandled(exc, request.scope)
                session = ConsoleSession.from_request(request)
                if unavailable(exc):
                    return error_page(request, session, 503, "unavailable")
                return error_page(request, session, 500, "server_error")

        return route


def section_router() -> APIRouter:
    """The router of one section of the console."""
    return APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)


def secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def render(
    request: Request,
    session: ConsoleSession,
    name: str,
    context: Mapping[str, Any],
    *,
    status_code: int = 200,
) -> HTMLResponse:
    lang = console_i18n.choose(session.lang, request.headers.get("accept-language"))
    full = {
        "csrf": session.csrf,
        "flashes": session.pop_flashes(),
        "staff": None,
        "section": "",
        "lang": lang,
        "console_languages": console_i18n.NAMES,
        "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        **context,
    }
    with console_i18n.speaking(lang):  # the template is rendered here, in the page's language
        response = TEMPLATES.TemplateResponse(request, name, full, status_code=status_code)
    session.save(request, response)
    return cast(HTMLResponse, secure(response))


def redirect(request: Request, session: ConsoleSession, url: str) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303)
    session.save(request, response)
    return cast(RedirectResponse, secure(response))


def error_page(
    request: Request, session: ConsoleSession, status_code: int, code: str, **params: str
) -> HTMLResponse:
    staff = getattr(request.state, "console_staff", None)
    return render(
        request,
        session,
        "console/error.html",
        {"staff": staff, "status": status_code, "code": code, "params": params},
        status_code=status_code,
    )


def not_found(desk: Desk, what: str = "page") -> Interrupt:
    return Interrupt(error_page(desk.request, desk.session, 404, "not_found", what=what))


def not_yours(desk: Desk, what: str) -> Interrupt:
    """The 403 page "not one of your posts": it exists, but is another post's."""
    return Interrupt(error_page(desk.request, desk.session, 403, "not_yours", what=what))


def not_visible(desk: Desk, missing: NotVisible) -> Interrupt:
    """What a use case's NotVisible is at the console: the "not found" page, or "not one of
    your posts" when it is another post's (NotYours)."""
    if isinstance(missing, NotYours):
        return not_yours(desk, missing.what)
    return not_found(desk, missing.what)


async def unknown_url(request: Request, exc: Exception) -> Response:
    """Starlette's HTTP errors (an unknown URL, a wrong method): a console page under
    /console/ (with the top bar when logged in), the framework's JSON answer elsewhere."""
    assert isinstance(exc, StarletteHTTPException)
    if not request.url.path.startswith("/console/"):
        return await http_exception_handler(request, exc)
    session = ConsoleSession.from_request(request)
    with db.read(request.app.state.engine) as conn:
        request.state.console_staff = load_staff(conn, session, clock_now(request))
    code = "not_found" if exc.status_code == 404 else "bad_request"
    return error_page(request, session, exc.status_code, code, what="page")


def perform(desk: Desk, action: Callable[[StaffWrite], T]) -> T:
    """Run one use case in a staff write; NotVisible becomes the "not found" page, Refused is
    left to the route (`flash_refused`)."""
    try:
        with staff_write(desk.engine, desk.staff, desk.now) as tx:
            return action(tx)
    except NotVisible as missing:
        raise not_visible(desk, missing) from None


def flash_refused(desk: Desk, refused: Refused, codes: Mapping[str, str], default: str) -> None:
    """A refusal as a flash message: its code put in the console's words (`_text.html`)."""
    message = codes.get(refused.code, default)
    desk.session.flash("error", message, reference=refused.reference, **refused.params)


def safe_next(target: str | None) -> str:
    """Only a path of the console itself (or the API's documentation, staff-only in
    production): no open redirect to another site."""
    if target in ("/docs", "/redoc"):
        return target
    if target and target.startswith("/console/") and "//" not in target and "\\" not in target:
        return target
    return HOME


# --- who is at the desk -----------------------------------------------------------------------


@dataclass(frozen=True)
class Desk:
    """One request of a logged-in staff member: who, when, and the way to answer."""

    request: Request
    session: ConsoleSession
    staff: StaffPrincipal
    now: datetime

    @property
    def engine(self) -> Engine:
        engine: Engine = self.request.app.state.engine
        return engine

    def page(self, name: str, section: str, **context: Any) -> HTMLResponse:
        return render(
            self.request,
            self.session,
            name,
            {"staff": self.staff, "section": section, **context},
        )

    def redirect(self, url: str) -> RedirectResponse:
        return redirect(self.request, self.session, url)


def clock_now(request: Request) -> datetime:
    """Now, in UTC (tests and scripts set `app.state.clock`)."""
    clock: Callable[[], datetime] | None = getattr(request.app.state, "clock", None)
    return clock() if clock is not None else utcnow()


def current_desk(request: Request) -> Desk:
    session = ConsoleSession.from_request(request)
    now = clock_now(request)
    with db.read(request.app.state.engine) as conn:
        staff = load_staff(conn, session, now)
    if staff is None:
        if session.staff_id is not None:
            session.log_out()
            session.flash("error", "session_ended")
        # Back to the page asked for after login; a form posted meanwhile is not replayed.
        target = request.url.path if request.method == "GET" else HOME
        if request.method == "GET" and request.url.query:
            target += "?" + request.url.query
        login_url = "/console/login?" + urlencode({"next": safe_next(target)})
        raise Interrupt(redirect(request, session, login_url))
    request.state.console_staff = staff
    return Desk(request, session, staff, now)


def checked_desk(request: Request, csrf: Annotated[str, Form(max_length=200)] = "") -> Desk:
    """A logged-in desk posting a form that carries the session's CSRF token."""
    desk = current_desk(request)
    if not desk.session.csrf_ok(csrf):
        raise Interrupt(error_page(request, desk.session, 403, "csrf"))
    return desk


DeskDep = Annotated[Desk, Depends(current_desk)]
FormDesk = Annotated[Desk, Depends(checked_desk)]
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]


# --- small helpers ----------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line(text: str | None, limit: int) -> str:
    """What a desk typed into one field: no control characters, spaces collapsed, cut."""
    if not text:
        return ""
    cleaned = _CONTROL.sub(" ", unicodedata.normalize("NFC", text))
    return " ".join(cleaned.split())[:limit]


_FRENCH_DAY = re.compile(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})")


def parse_day(text: str | None) -> date | None:
    """A date typed into a form, if it is one of this world (1900–2199): `YYYY-MM-DD` (what a
    date input sends) or the French order `jj/mm/aaaa` (typed, or a browser without one)."""
    cleaned = (text or "").strip()
    french = _FRENCH_DAY.fullmatch(cleaned)
    try:
        if french:
            day: date | None = date(int(french[3]), int(french[2]), int(french[1]))
        else:
            day = date.fromisoformat(cleaned) if cleaned else None
    except ValueError:
        return None
    return day if day is not None and FIRST_DAY <= day <= LAST_DAY else None


def long_day(day: date | str) -> str:
    """A day in words in the language of the page being rendered ("jeudi 3 décembre 2026",
    "Thursday, December 3, 2026"); a flash message carries its day as `YYYY-MM-DD`."""
    try:
        value = date.fromisoformat(day) if isinstance(day, str) else day
    except ValueError:
        return str(day)
    return format_date(value, "full", locale=console_i18n.current.get())


TEMPLATES.env.globals["long_day"] = long_day


def local_today(post: AnyRow, now: datetime) -> date:
    """Today at the post, in its time zone."""
    return now.astimezone(ZoneInfo(post.timezone)).date()


def visible_posts(conn: Connection, staff: StaffPrincipal) -> list[AnyRow]:
    """The posts this staff member works for, in code order."""
    query = sa.select(_post).order_by(_post.c.code)
    if not staff.is_admin:
        query = query.where(_post.c.id.in_(sorted(staff.post_ids)))
    return list(conn.execute(query))


def pick_post(posts: Iterable[AnyRow], code: str | None) -> AnyRow | None:
    wanted = (code or "").strip().upper()
    return next((p for p in posts if p.code == wanted), None)


def all_services(conn: Connection) -> list[AnyRow]:
    return list(
        conn.execute(
            sa.select(_service.c.code, _service.c.name).order_by(_service.c.position, _service.c.id)
        )
    )
