"""Proof of appointment: a signed token, its QR code, its calendar file, and the check-in at
the door that verifies it.

The token is the appointment's reference and a MAC of it: `RDV-7K2M9Q.` + 24 base32
characters (120 bits of HMAC-SHA256 under the proof key). Nobody without the key can make
one, and changing one character of it makes it fail; it holds nothing the citizen was not
told already (the reference). It is verified offline — from the key and the database alone:
the MAC checks that we issued it, the appointment row (looked up by its unique reference)
says what it is worth today (booked, cancelled, another day, another post). A rescheduled
appointment keeps its reference, hence its token; an erased one is gone, and its token with it.

The same token names the files served to the providers (api.http.proof_files): the QR code
at `/proof/{token}/qr.png` and the calendar file at `/proof/{token}/rendez-vous.ics`, no
login (Twilio and Telegram fetch them), unguessable (the MAC), 404 when forged or unknown.

The key: `PROOF_SECRET`, else derived from `CONSOLE_SECRET`, else drawn by the process at
start-up (the local demo: QR codes then stop working at the next restart, and a separate
worker's would not verify in `serve`). Set one in production, the same on every process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import segno
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from api.domain import appointment_desk
from api.domain.appointment_desk import AppointmentRecord
from api.domain.audit import StaffWrite
from api.domain.errors import NotVisible, Refused
from api.domain.outbox import renderer_for
from api.domain.tables import table
from api.models import Appointment, AppointmentStatus, Citizen, Post, PostService, Service
from bot.channels import DOCUMENT, IMAGE, Media
from flows.choices import service_name
from flows.messages import Attachment, Msg, msg, raw

PNG = "image/png"
ICS = "text/calendar"
QR_FILE = "qr.png"  # /proof/{token}/<file>: the last segment names the file for the citizen
CALENDAR_FILE = "rendez-vous.ics"
MAC_BYTES = 15  # 120 bits: 24 base32 characters, no padding
MAC_CHARS = 24
_LABEL = b"diaspora-bot appointment proof v1"
_PROCESS_SECRET = secrets.token_bytes(32)

_appointment = table(Appointment)
_post = table(Post)
_service = table(Service)
_post_service = table(PostService)
_citizen = table(Citizen)


def proof_key(proof_secret: str | None, console_secret: str | None = None) -> bytes:
    """The key that signs proofs: from PROOF_SECRET, else CONSOLE_SECRET (a key of its own,
    derived under another label than the console's), else this process's random secret."""
    secret = proof_secret or console_secret
    raw = secret.encode("utf-8") if secret else _PROCESS_SECRET
    return hmac.new(raw, _LABEL, hashlib.sha256).digest()


def _mac(key: bytes, reference: str) -> str:
    digest = hmac.new(key, reference.encode("utf-8"), hashlib.sha256).digest()[:MAC_BYTES]
    return base64.b32encode(digest).decode("ascii")


def token(key: bytes, reference: str) -> str:
    """The proof of the appointment with this reference."""
    return f"{reference}.{_mac(key, reference)}"


def verified_reference(key: bytes, proof: str) -> str | None:
    """The reference a proof vouches for; None when it is not one of ours (forged, altered,
    cut). Forgiving of what scanners and hands do: spaces around it, lower case."""
    text = proof.strip().upper()
    reference, dot, mac = text.rpartition(".")
    if not dot or not reference or len(mac) != MAC_CHARS:
        return None
    if not hmac.compare_digest(mac, _mac(key, reference)):
        return None
    return reference


def file_path(key: bytes, reference: str, file: str = QR_FILE) -> str:
    """Where the app serves a proof's file (QR_FILE or CALENDAR_FILE): a path no one guesses."""
    return f"/proof/{token(key, reference)}/{file}"


@dataclass(frozen=True)
class ProofLinks:
    """Implements bot.i18n.Attachments: a proof's files, where they are served — its QR code
    (an image) and its calendar file (a document: Telegram only, WhatsApp takes none)."""

    key: bytes
    base_url: str

    def _url(self, reference: str, file: str) -> str:
        return self.base_url.rstrip("/") + file_path(self.key, reference, file)

    def media(self, attachment: Attachment) -> tuple[Media, ...]:
        if attachment.kind != "proof":
            return ()
        return (
            Media(self._url(attachment.subject, QR_FILE), IMAGE),
            Media(self._url(attachment.subject, CALENDAR_FILE), DOCUMENT),
        )


# -- the files ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProvenAppointment:
    """What the files of a proof show: the appointment, its post and service."""

    reference: str
    status: AppointmentStatus
    starts_at: datetime  # UTC
    minutes: int
    created_at: datetime
    post_name: str
    post_address: str
    timezone: str
    service_code: str
    lang: str  # the citizen's language, for the calendar file's words


def find(conn: Connection, key: bytes, proof: str) -> ProvenAppointment | None:
    """The appointment a proof is for; None when the proof is forged or the appointment gone."""
    reference = verified_reference(key, proof)
    if reference is None:
        return None
    row = conn.execute(
        sa.select(
            _appointment.c.reference,
            _appointment.c.status,
            _appointment.c.starts_at,
            _appointment.c.created_at,
            _post.c.name.label("post_name"),
            _post.c.address,
            _post.c.timezone,
            _service.c.code.label("service_code"),
            _post_service.c.slot_minutes,
            _citizen.c.lang,
        )
        .select_from(
            _appointment.join(_post, _post.c.id == _appointment.c.post_id)
            .join(_service, _service.c.id == _appointment.c.service_id)
            .outerjoin(_citizen, _citizen.c.id == _appointment.c.citizen_id)
            .outerjoin(
                _post_service,
                (_post_service.c.post_id == _appointment.c.post_id)
                & (_post_service.c.service_id == _appointment.c.service_id),
            )
        )
        .where(_appointment.c.reference == reference)
    ).first()
    if row is None:
        return None
    return ProvenAppointment(
        reference=row.reference,
        status=AppointmentStatus(row.status),
        starts_at=row.starts_at,
        minutes=row.slot_minutes or 30,
        created_at=row.created_at,
        post_name=row.post_name,
        post_address=row.address,
        timezone=row.timezone,
        service_code=row.service_code,
        lang=row.lang or "fr",
    )


def qr_png(proof: str) -> bytes:
    """The QR code of a proof, as a PNG large enough for a phone's screen and a scanner."""
    out = io.BytesIO()
    segno.make(proof, error="m").save(out, kind="png", scale=8, border=4)
    return out.getvalue()


def calendar_file(conn: Connection, key: bytes, proof: str) -> bytes | None:
    """The calendar file of the appointment a proof is for (None as `find`), its words
    rendered as this engine's notices are (api.domain.outbox.renderer_for)."""
    found = find(conn, key, proof)
    return calendar(found, renderer_for(conn).render) if found is not None else None


def calendar(found: ProvenAppointment, render: Callable[[Msg, str], str]) -> bytes:
    """The appointment as an iCalendar file, in the post's time zone (with its VTIMEZONE), its
    words in the citizen's language (`render`: the bot's renderer)."""
    tz = ZoneInfo(found.timezone)
    start = found.starts_at.astimezone(tz)
    event = icalendar.Event()
    event.add("uid", f"{found.reference.lower()}@diaspora-bot")
    event.add("dtstamp", found.created_at)
    event.add("dtstart", start)
    event.add("dtend", start + timedelta(minutes=found.minutes))
    # i18n: the calendar file's title: the service and the post (a name as the post writes it)
    service, post = service_name(found.service_code), raw(found.post_name)
    event.add(
        "summary", render(msg("proof.calendar.summary", service=service, post=post), found.lang)
    )
    event.add("location", ", ".join(p for p in (found.post_name, found.post_address) if p))
    # i18n: the calendar file's note: the reference, and the QR code to show at the desk
    note = msg("proof.calendar.description", reference=found.reference)
    event.add("description", render(note, found.lang))
    cancelled = found.status is AppointmentStatus.cancelled
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    cal = icalendar.Calendar()
    cal.add("prodid", "-//Diaspora Bot//Rendez-vous consulaire//FR")
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")
    cal.add_component(event)
    cal.add_missing_timezones()
    return bytes(cal.to_ical())


# -- at the door --------------------------------------------------------------------------------


def check_in(tx: StaffWrite, key: bytes, proof: str) -> tuple[AppointmentRecord, AppointmentRecord]:
    """Check the citizen in on the proof they show (the QR code scanned, or typed): the same
    use case as the desk's check-in (`appointment_desk.set_attendance`, audited); (before,
    after). Refused `invalid_proof` (forged, altered, or no such appointment any more),
    `other_post` (a genuine proof, for a post the caller does not serve), `cancelled`,
    `already_checked_in` and `not_today` (with its `day`)."""
    reference = verified_reference(key, proof)
    row = None
    if reference is not None:
        row = tx.conn.execute(
            sa.select(_appointment.c.id).where(_appointment.c.reference == reference)
        ).first()
    if reference is None or row is None:
        raise Refused("invalid_proof", "this code is not a valid proof of appointment")
    try:
        before = appointment_desk.visible(tx.conn, tx.staff, row.id)
    except NotVisible:
        raise Refused(
            "other_post", "the appointment is at a post you do not serve", reference
        ) from None
    if before.status is AppointmentStatus.cancelled:
        raise Refused("cancelled", "the appointment was cancelled", reference)
    if before.status is AppointmentStatus.attended:
        raise Refused("already_checked_in", "the citizen is checked in already", reference)
    return appointment_desk.set_attendance(tx, row.id, "attended")
