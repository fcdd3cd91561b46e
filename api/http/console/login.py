"""Logging in and out of the console: the password, the login kept on the server, the waits
after repeated failures (per account and per client address), and the language switch."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Query, Request, Response

from api import console_i18n, db
from api.domain.staff import (
    LOGIN_FAILURES,
    LOGIN_FAILURES_WINDOW,
    end_login,
    login_wait,
    open_login,
    record_login_failure,
    verify_password,
)
from api.http.address_limits import AddressLimit, client_address
from api.http.console.base import (
    HOME,
    FormDesk,
    clock_now,
    one_line,
    redirect,
    render,
    safe_next,
    section_router,
)
from api.http.console.session import ConsoleSession, fingerprint_of, load_staff

router = section_router()


@router.get("/", response_model=None)
def console_home(request: Request) -> Response:
    session = ConsoleSession.from_request(request)
    return redirect(request, session, HOME)


@router.get("/login", response_model=None)
def login_page(request: Request, next: Annotated[str, Query(max_length=500)] = "") -> Response:
    session = ConsoleSession.from_request(request)
    if session.staff_id is not None:
        with db.read(request.app.state.engine) as conn:
            if load_staff(conn, session, clock_now(request)) is not None:
                return redirect(request, session, safe_next(next))
    return render(request, session, "console/login.html", {"next": safe_next(next)})


def login_failures_limit() -> AddressLimit:
    """Failed console logins per client address (api.http.address_limits), with the same
    numbers as per account (api.domain.staff): a success does not count."""
    return AddressLimit(LOGIN_FAILURES, LOGIN_FAILURES_WINDOW.total_seconds())


@router.post("/login", response_model=None)
def login(
    request: Request,
    email: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    session = ConsoleSession.from_request(request)
    context = {"next": safe_next(next), "email": one_line(email, 200)}
    if not session.csrf_ok(csrf):
        session.log_out()
        context["error"] = "login_expired"
        return render(request, session, "console/login.html", context, status_code=403)
    failures: AddressLimit = request.app.state.login_failures
    address = client_address(request)
    now = clock_now(request)
    fingerprint = login_id = ""
    with db.write(request.app.state.engine) as conn:
        wait = failures.wait(address) or (login_wait(conn, email, now) if email else 0)
        staff = None
        if not wait and email and password:
            staff = verify_password(conn, email, password)
        if staff is not None:
            fingerprint = fingerprint_of(conn, staff.id)
            login_id = open_login(conn, staff.id, now)
        elif not wait:
            record_login_failure(conn, email, now)
    if wait:
        # Even the right password waits: the lock lifts by itself.
        context["error"] = "login_throttled"
        context["minutes"] = str(-(-wait // 60))
        response = render(request, session, "console/login.html", context, status_code=429)
        response.headers["Retry-After"] = str(wait)
        return response
    if staff is None:
        failures.hit(address)
        context["error"] = "login_wrong"
        return render(request, session, "console/login.html", context, status_code=401)
    session.log_in(staff.id, login_id, fingerprint)
    return redirect(request, session, safe_next(next))


@router.post("/logout", response_model=None)
def logout(desk: FormDesk) -> Response:
    with db.write(desk.engine) as conn:
        end_login(conn, desk.session.login_id, desk.now)
    desk.session.log_out()
    desk.session.flash("ok", "logged_out")
    return desk.redirect("/console/login")


@router.post("/language", response_model=None)
def choose_language(
    request: Request,
    lang: Annotated[str, Form(max_length=5)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """The console's language switch (French, English): kept in the session, logged in or
    not, so that the login page can be read in English too."""
    session = ConsoleSession.from_request(request)
    if session.csrf_ok(csrf) and lang in console_i18n.LANGUAGES:
        session.lang = lang
        session.modified = True
    return redirect(request, session, safe_next(next))
