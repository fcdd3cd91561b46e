"""`/console/` — the staff console: server-rendered pages for a consular agent at a desk.

French pages (Jinja2 templates under api/templates/console/, CSS under api/static/), plain
HTML forms, no JavaScript. A signed session cookie (api.http.console_auth) after an e-mail
and password login; every form carries the session's CSRF token, compared in constant time.
An agent sees and changes the data of their posts only (another post's data answers 404, as
if it did not exist); an administrator sees every post.

The pages call the same domain services as the staff REST API (BookingService,
RequestService, api.domain.notices) and write through its `staff_write` helper, so that
every change is recorded in the audit log in the change's own transaction.

Routes are plain `def`: the database calls and Argon2 run in FastAPI's threadpool.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal, cast
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from babel.dates import format_date
from fastapi import APIRouter, Depends, Form, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import IntegrityError

from api import db
from api.domain import notices
from api.domain.booking import BookingService
from api.domain.citizens import normalise_phone
from api.domain.closures import add_closure, local_day_bounds
from api.domain.requests import (
    ALLOWED_FROM,
    RequestRecord,
    RequestService,
    TransitionRefused,
    UnknownRequest,
    clean_reference,
    record_query,
)
from api.domain.staff import StaffPrincipal, end_login, open_login, verify_password
from api.domain.tables import table
from api.http.console_auth import ConsoleSession, fingerprint_of, load_staff
from api.http.staff import appointments as appointment_api
from api.http.staff import requests as request_api
from api.http.staff.deps import staff_write
from api.http.staff.errors import ProblemError
from api.models import (
    Appointment,
    AppointmentStatus,
    Broadcast,
    Closure,
    ConsularRequest,
    OpeningHours,
    Post,
    RequestStatus,
    Service,
    Staff,
    utcnow,
)

TEMPLATES = Jinja2Templates(directory=FilePath(__file__).resolve().parent.parent / "templates")
MAX_ID = 2**31 - 1  # ids are 32-bit integers on PostgreSQL
PAGE_SIZE = 50
HOME = "/console/appointments"
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(2199, 12, 31)

AnyRow = Row[*tuple[Any, ...]]


_post = table(Post)
_service = table(Service)
_appt = table(Appointment)
_hours = table(OpeningHours)
_closure = table(Closure)
_request_t = table(ConsularRequest)
_staff = table(Staff)
_broadcast = table(Broadcast)

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


class Unchanged(Exception):
    """A staff action the domain refused: nothing was written, the transaction ends."""


class ConsoleRoute(APIRoute):
    """Routes whose `Interrupt`s become their response, and whose malformed forms or query
    strings become a French error page rather than a JSON 422."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except Interrupt as stop:
                return stop.response
            except RequestValidationError:
                session = ConsoleSession.from_request(request)
                return _error_page(request, session, 400, "bad_request")

        return route


router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)


def _secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _render(
    request: Request,
    session: ConsoleSession,
    name: str,
    context: Mapping[str, Any],
    *,
    status_code: int = 200,
) -> HTMLResponse:
    full = {
        "csrf": session.csrf,
        "flashes": session.pop_flashes(),
        "staff": None,
        "section": "",
        **context,
    }
    response = TEMPLATES.TemplateResponse(request, name, full, status_code=status_code)
    session.save(request, response)
    return cast(HTMLResponse, _secure(response))


def _redirect(request: Request, session: ConsoleSession, url: str) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303)
    session.save(request, response)
    return cast(RedirectResponse, _secure(response))


def _error_page(
    request: Request, session: ConsoleSession, status_code: int, code: str, **params: str
) -> HTMLResponse:
    staff = getattr(request.state, "console_staff", None)
    return _render(
        request,
        session,
        "console/error.html",
        {"staff": staff, "status": status_code, "code": code, "params": params},
        status_code=status_code,
    )


def _not_found(desk: Desk, what: str = "page") -> Interrupt:
    return Interrupt(_error_page(desk.request, desk.session, 404, "not_found", what=what))


def _safe_next(target: str | None) -> str:
    """Only a path of the console itself: no open redirect to another site."""
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
        return _render(
            self.request,
            self.session,
            name,
            {"staff": self.staff, "section": section, **context},
        )

    def redirect(self, url: str) -> RedirectResponse:
        return _redirect(self.request, self.session, url)


def _now(request: Request) -> datetime:
    clock: Callable[[], datetime] | None = getattr(request.app.state, "clock", None)
    return clock() if clock is not None else utcnow()


def current_desk(request: Request) -> Desk:
    session = ConsoleSession.from_request(request)
    now = _now(request)
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
        login_url = "/console/login?" + urlencode({"next": _safe_next(target)})
        raise Interrupt(_redirect(request, session, login_url))
    request.state.console_staff = staff
    return Desk(request, session, staff, now)


def checked_desk(request: Request, csrf: Annotated[str, Form(max_length=200)] = "") -> Desk:
    """A logged-in desk posting a form that carries the session's CSRF token."""
    desk = current_desk(request)
    if not desk.session.csrf_ok(csrf):
        raise Interrupt(_error_page(request, desk.session, 403, "csrf"))
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


def parse_day(text: str | None) -> date | None:
    """A date typed into a form (`YYYY-MM-DD`), if it is one of this world (1900–2199)."""
    try:
        day = date.fromisoformat(text.strip()) if text and text.strip() else None
    except ValueError:
        return None
    return day if day is not None and FIRST_DAY <= day <= LAST_DAY else None


def french_day(day: date) -> str:
    return format_date(day, "EEEE d MMMM y", locale="fr")


def _local_today(post: AnyRow, now: datetime) -> date:
    return now.astimezone(ZoneInfo(post.timezone)).date()


def visible_posts(conn: Connection, staff: StaffPrincipal) -> list[AnyRow]:
    """The posts this staff member works for, in code order."""
    query = sa.select(_post).order_by(_post.c.code)
    if not staff.is_admin:
        query = query.where(_post.c.id.in_(sorted(staff.post_ids)))
    return list(conn.execute(query))


def _pick_post(posts: Iterable[AnyRow], code: str | None) -> AnyRow | None:
    wanted = (code or "").strip().upper()
    return next((p for p in posts if p.code == wanted), None)


def _services(conn: Connection) -> list[AnyRow]:
    return list(
        conn.execute(
            sa.select(_service.c.code, _service.c.name).order_by(_service.c.position, _service.c.id)
        )
    )


# --- login and logout -------------------------------------------------------------------------


@router.get("/", response_model=None)
def console_home(request: Request) -> Response:
    session = ConsoleSession.from_request(request)
    return _redirect(request, session, HOME)


@router.get("/login", response_model=None)
def login_page(request: Request, next: Annotated[str, Query(max_length=500)] = "") -> Response:
    session = ConsoleSession.from_request(request)
    if session.staff_id is not None:
        with db.read(request.app.state.engine) as conn:
            if load_staff(conn, session, _now(request)) is not None:
                return _redirect(request, session, _safe_next(next))
    return _render(request, session, "console/login.html", {"next": _safe_next(next)})


@router.post("/login", response_model=None)
def login(
    request: Request,
    email: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    session = ConsoleSession.from_request(request)
    context = {"next": _safe_next(next), "email": one_line(email, 200)}
    if not session.csrf_ok(csrf):
        session.log_out()
        context["error"] = "login_expired"
        return _render(request, session, "console/login.html", context, status_code=403)
    fingerprint = login_id = ""
    with db.write(request.app.state.engine) as conn:
        staff = verify_password(conn, email, password) if email and password else None
        if staff is not None:
            fingerprint = fingerprint_of(conn, staff.id)
            login_id = open_login(conn, staff.id, _now(request))
    if staff is None:
        context["error"] = "login_wrong"
        return _render(request, session, "console/login.html", context, status_code=401)
    session.log_in(staff.id, login_id, fingerprint)
    return _redirect(request, session, _safe_next(next))


@router.post("/logout", response_model=None)
def logout(desk: FormDesk) -> Response:
    with db.write(desk.engine) as conn:
        end_login(conn, desk.session.login_id, desk.now)
    desk.session.log_out()
    desk.session.flash("ok", "logged_out")
    return desk.redirect("/console/login")


# --- appointments -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AppointmentLine:
    id: int
    reference: str
    time: str
    full_name: str
    service: str
    status: str
    cancel_reason: str
    started: bool


@dataclass(frozen=True)
class DayOfPost:
    post: AnyRow
    day: date
    day_label: str
    lines: list[AppointmentLine]
    counts: dict[str, int]


def _appointments_of_day(
    conn: Connection, post: AnyRow, day: date, status: str, now: datetime
) -> DayOfPost:
    tz = ZoneInfo(post.timezone)
    start, end = local_day_bounds(day, post.timezone)
    rows = conn.execute(
        sa.select(
            _appt.c.id,
            _appt.c.reference,
            _appt.c.starts_at,
            _appt.c.full_name,
            _appt.c.status,
            _appt.c.cancel_reason,
            _service.c.name.label("service_name"),
        )
        .select_from(_appt.join(_service, _service.c.id == _appt.c.service_id))
        .where(_appt.c.post_id == post.id, _appt.c.starts_at >= start, _appt.c.starts_at < end)
        .order_by(_appt.c.starts_at, _appt.c.reference)
    ).all()
    counts = dict.fromkeys(APPOINTMENT_STATUSES, 0)
    lines = []
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
        if status and row.status != status:
            continue
        lines.append(
            AppointmentLine(
                id=row.id,
                reference=row.reference,
                time=row.starts_at.astimezone(tz).strftime("%H:%M"),
                full_name=row.full_name,
                service=row.service_name,
                status=row.status,
                cancel_reason=row.cancel_reason,
                started=row.starts_at <= now,
            )
        )
    return DayOfPost(post, day, french_day(day), lines, counts)


@router.get("/appointments", response_model=None)
def appointments(
    desk: DeskDep,
    post: Annotated[str, Query(max_length=8)] = "",
    day: Annotated[str, Query(max_length=10)] = "",
    status: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    status = status if status in APPOINTMENT_STATUSES else ""
    wanted_day = parse_day(day)
    with db.read(desk.engine) as conn:
        posts = visible_posts(conn, desk.staff)
        chosen = _pick_post(posts, post)
        if post and chosen is None:
            raise _not_found(desk, "post")
        shown = [chosen] if chosen is not None else posts
        days = [
            _appointments_of_day(conn, p, wanted_day or _local_today(p, desk.now), status, desk.now)
            for p in shown
        ]
    shown_day = wanted_day or (_local_today(shown[0], desk.now) if shown else desk.now.date())
    filters = {
        "post": chosen.code if chosen else "",
        "day": wanted_day.isoformat() if wanted_day else "",
        "status": status,
    }

    def url(**changes: str) -> str:
        query = urlencode({k: v for k, v in {**filters, **changes}.items() if v})
        return "/console/appointments" + ("?" + query if query else "")

    return desk.page(
        "console/appointments.html",
        "appointments",
        posts=posts,
        days=days,
        filters=filters,
        statuses=APPOINTMENT_STATUSES,
        back=url(),
        day_value=shown_day,
        day_links={
            "previous": url(day=(shown_day - timedelta(days=1)).isoformat()),
            "today": url(day=""),
            "next": url(day=(shown_day + timedelta(days=1)).isoformat()),
        },
    )


def _visible_appointment(desk: Desk, conn: Connection, appointment_id: int) -> Any:
    """The appointment as the staff API shows it, if this desk may see it."""
    try:
        return appointment_api.to_public(
            appointment_api.get_visible(conn, desk.staff, appointment_id)
        )
    except ProblemError:
        raise _not_found(desk, "appointment") from None


def _set_attendance(
    desk: Desk, appointment_id: int, status: Literal["attended", "no_show"], back: str
) -> Response:
    """What `POST /api/v1/appointments/{id}/check-in|no-show` does, audited the same way."""
    try:
        with staff_write(desk.engine, desk.staff, desk.now) as tx:
            before = _visible_appointment(desk, tx.conn, appointment_id)
            if BookingService(tx.conn).set_attendance(appointment_id, status, desk.now) is None:
                raise Unchanged
            after = _visible_appointment(desk, tx.conn, appointment_id)
            tx.audit(
                status,
                "appointment",
                appointment_id,
                appointment_api.snapshot(before),
                appointment_api.snapshot(after),
            )
    except Unchanged:
        cancelled = before.status is AppointmentStatus.cancelled
        code = "was_cancelled" if cancelled else "no_show_too_early"
        desk.session.flash("error", code, reference=before.reference)
    else:
        desk.session.flash("ok", status, reference=after.reference)  # no name in the cookie
    return desk.redirect(_safe_next(back))


@router.post("/appointments/{appointment_id}/attended", response_model=None)
def check_in(
    desk: FormDesk, appointment_id: IdPath, back: Annotated[str, Form(max_length=500)] = ""
) -> Response:
    return _set_attendance(desk, appointment_id, "attended", back)


@router.post("/appointments/{appointment_id}/no-show", response_model=None)
def no_show(
    desk: FormDesk, appointment_id: IdPath, back: Annotated[str, Form(max_length=500)] = ""
) -> Response:
    return _set_attendance(desk, appointment_id, "no_show", back)


@router.post("/appointments/{appointment_id}/cancel", response_model=None)
def cancel_appointment(
    desk: FormDesk,
    appointment_id: IdPath,
    reason: Annotated[str, Form(max_length=1000)] = "",
    back: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """What `POST /api/v1/appointments/{id}/cancel` does: cancel, tell the citizen, audit."""
    reason = one_line(reason, 300)
    if not reason:
        desk.session.flash("error", "cancel_reason_needed")
        return desk.redirect(_safe_next(back))
    try:
        with staff_write(desk.engine, desk.staff, desk.now) as tx:
            before = _visible_appointment(desk, tx.conn, appointment_id)
            info = BookingService(tx.conn).cancel_by_staff(appointment_id, reason, desk.now)
            if info is None:
                raise Unchanged
            notices.appointment_cancelled(tx.conn, before.citizen_id, info, reason, desk.now)
            after = _visible_appointment(desk, tx.conn, appointment_id)
            tx.audit(
                "cancel",
                "appointment",
                appointment_id,
                appointment_api.snapshot(before),
                appointment_api.snapshot(after),
            )
    except Unchanged:
        desk.session.flash("error", "not_booked", reference=before.reference)
    else:
        desk.session.flash("ok", "cancelled", reference=after.reference)
    return desk.redirect(_safe_next(back))


# --- requests (dossiers) ----------------------------------------------------------------------


def _request_filters(
    desk: Desk, posts: list[AnyRow], q: str, post: str, status: str
) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if not desk.staff.is_admin:
        conditions.append(_request_t.c.post_id.in_(sorted(desk.staff.post_ids)))
    chosen = _pick_post(posts, post)
    if chosen is not None:
        conditions.append(_request_t.c.post_id == chosen.id)
    if status in REQUEST_STATUSES:
        conditions.append(_request_t.c.status == status)
    if q:
        exact = clean_reference(q)
        fragment = re.sub(r"[^A-Z0-9-]", "", q.upper())[:20]
        conditions.append(
            sa.or_(
                _request_t.c.reference == exact,
                _request_t.c.reference.contains(fragment, autoescape=True),
            )
            if fragment
            else _request_t.c.reference == exact
        )
    return conditions


@router.get("/requests", response_model=None)
def request_list(
    desk: DeskDep,
    q: Annotated[str, Query(max_length=40)] = "",
    post: Annotated[str, Query(max_length=8)] = "",
    status: Annotated[str, Query(max_length=16)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    q = one_line(q, 40)
    status = status if status in REQUEST_STATUSES else ""
    with db.read(desk.engine) as conn:
        posts = visible_posts(conn, desk.staff)
        conditions = _request_filters(desk, posts, q, post, status)
        query = record_query().where(*conditions)
        total = conn.execute(
            sa.select(sa.func.count()).select_from(_request_t).where(*conditions)
        ).scalar_one()
        rows = conn.execute(
            query.order_by(_request_t.c.updated_at.desc(), _request_t.c.id.desc())
            .limit(PAGE_SIZE)
            .offset((page - 1) * PAGE_SIZE)
        ).all()
        services = {s.code: s.name for s in _services(conn)}
    filters = {"q": q, "post": post.upper() if _pick_post(posts, post) else "", "status": status}

    def page_url(number: int) -> str:
        kept = {k: v for k, v in filters.items() if v}
        return "/console/requests?" + urlencode({**kept, "page": number})

    pages = max(1, -(-int(total) // PAGE_SIZE))
    return desk.page(
        "console/requests.html",
        "requests",
        rows=rows,
        total=total,
        posts=posts,
        services=services,
        filters=filters,
        statuses=REQUEST_STATUSES,
        page=page,
        pages=pages,
        previous_url=page_url(page - 1) if page > 1 else None,
        next_url=page_url(page + 1) if page < pages else None,
    )


@router.get("/requests/new", response_model=None)
def request_form(desk: DeskDep) -> Response:
    with db.read(desk.engine) as conn:
        posts = visible_posts(conn, desk.staff)
        services = _services(conn)
    return desk.page(
        "console/request_new.html", "requests", posts=posts, services=services, values={}
    )


@router.post("/requests", response_model=None)
def create_request(
    desk: FormDesk,
    post: Annotated[str, Form(max_length=8)] = "",
    service: Annotated[str, Form(max_length=32)] = "",
    phone: Annotated[str, Form(max_length=40)] = "",
    full_name: Annotated[str, Form(max_length=400)] = "",
    birth_date: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    values = {
        "post": post.strip().upper(),
        "service": service.strip(),
        "phone": one_line(phone, 40),
        "full_name": one_line(full_name, 120),
        "birth_date": birth_date.strip(),
    }
    born = parse_day(birth_date)
    errors: list[str] = []
    with db.read(desk.engine) as conn:
        posts = visible_posts(conn, desk.staff)
        services = _services(conn)
    chosen = _pick_post(posts, post)
    if chosen is None:
        errors.append("choose_post")
    if values["service"] not in {s.code for s in services}:
        errors.append("choose_service")
    if not values["full_name"]:
        errors.append("name_needed")
    if born is None or not date(1900, 1, 1) <= born <= desk.now.date():
        errors.append("birth_date_invalid")
    if values["phone"] and normalise_phone(values["phone"]) is None:
        errors.append("phone_invalid")
    reference = ""
    if not errors:
        with staff_write(desk.engine, desk.staff, desk.now) as tx:
            created = RequestService(tx.conn).create(
                values["post"],
                values["service"],
                values["phone"] or None,
                values["full_name"],
                born,
                desk.staff.id,
                desk.now,
                link_within=None if desk.staff.is_admin else desk.staff.post_ids,
            )
            record = request_api.get_visible(tx.conn, desk.staff, created.reference)
            reference = record.reference
            tx.audit("create", "request", reference, None, request_api.snapshot(record))
    if errors:
        response = desk.page(
            "console/request_new.html",
            "requests",
            posts=posts,
            services=services,
            values=values,
            errors=errors,
        )
        response.status_code = 422
        return response
    desk.session.flash("ok", "request_created", reference=reference)
    return desk.redirect(f"/console/requests/{reference}")


def _request_for(desk: Desk, conn: Connection, reference: str) -> RequestRecord:
    try:
        return request_api.get_visible(conn, desk.staff, reference)
    except ProblemError:
        raise _not_found(desk, "request") from None


def next_statuses(current: RequestStatus) -> list[RequestStatus]:
    return [wanted for wanted, sources in ALLOWED_FROM.items() if current in sources]


@router.get("/requests/{reference}", response_model=None)
def request_detail(desk: DeskDep, reference: Annotated[str, Path(max_length=40)]) -> Response:
    with db.read(desk.engine) as conn:
        record = _request_for(desk, conn, reference)
        history = RequestService(conn).history(record.id)
        guard = RequestService(conn).guard(record.reference, desk.now)
        staff_ids = {e.staff_id for e in history if e.staff_id is not None}
        emails = {
            row.id: row.email
            for row in conn.execute(
                sa.select(_staff.c.id, _staff.c.email).where(_staff.c.id.in_(sorted(staff_ids)))
            )
        }
        post = conn.execute(sa.select(_post).where(_post.c.id == record.post_id)).one()
        services = {s.code: s.name for s in _services(conn)}
    return desk.page(
        "console/request_detail.html",
        "requests",
        record=record,
        post=post,
        service_name=services.get(record.service_code, record.service_code),
        history=history,
        guard=guard,
        emails=emails,
        statuses=REQUEST_STATUSES,
        next_statuses=next_statuses(record.status),
        tz=ZoneInfo(post.timezone),
    )


@router.post("/requests/{reference}/status", response_model=None)
def change_request_status(
    desk: FormDesk,
    reference: Annotated[str, Path(max_length=40)],
    status: Annotated[str, Form(max_length=16)] = "",
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    reason = one_line(reason, 300)
    if status not in REQUEST_STATUSES:
        desk.session.flash("error", "choose_status")
        return desk.redirect(f"/console/requests/{clean_reference(reference)}")
    try:
        with staff_write(desk.engine, desk.staff, desk.now) as tx:
            record = _request_for(desk, tx.conn, reference)
            RequestService(tx.conn).change_status(
                record.reference, status, reason, desk.staff.id, desk.now
            )
            after = _request_for(desk, tx.conn, record.reference)
            tx.audit(
                "status",
                "request",
                after.reference,
                request_api.snapshot(record),
                request_api.snapshot(after),
            )
    except UnknownRequest:
        raise _not_found(desk, "request") from None
    except TransitionRefused as refused:
        desk.session.flash(
            "error",
            "transition_refused",
            current=refused.current.value,
            wanted=refused.wanted.value,
        )
    except ValueError:
        desk.session.flash("error", "rejection_reason_needed")
    else:
        desk.session.flash("ok", "status_changed", reference=record.reference, status=status)
        return desk.redirect(f"/console/requests/{record.reference}")
    return desk.redirect(f"/console/requests/{clean_reference(reference)}")


# --- posts: opening hours and closures --------------------------------------------------------


@router.get("/posts", response_model=None)
def post_list(desk: DeskDep) -> Response:
    with db.read(desk.engine) as conn:
        posts = visible_posts(conn, desk.staff)
    if len(posts) == 1:
        return desk.redirect(f"/console/posts/{posts[0].code}")
    return desk.page("console/posts.html", "posts", posts=posts)


def _post_for(desk: Desk, conn: Connection, code: str) -> AnyRow:
    row = conn.execute(sa.select(_post).where(_post.c.code == code.strip().upper())).first()
    if row is None or not desk.staff.may_act_for(row.id):
        raise _not_found(desk, "post")
    return row


@router.get("/posts/{code}", response_model=None)
def post_detail(desk: DeskDep, code: Annotated[str, Path(max_length=8)]) -> Response:
    with db.read(desk.engine) as conn:
        post = _post_for(desk, conn, code)
        posts = visible_posts(conn, desk.staff)
        today = _local_today(post, desk.now)
        hours = conn.execute(
            sa.select(_hours.c.weekday, _hours.c.opens, _hours.c.closes)
            .where(_hours.c.post_id == post.id)
            .order_by(_hours.c.weekday, _hours.c.opens)
        ).all()
        closures = conn.execute(
            sa.select(_closure.c.day, _closure.c.reason)
            .where(_closure.c.post_id == post.id, _closure.c.day >= today)
            .order_by(_closure.c.day)
        ).all()
    week = [
        [f"{h.opens:%H:%M} – {h.closes:%H:%M}" for h in hours if h.weekday == weekday]
        for weekday in range(7)
    ]
    return desk.page(
        "console/post.html",
        "posts",
        post=post,
        posts=posts,
        week=week,
        closures=[(c.day, french_day(c.day), c.reason) for c in closures],
        today=today,
    )


@router.post("/posts/{code}/closures", response_model=None)
def create_closure(
    desk: FormDesk,
    code: Annotated[str, Path(max_length=8)],
    day: Annotated[str, Form(max_length=10)] = "",
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    reason = one_line(reason, 200)
    closed_on = parse_day(day)
    with db.read(desk.engine) as conn:
        post = _post_for(desk, conn, code)
    here = f"/console/posts/{post.code}"
    if closed_on is None:
        desk.session.flash("error", "closure_day_needed")
        return desk.redirect(here)
    if closed_on < _local_today(post, desk.now):
        desk.session.flash("error", "closure_day_past")
        return desk.redirect(here)
    try:
        with staff_write(desk.engine, desk.staff, desk.now) as tx:
            cancelled = add_closure(tx.conn, post.id, closed_on, reason, desk.now)
            tx.audit(
                "create",
                "closure",
                f"{post.code}/{closed_on}",
                None,
                {
                    "day": closed_on,
                    "reason": reason,
                    "cancelled_appointments": [a.reference for a in cancelled],
                },
            )
    except IntegrityError:
        desk.session.flash("error", "closure_exists", day=french_day(closed_on))
        return desk.redirect(here)
    desk.session.flash("ok", "closure_added", day=french_day(closed_on), cancelled=len(cancelled))
    return desk.redirect(here)


# --- broadcasts (read-only for now) -----------------------------------------------------------


@router.get("/broadcasts", response_model=None)
def broadcast_list(desk: DeskDep) -> Response:
    with db.read(desk.engine) as conn:
        rows = conn.execute(
            sa.select(_broadcast).order_by(_broadcast.c.created_at.desc()).limit(100)
        ).all()
        codes = {p.code for p in visible_posts(conn, desk.staff)}
        ids = {p.id for p in visible_posts(conn, desk.staff)}
    if not desk.staff.is_admin:
        rows = [r for r in rows if _broadcast_visible(r, desk.staff.id, codes, ids)]
    return desk.page("console/broadcasts.html", "broadcasts", rows=rows)


def _broadcast_visible(row: AnyRow, staff_id: int, codes: set[str], ids: set[int]) -> bool:
    """An agent sees the broadcasts they wrote and those aimed at one of their posts."""
    if row.created_by == staff_id:
        return True
    segment = row.segment if isinstance(row.segment, dict) else {}
    targets = segment.get("posts") or []
    return any(t in codes or t in ids for t in targets if isinstance(t, str | int))
