"""Consular requests (dossiers): references, statuses and their history, status lookups.

`RequestService(conn)` works on the caller's connection and transaction, like BookingService:
nothing here commits. Write with `api.db.write(engine)`.

References. Staff issue `<POST>-<YEAR>-<serial>` (`ABJ-2026-000123`), the serial counting per
post and per year of the post's local calendar. The serial comes from `request_sequence` with
one statement, `INSERT … ON CONFLICT (post_id, year) DO UPDATE SET last = last + 1
RETURNING last`: the row lock it takes (the write lock on SQLite) makes concurrent desks
queue, never read the same number.

Statuses. received → in_progress → ready → delivered; any status that is not final may go to
rejected, with a reason. delivered and rejected are final. The change is one conditional
UPDATE (`WHERE status IN (the allowed predecessors)`), each change is appended to
`request_event`, and the citizen is told (api.domain.notices).

Lookups (the chat's "track a request"). Nothing said before verification tells whether a
reference exists: without a birth date the answer is `needs_birth_date` for any reference,
unless the sender's verified phone is the request's. The verified owner is never locked out:
their phone is looked at before any lock. A wrong birth date and an unknown reference are the
same failure, counted in `lookup_guard` with one conditional upsert per row: per reference and
sender, the third in a row locks that sender out for `LOCK_DURATION` (a success resets it);
per reference across all senders, `CEILING` failures lock the reference for `CEILING_LOCK`
for everybody but its owner, so that many accounts guessing together gain little. Counts older
than `STALE_AFTER` start again. When a lock falls on an existing request, its citizen is told
(once a day) that someone is guessing, and staff see the counts on the request.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row
from sqlmodel import SQLModel

from api.domain import membership, notices
from api.domain.citizens import normalise_phone
from api.models import (
    Citizen,
    ConsularRequest,
    LookupGuard,
    Post,
    RequestEvent,
    RequestSequence,
    RequestStatus,
    Service,
    UTCDateTime,
)
from flows.status import normalise_reference
from flows.world import LookupOutcome, LookupResult, PostInfo, RequestInfo, person_key

MAX_FAILURES = 3  # per reference and sender, in a row
LOCK_DURATION = timedelta(minutes=15)
CEILING = 10  # per reference, all senders together
CEILING_LOCK = timedelta(hours=1)
STALE_AFTER = timedelta(days=1)
ALL_SENDERS = "*"  # the guard row that counts every sender's failures
REASON_MAX = 300
NAME_MAX = 120

FINAL = frozenset({RequestStatus.delivered, RequestStatus.rejected})
# A correction goes one step back: the passport was not in the box after all.
BACK_TO = {
    RequestStatus.in_progress: RequestStatus.received,
    RequestStatus.ready: RequestStatus.in_progress,
}

# The statuses a request may come from, for each status it may go to.
ALLOWED_FROM: dict[RequestStatus, frozenset[RequestStatus]] = {
    RequestStatus.received: frozenset(),
    RequestStatus.in_progress: frozenset({RequestStatus.received}),
    RequestStatus.ready: frozenset({RequestStatus.in_progress}),
    RequestStatus.delivered: frozenset({RequestStatus.ready}),
    RequestStatus.rejected: frozenset(
        {RequestStatus.received, RequestStatus.in_progress, RequestStatus.ready}
    ),
}


def _table(model: type[SQLModel]) -> sa.Table:
    return cast(sa.Table, sa.inspect(model).local_table)


_request = _table(ConsularRequest)
_sequence = _table(RequestSequence)
_event = _table(RequestEvent)
_guard = _table(LookupGuard)
_post = _table(Post)
_service = _table(Service)
_citizen = _table(Citizen)


class UnknownRequest(LookupError):
    """No request has this reference."""


class TransitionRefused(ValueError):
    """The request's current status does not allow the change asked for."""

    def __init__(self, current: RequestStatus, wanted: RequestStatus) -> None:
        super().__init__(f"a request that is {current.value} cannot become {wanted.value}")
        self.current = current
        self.wanted = wanted


@dataclass(frozen=True)
class RequestRecord:
    """A request with the codes of its post and service, as staff see it."""

    id: int
    reference: str
    post_id: int
    post_code: str
    service_code: str
    citizen_id: int | None
    phone: str | None
    full_name: str
    birth_date: date | None
    status: RequestStatus
    reason: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class GuardRecord:
    """Failed lookups on one reference: how many, from how many senders, and its lock."""

    failures: int
    senders: int
    locked_until: datetime | None


@dataclass(frozen=True)
class RequestEventRecord:
    status: RequestStatus
    note: str
    staff_id: int | None
    at: datetime


def clean_reference(reference: str) -> str:
    """The canonical form of a reference ('abj 2026 123' → 'ABJ-2026-000123'); text that
    cannot be one is kept upper-cased and cut to the column's size, so it matches nothing."""
    return normalise_reference(reference) or reference.strip().upper()[:20]


def record_query() -> sa.Select[Any]:
    """Requests with their post and service codes; add `.where(…)` to pick some."""
    return sa.select(
        _request.c.id,
        _request.c.reference,
        _request.c.post_id,
        _post.c.code.label("post_code"),
        _service.c.code.label("service_code"),
        _request.c.citizen_id,
        _request.c.phone,
        _request.c.full_name,
        _request.c.birth_date,
        _request.c.status,
        _request.c.reason,
        _request.c.created_at,
        _request.c.updated_at,
    ).select_from(
        _request.join(_post, _post.c.id == _request.c.post_id).join(
            _service, _service.c.id == _request.c.service_id
        )
    )


def to_record(row: Row[Any]) -> RequestRecord:
    return RequestRecord(
        id=row.id,
        reference=row.reference,
        post_id=row.post_id,
        post_code=row.post_code,
        service_code=row.service_code,
        citizen_id=row.citizen_id,
        phone=row.phone,
        full_name=row.full_name,
        birth_date=row.birth_date,
        status=RequestStatus(row.status),
        reason=row.reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class RequestService:
    """Consular requests on the caller's connection and transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # --- staff ------------------------------------------------------------------------------

    def create(
        self,
        post_code: str,
        service_code: str,
        phone: str | None,
        full_name: str,
        birth_date: date | None,
        staff_id: int | None,
        now: datetime,
        *,
        link_within: Collection[int] | None = None,
    ) -> ConsularRequest:
        """Lodge a request and issue its reference. Raises UnknownRequest's sibling LookupError
        for an unknown post or service, ValueError for a bad phone number or an empty name.

        The citizen with that verified phone is linked to it only if they already belong to
        one of the posts `link_within` (the lodging agent's; None: an administrator), so that
        a phone number typed at a desk pulls nobody into its scope (`api.domain.membership`).
        """
        full_name = " ".join(full_name.split())[:NAME_MAX]
        if not full_name:
            raise ValueError("full_name is empty")
        e164 = None
        if phone is not None and phone.strip():
            e164 = normalise_phone(phone)
            if e164 is None:
                raise ValueError("not a phone number")
        post = self.conn.execute(
            sa.select(_post.c.id, _post.c.code, _post.c.timezone).where(_post.c.code == post_code)
        ).first()
        if post is None:
            raise LookupError(f"no post {post_code!r}")
        service_id = self.conn.execute(
            sa.select(_service.c.id).where(_service.c.code == service_code)
        ).scalar_one_or_none()
        if service_id is None:
            raise LookupError(f"no service {service_code!r}")

        year = now.astimezone(ZoneInfo(post.timezone)).year
        serial = self._next_serial(post.id, year)
        reference = f"{post.code}-{year}-{serial:06d}"
        citizen_id = self._citizen_with_phone(e164)
        if citizen_id is not None and not membership.citizen_in_posts(
            self.conn, citizen_id, link_within
        ):
            citizen_id = None
        values: dict[str, Any] = {
            "reference": reference,
            "post_id": post.id,
            "service_id": service_id,
            "citizen_id": citizen_id,
            "phone": e164,
            "full_name": full_name,
            "name_key": person_key(full_name),
            "birth_date": birth_date,
            "status": RequestStatus.received.value,
            "reason": "",
            "created_at": now,
            "updated_at": now,
        }
        request_id = self.conn.execute(
            sa.insert(_request).values(**values).returning(_request.c.id)
        ).scalar_one()
        self._append_event(request_id, RequestStatus.received, "", staff_id, now)
        return ConsularRequest(id=request_id, **values)

    def get(self, reference: str) -> RequestRecord | None:
        row = self.conn.execute(
            record_query().where(_request.c.reference == clean_reference(reference))
        ).first()
        return to_record(row) if row else None

    def history(self, request_id: int) -> list[RequestEventRecord]:
        rows = self.conn.execute(
            sa.select(_event.c.status, _event.c.note, _event.c.staff_id, _event.c.at)
            .where(_event.c.request_id == request_id)
            .order_by(_event.c.at, _event.c.id)
        )
        return [RequestEventRecord(RequestStatus(r.status), r.note, r.staff_id, r.at) for r in rows]

    def change_status(
        self,
        reference: str,
        status: RequestStatus | str,
        reason: str,
        staff_id: int | None,
        now: datetime,
    ) -> ConsularRequest:
        """Move a request on, append the change to its history and tell the citizen.

        Raises UnknownRequest, TransitionRefused, or ValueError (a rejection without reason).
        """
        wanted = RequestStatus(status)
        reason = " ".join(reason.split())[:REASON_MAX]
        if wanted is RequestStatus.rejected and not reason:
            raise ValueError("a rejection needs a reason")
        reference = clean_reference(reference)
        row = self.conn.execute(
            sa.update(_request)
            .where(
                _request.c.reference == reference,
                _request.c.status.in_([s.value for s in ALLOWED_FROM[wanted]]),
            )
            .values(
                status=wanted.value,
                reason=reason if wanted is RequestStatus.rejected else "",
                updated_at=now,
            )
            .returning(*_request.c)
        ).first()
        if row is None:
            current = self.conn.execute(
                sa.select(_request.c.status).where(_request.c.reference == reference)
            ).scalar_one_or_none()
            if current is None:
                raise UnknownRequest(reference)
            raise TransitionRefused(RequestStatus(current), wanted)
        event_id = self._append_event(row.id, wanted, reason, staff_id, now)
        request = ConsularRequest.model_validate(row._asdict())
        # Told even when not linked (what the desk needs), but not linked by a status change.
        citizen_id = request.citizen_id or self._citizen_with_phone(request.phone)
        if citizen_id is not None:
            notices.request_status_changed(
                self.conn,
                citizen_id,
                request_id=int(row.id),
                event_id=event_id,
                reference=request.reference,
                service_code=self._service_code(request.service_id),
                post=self._post_info(request.post_id),
                status=wanted.value,
                reason=reason,
                now=now,
            )
        return request

    def step_back(
        self, reference: str, reason: str, staff_id: int | None, now: datetime
    ) -> tuple[RequestStatus, ConsularRequest]:
        """A correction: one step back (ready → in_progress, in_progress → received), with a
        reason kept in the history; (the status left, the request). The citizen is told only
        if they had been told the status it leaves. Raises UnknownRequest, TransitionRefused
        (nothing to step back from), ValueError (no reason)."""
        reason = " ".join(reason.split())[:REASON_MAX]
        if not reason:
            raise ValueError("a correction needs a reason")
        reference = clean_reference(reference)
        current = self.conn.execute(
            sa.select(_request.c.status).where(_request.c.reference == reference)
        ).scalar_one_or_none()
        if current is None:
            raise UnknownRequest(reference)
        left = RequestStatus(current)
        back = BACK_TO.get(left)
        if back is None:
            raise TransitionRefused(left, left)
        row = self.conn.execute(
            sa.update(_request)
            .where(_request.c.reference == reference, _request.c.status == left.value)
            .values(status=back.value, updated_at=now)
            .returning(*_request.c)
        ).first()
        if row is None:  # moved meanwhile
            raise TransitionRefused(left, back)
        event_id = self._append_event(row.id, back, f"correction: {reason}", staff_id, now)
        request = ConsularRequest.model_validate(row._asdict())
        citizen_id = request.citizen_id or self._citizen_with_phone(request.phone)
        if citizen_id is not None and notices.was_told(self.conn, int(row.id), left.value):
            notices.request_corrected(
                self.conn,
                citizen_id,
                request_id=int(row.id),
                event_id=event_id,
                reference=request.reference,
                status=back.value,
                reason=reason,
                now=now,
            )
        return left, request

    def _service_code(self, service_id: int) -> str:
        code: str = self.conn.execute(
            sa.select(_service.c.code).where(_service.c.id == service_id)
        ).scalar_one()
        return code

    # --- the chat ---------------------------------------------------------------------------

    def lookup(
        self,
        reference: str,
        birth_date: date | None,
        verified_phone: str | None,
        now: datetime,
        *,
        sender: int,
    ) -> LookupResult:
        """`sender` is the asking citizen's id: failures count per reference and sender."""
        reference = clean_reference(reference)
        row = self.conn.execute(record_query().where(_request.c.reference == reference)).first()
        request = to_record(row) if row else None
        if request is not None and verified_phone and request.phone == verified_phone:
            owner = None if request.citizen_id else self._citizen_with_phone(verified_phone)
            if owner is not None:  # the owner opened it from their phone: now it is theirs
                self.conn.execute(
                    sa.update(_request)
                    .where(_request.c.id == request.id, _request.c.citizen_id.is_(None))
                    .values(citizen_id=owner)
                )
            return self._found(request, sender, now)  # the owner: no lock applies
        locked_until = self.conn.execute(
            sa.select(sa.func.max(_guard.c.locked_until)).where(
                _guard.c.reference == reference,
                _guard.c.sender.in_((_sender_key(sender), ALL_SENDERS)),
                _guard.c.locked_until > now,
            )
        ).scalar_one_or_none()
        if locked_until is not None:
            return LookupResult(LookupOutcome.locked, locked_until=locked_until)
        if birth_date is None:
            return LookupResult(LookupOutcome.needs_birth_date)
        if request is not None and request.birth_date == birth_date:
            return self._found(request, sender, now)

        own = self._count_failure(reference, _sender_key(sender), MAX_FAILURES, LOCK_DURATION, now)
        shared = self._count_failure(reference, ALL_SENDERS, CEILING, CEILING_LOCK, now)
        locks = [lock for lock in (own, shared) if lock is not None and lock > now]
        if not locks:
            return LookupResult(LookupOutcome.wrong)
        if request is not None and (own == now + LOCK_DURATION or shared == now + CEILING_LOCK):
            self._tell_owner_of_guessing(request, sender, now)
        return LookupResult(LookupOutcome.locked, locked_until=max(locks))

    def guard(self, reference: str, now: datetime) -> GuardRecord:
        """What staff see of the lookups that failed on a reference (no sender is named)."""
        rows = self.conn.execute(
            sa.select(_guard).where(_guard.c.reference == clean_reference(reference))
        ).all()
        shared = next((r for r in rows if r.sender == ALL_SENDERS), None)
        own = [r for r in rows if r.sender != ALL_SENDERS and r.failures > 0]
        return GuardRecord(
            failures=0
            if shared is None or shared.updated_at <= now - STALE_AFTER
            else shared.failures,
            senders=sum(1 for r in own if r.updated_at > now - STALE_AFTER),
            locked_until=(
                shared.locked_until
                if shared is not None and shared.locked_until and shared.locked_until > now
                else None
            ),
        )

    # --- internals --------------------------------------------------------------------------

    def _insert(self) -> Any:
        return (sqlite if self.conn.dialect.name == "sqlite" else postgresql).insert

    def _next_serial(self, post_id: int, year: int) -> int:
        """Insert-or-increment: the one statement that issues a serial."""
        statement = (
            self._insert()(_sequence)
            .values(post_id=post_id, year=year, last=1)
            .on_conflict_do_update(
                index_elements=[_sequence.c.post_id, _sequence.c.year],
                set_={"last": _sequence.c.last + 1},
            )
            .returning(_sequence.c.last)
        )
        return int(self.conn.execute(statement).scalar_one())

    def _citizen_with_phone(self, phone: str | None) -> int | None:
        if not phone:
            return None
        found = self.conn.execute(
            sa.select(_citizen.c.id).where(
                _citizen.c.phone == phone,
                _citizen.c.phone_verified.is_(True),
                _citizen.c.erased_at.is_(None),
            )
        ).scalar_one_or_none()
        return None if found is None else int(found)

    def _append_event(
        self,
        request_id: int,
        status: RequestStatus,
        note: str,
        staff_id: int | None,
        now: datetime,
    ) -> int:
        event_id = self.conn.execute(
            sa.insert(_event)
            .values(
                request_id=request_id, status=status.value, note=note, staff_id=staff_id, at=now
            )
            .returning(_event.c.id)
        ).scalar_one()
        return int(event_id)

    def _post_info(self, post_id: int) -> PostInfo:
        row = self.conn.execute(sa.select(_post).where(_post.c.id == post_id)).one()
        return PostInfo(
            code=row.code,
            name=row.name,
            city=row.city,
            country=row.country,
            timezone=row.timezone,
            address=row.address,
            phone=row.phone,
            email=row.email,
        )

    def _found(self, request: RequestRecord, sender: int, now: datetime) -> LookupResult:
        self.conn.execute(
            sa.update(_guard)
            .where(
                _guard.c.reference == request.reference,
                _guard.c.sender == _sender_key(sender),
                _guard.c.failures > 0,
            )
            .values(failures=0, locked_until=None, updated_at=now)
        )
        info = RequestInfo(
            reference=request.reference,
            service_code=request.service_code,
            post=self._post_info(request.post_id),
            status=request.status.value,
            reason=request.reason,
            updated_at=request.updated_at,
        )
        return LookupResult(LookupOutcome.found, info)

    def _count_failure(
        self, reference: str, sender: str, limit: int, lock: timedelta, now: datetime
    ) -> datetime | None:
        """One upsert counts the failure on one guard row: after an expired lock or a stale
        count the count starts again; reaching `limit` sets the lock; a lock still running is
        left as it is (a concurrent lookup set it meanwhile). Returns the lock, if any."""
        at = sa.literal(now, UTCDateTime())
        stale = sa.literal(now - STALE_AFTER, UTCDateTime())
        lock_until = sa.literal(now + lock, UTCDateTime())
        failures = sa.case(
            (_guard.c.locked_until > at, _guard.c.failures),
            (sa.or_(_guard.c.locked_until <= at, _guard.c.updated_at <= stale), 1),
            else_=_guard.c.failures + 1,
        )
        locked_until = sa.case(
            (_guard.c.locked_until > at, _guard.c.locked_until),
            (failures >= limit, lock_until),
            else_=sa.null(),
        )
        statement = (
            self._insert()(_guard)
            .values(
                reference=reference,
                sender=sender,
                failures=1,
                locked_until=None,
                updated_at=now,
            )
            .on_conflict_do_update(
                index_elements=[_guard.c.reference, _guard.c.sender],
                set_={"failures": failures, "locked_until": locked_until, "updated_at": now},
            )
            .returning(_guard.c.locked_until)
        )
        locked: datetime | None = self.conn.execute(statement).scalar_one()
        return locked

    def _tell_owner_of_guessing(self, request: RequestRecord, sender: int, now: datetime) -> None:
        citizen_id = request.citizen_id or self._citizen_with_phone(request.phone)
        if citizen_id is None or citizen_id == sender:
            return
        notices.request_guessed(
            self.conn, citizen_id, request_id=request.id, reference=request.reference, now=now
        )


def _sender_key(citizen_id: int) -> str:
    return f"c{citizen_id}"
