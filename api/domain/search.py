"""Finding anyone at the desk: one box for an appointment reference, a request reference, a
phone number or a name — the console's search page and the staff API's filters alike.

What the box understands (`understand`), all at once when the text allows:
- an appointment reference: `RDV-7K2M9Q`, `rdv 7k2 m9q`, `RDV7K2M9O` (Crockford: O is 0,
  I and L are 1), or the six characters alone when they hold a digit;
- a request reference: `ABJ-2026-000123`, `abj 2026 123`, `ABJ/2026/123`;
- a phone number, international (`+225 07 01 00 01 23`, `00225…`) or local
  (`07 01 00 01 23`), read with `phonenumbers` in the country of each of the desk's posts:
  every reading that makes a possible number is searched;
- a name: each word, accents and case aside, part of one of the name's words
  (`ouédr awa` finds "Awa OUEDRAOGO"). Names are compared on the rows' `name_key`
  (`flows.world.person_key`: accent-free, lower case, an indexed column on both stores), with
  `LIKE`, never by reading every citizen into Python.

What it answers: the appointments and requests of the caller's posts (an administrator: all),
and the citizens of that phone number who belong to those posts (`api.domain.membership`) —
another post's data is not found, as if it did not exist. A phone number is shown masked on
a shared screen (`mask_phone`): `+225 07 •• •• •1 23`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from api.domain import membership
from api.domain.staff import StaffPrincipal, post_filter
from api.domain.tables import table
from api.models import (
    Appointment,
    ChannelIdentity,
    Citizen,
    ConsularRequest,
    Post,
    Service,
)
from flows.understanding import booking_reference, request_reference
from flows.world import person_key

LIMIT = 50  # rows of each kind on one answer
DESK = "desk"  # the channel shown for a citizen who has none (a walk-in without a phone)
MASK = "•"

_appt = table(Appointment)
_request = table(ConsularRequest)
_citizen = table(Citizen)
_identity = table(ChannelIdentity)
_post = table(Post)
_service = table(Service)

_PHONE_TEXT = re.compile(r"^\+?[\d\s().\-/]+$")
_MIN_DIGITS = 6
_LONE_CODE = re.compile(r"^(?=[0-9A-Z]*\d)[0-9A-Z]{6}$")


@dataclass(frozen=True)
class Terms:
    """What one search text can be; every part optional."""

    text: str
    booking: str | None = None  # RDV-7K2M9Q
    request: str | None = None  # ABJ-2026-000123
    phones: tuple[str, ...] = ()  # E.164 readings of a phone number
    words: tuple[str, ...] = ()  # accent-free, lower-case parts of a name

    @property
    def empty(self) -> bool:
        return not (self.booking or self.request or self.phones or self.words)


def phone_readings(text: str, countries: Iterable[str]) -> tuple[str, ...]:
    """The E.164 numbers a typed phone number can be: international as written, local in
    each of `countries` (ISO codes) in turn. Empty when it is no phone number."""
    text = text.strip()
    if not _PHONE_TEXT.match(text) or sum(ch.isdigit() for ch in text) < _MIN_DIGITS:
        return ()
    if text.startswith("00"):
        text = "+" + text[2:]
    regions: list[str | None] = [None] if text.startswith("+") else []
    regions += [c.upper() for c in countries if c]
    if not text.startswith("+"):
        regions.append(None)  # "2250701000123": international without its plus
    found: list[str] = []
    for region in regions:
        try:
            number = phonenumbers.parse(text if region else "+" + text.lstrip("+"), region)
        except phonenumbers.NumberParseException:
            continue
        if not phonenumbers.is_possible_number(number):
            continue
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        if e164 not in found:
            found.append(e164)
    return tuple(found)


def _booking(text: str) -> str | None:
    compact = re.sub(r"[\s\-_.]", "", text.upper())
    if compact.startswith("RDV"):
        return booking_reference(compact[:3] + "-" + compact[3:]) if len(compact) == 9 else None
    if _LONE_CODE.match(compact):
        return booking_reference("RDV-" + compact)
    return None


def understand(text: str, countries: Iterable[str]) -> Terms:
    """Read a search text (see the module docstring)."""
    text = " ".join(text.split())[:120]
    phones = phone_readings(text, countries)
    booking, request = _booking(text), request_reference(text)
    named = not (phones or booking or request)  # a reference's letters are no name
    words = tuple(w for w in person_key(text).split() if len(w) >= 2) if named else ()
    return Terms(text=text, booking=booking, request=request, phones=phones, words=words)


def phone_terms(text: str, countries: Iterable[str]) -> Terms | None:
    """A `phone=` filter as search terms (its readings, local in each of `countries`); None
    when it is no phone number."""
    readings = phone_readings(text, countries)
    return Terms(text=text, phones=readings) if readings else None


def countries_of(conn: Connection, staff: StaffPrincipal, post_id: int | None = None) -> list[str]:
    """The countries a local number is read in: the post's, or those of the caller's posts."""
    query = sa.select(_post.c.country).where(post_filter(staff, _post.c.id)).distinct()
    if post_id is not None:
        query = query.where(_post.c.id == post_id)
    return sorted(conn.execute(query).scalars())


def mask_phone(phone: str | None) -> str:
    """A number for a shared screen: its country code, two first and three last digits of the
    national number ('+2250701000123' → '+225 07 •• •• •1 23'); '' for none."""
    if not phone:
        return ""
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return MASK * 4
    shown = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    prefix = f"+{number.country_code}"
    national = shown.removeprefix(prefix)
    digits = sum(ch.isdigit() for ch in national)
    seen, out = 0, []
    for ch in national:
        if ch.isdigit():
            seen += 1
            out.append(ch if seen <= 2 or seen > digits - 3 else MASK)
        else:
            out.append(ch)
    return prefix + "".join(out)


# --- what each kind of row matches ----------------------------------------------------------------


def _name_matches(column: sa.ColumnElement[str], words: Collection[str]) -> sa.ColumnElement[bool]:
    # person_key keeps letters only: no LIKE wildcard can come from the text.
    return sa.and_(*(column.like(f"%{word}%") for word in words))


def _citizens_with(phones: Collection[str]) -> sa.ScalarSelect[int]:
    return sa.select(_citizen.c.id).where(_citizen.c.phone.in_(sorted(phones))).scalar_subquery()


def appointment_matches(terms: Terms) -> sa.ColumnElement[bool]:
    """The appointments the terms designate (any kind of term)."""
    found: list[sa.ColumnElement[bool]] = []
    if terms.booking:
        found.append(_appt.c.reference == terms.booking)
    if terms.phones:
        found.append(_appt.c.citizen_id.in_(_citizens_with(terms.phones)))
    if terms.words:
        found.append(_name_matches(_appt.c.name_key, terms.words))
    return sa.or_(sa.false(), *found)


def request_matches(terms: Terms) -> sa.ColumnElement[bool]:
    """The requests the terms designate (any kind of term)."""
    found: list[sa.ColumnElement[bool]] = []
    if terms.request:
        found.append(_request.c.reference == terms.request)
    if terms.phones:
        found.append(_request.c.phone.in_(sorted(terms.phones)))
        found.append(_request.c.citizen_id.in_(_citizens_with(terms.phones)))
    if terms.words:
        found.append(_name_matches(_request.c.name_key, terms.words))
    return sa.or_(sa.false(), *found)


# --- how a citizen is reached, for the lists ------------------------------------------------------


def contact_columns(citizen_id: sa.ColumnElement[int]) -> tuple[sa.ColumnElement[Any], ...]:
    """`channel` (the one they last wrote from; None: none), `lang` and `phone` of the citizen
    behind a row, as columns to add to its select."""
    channel = (
        sa.select(_identity.c.channel)
        .where(_identity.c.citizen_id == citizen_id)
        .order_by(sa.nulls_last(_identity.c.last_inbound_at.desc()), _identity.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    person = _citizen.alias("person")  # an alias: `citizen_id` may be citizen.id itself

    def of_person(column: sa.ColumnElement[Any]) -> sa.ScalarSelect[Any]:
        return sa.select(column).where(person.c.id == citizen_id).scalar_subquery()

    return (
        channel.label("channel"),
        of_person(person.c.lang).label("lang"),
        of_person(person.c.phone).label("phone"),
    )


# --- the answer ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FoundAppointment:
    id: int
    reference: str
    post_code: str
    service_code: str
    service_name: str
    local_time: datetime
    full_name: str
    status: str
    channel: str
    lang: str
    phone: str  # masked


@dataclass(frozen=True)
class FoundRequest:
    reference: str
    post_code: str
    service_code: str
    service_name: str
    full_name: str
    status: str
    phone: str  # masked


@dataclass(frozen=True)
class FoundCitizen:
    id: int
    phone: str  # masked
    channel: str
    lang: str
    appointments: int  # at the caller's posts
    requests: int


@dataclass(frozen=True)
class Found:
    terms: Terms
    appointments: list[FoundAppointment]
    requests: list[FoundRequest]
    citizens: list[FoundCitizen]

    @property
    def count(self) -> int:
        return len(self.appointments) + len(self.requests) + len(self.citizens)


def find(conn: Connection, staff: StaffPrincipal, text: str, limit: int = LIMIT) -> Found:
    """Everything of the caller's posts that the text designates, by kind."""
    terms = understand(text, countries_of(conn, staff))
    if terms.empty:
        return Found(terms, [], [], [])
    return Found(
        terms,
        _appointments(conn, staff, terms, limit),
        _requests(conn, staff, terms, limit),
        _citizens(conn, staff, terms, limit),
    )


def _appointments(
    conn: Connection, staff: StaffPrincipal, terms: Terms, limit: int
) -> list[FoundAppointment]:
    rows = conn.execute(
        sa.select(
            _appt.c.id,
            _appt.c.reference,
            _appt.c.starts_at,
            _appt.c.full_name,
            _appt.c.status,
            _post.c.code.label("post_code"),
            _post.c.timezone,
            _service.c.code.label("service_code"),
            _service.c.name.label("service_name"),
            *contact_columns(_appt.c.citizen_id),
        )
        .select_from(
            _appt.join(_post, _post.c.id == _appt.c.post_id).join(
                _service, _service.c.id == _appt.c.service_id
            )
        )
        .where(post_filter(staff, _appt.c.post_id), appointment_matches(terms))
        .order_by(_appt.c.starts_at.desc(), _appt.c.id.desc())
        .limit(limit)
    )
    return [
        FoundAppointment(
            id=r.id,
            reference=r.reference,
            post_code=r.post_code,
            service_code=r.service_code,
            service_name=r.service_name,
            local_time=r.starts_at.astimezone(ZoneInfo(r.timezone)),
            full_name=r.full_name,
            status=r.status,
            channel=r.channel or DESK,
            lang=r.lang or "",
            phone=mask_phone(r.phone),
        )
        for r in rows
    ]


def _requests(
    conn: Connection, staff: StaffPrincipal, terms: Terms, limit: int
) -> list[FoundRequest]:
    rows = conn.execute(
        sa.select(
            _request.c.reference,
            _request.c.full_name,
            _request.c.status,
            _request.c.phone,
            _post.c.code.label("post_code"),
            _service.c.code.label("service_code"),
            _service.c.name.label("service_name"),
        )
        .select_from(
            _request.join(_post, _post.c.id == _request.c.post_id).join(
                _service, _service.c.id == _request.c.service_id
            )
        )
        .where(post_filter(staff, _request.c.post_id), request_matches(terms))
        .order_by(_request.c.created_at.desc(), _request.c.id.desc())
        .limit(limit)
    )
    return [
        FoundRequest(
            reference=r.reference,
            post_code=r.post_code,
            service_code=r.service_code,
            service_name=r.service_name,
            full_name=r.full_name,
            status=r.status,
            phone=mask_phone(r.phone),
        )
        for r in rows
    ]


def _citizens(
    conn: Connection, staff: StaffPrincipal, terms: Terms, limit: int
) -> list[FoundCitizen]:
    """The citizens of that phone number who belong to the caller's posts."""
    if not terms.phones:
        return []
    appointments = (
        sa.select(sa.func.count())
        .select_from(_appt)
        .where(_appt.c.citizen_id == _citizen.c.id, post_filter(staff, _appt.c.post_id))
        .scalar_subquery()
    )
    requests = (
        sa.select(sa.func.count())
        .select_from(_request)
        .where(_request.c.citizen_id == _citizen.c.id, post_filter(staff, _request.c.post_id))
        .scalar_subquery()
    )
    query = sa.select(
        _citizen.c.id,
        *contact_columns(_citizen.c.id),
        appointments.label("appointments"),
        requests.label("requests"),
    ).where(_citizen.c.phone.in_(sorted(terms.phones)), _citizen.c.erased_at.is_(None))
    if not staff.is_admin:
        query = query.where(membership.belongs_to(_citizen, sorted(staff.post_ids)))
    rows = conn.execute(
        query.order_by(_citizen.c.phone_verified.desc(), _citizen.c.id).limit(limit)
    )
    return [
        FoundCitizen(
            id=r.id,
            phone=mask_phone(r.phone),
            channel=r.channel or DESK,
            lang=r.lang or "",
            appointments=r.appointments,
            requests=r.requests,
        )
        for r in rows
    ]
