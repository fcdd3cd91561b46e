"""Broadcasts: compose an announcement, count its audience live, send it now or later, follow
its statistics, cancel what is not sent yet, duplicate it as a new draft.

Access. An administrator may address anyone. An agent's segment must name posts, all of them
theirs (in `posts`, `appointment.posts`, `request.posts`), else 403; an agent sees only the
broadcasts whose segment stays within their posts (others answer 404, like data that does not
exist). Every change is audited.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query
from pydantic import AfterValidator, BaseModel, Field, model_validator
from sqlalchemy.engine import Connection

from api.db import read
from api.domain import broadcasts as domain
from api.domain.broadcasts import (
    TEXT_MAX,
    BroadcastRecord,
    Language,
    Segment,
)
from api.domain.staff import StaffPrincipal
from api.http.staff.deps import (
    CurrentStaff,
    DbDep,
    NowDep,
    Page,
    PageDep,
    post_table,
    staff_write,
)
from api.http.staff.errors import ProblemError, ProblemRoute, responses
from api.http.staff.fields import ONE_LINE, IdPath
from api.models import BroadcastStatus
from flows.engine import LANGUAGES

router = APIRouter(tags=["broadcasts"], route_class=ProblemRoute, responses=responses(401, 422))

LATEST_SEND_AT = datetime(2100, 1, 1, tzinfo=UTC)


def _french_required(texts: dict[str, str]) -> dict[str, str]:
    if not (texts.get("fr") or "").strip():
        raise ValueError("the French text (fr) is required")
    return texts


Texts = Annotated[
    dict[Language, Annotated[str, Field(max_length=TEXT_MAX)]], AfterValidator(_french_required)
]


class BroadcastCreate(BaseModel):
    title: str = Field(min_length=1, max_length=domain.TITLE_MAX, pattern=ONE_LINE)
    texts: Texts = Field(
        description=f"Text per language ({', '.join(LANGUAGES)}); French required: every "
        "citizen gets their language, else French.",
        examples=[{"fr": "Mission consulaire à Bouaké le 12 décembre.", "en": "…"}],
    )
    segment: Segment = Field(default_factory=Segment)


class BroadcastUpdate(BaseModel):
    """Fields to change on a draft; those left out (or null) stay as they are."""

    title: str | None = Field(
        default=None, min_length=1, max_length=domain.TITLE_MAX, pattern=ONE_LINE
    )
    texts: Texts | None = None
    segment: Segment | None = None


class SendBody(BaseModel):
    send_at: datetime | None = Field(
        default=None,
        description="When to send (with a time zone); absent or past: now.",
        examples=["2026-12-10T08:00:00Z"],
    )

    @model_validator(mode="after")
    def _aware(self) -> SendBody:
        if self.send_at is not None:
            if self.send_at.tzinfo is None or self.send_at.utcoffset() is None:
                raise ValueError("send_at needs a time zone, e.g. 2026-12-10T08:00:00Z")
            if self.send_at >= LATEST_SEND_AT:
                raise ValueError("send_at is too far in the future")
        return self


class BroadcastPublic(BaseModel):
    id: int
    title: str
    texts: dict[str, str]
    segment: Segment
    status: BroadcastStatus
    send_at: datetime | None
    created_by: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None = Field(description="When fan-out ended or it was cancelled")
    queued: int = Field(description="Messages written to the outbox for sending")
    skipped: dict[str, int] = Field(description="Citizens skipped at fan-out, by reason")


class AudienceCount(BaseModel):
    total: int = Field(description="Citizens in the segment")
    reachable: int = Field(description="Who would receive it now")
    opted_out: int
    unreachable: int


class BroadcastStats(BaseModel):
    broadcast_id: int
    status: BroadcastStatus
    audience: int = Field(description="Outbox rows, one per citizen of the audience")
    queued: int
    pending: int = Field(description="Not yet handed to the provider")
    sent: int = Field(description="Accepted by the provider (delivered and read included)")
    delivered: int = Field(description="Delivered (read included)")
    read: int
    failed: int
    cancelled: int
    skipped: dict[str, int] = Field(description="By reason: opted_out, unreachable, …")


def _texts(texts: dict[Language, str]) -> dict[str, str]:
    return {str(lang): text for lang, text in texts.items()}


def to_public(record: BroadcastRecord) -> BroadcastPublic:
    return BroadcastPublic(
        id=record.id,
        title=record.title,
        texts=record.texts,
        segment=domain.segment_of(record),
        status=BroadcastStatus(record.status),
        send_at=record.send_at,
        created_by=record.created_by,
        created_at=record.created_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        queued=record.queued,
        skipped=record.skipped,
    )


def _snapshot(record: BroadcastRecord) -> dict[str, Any]:
    return {k: v for k, v in record.as_dict().items() if k not in {"created_by", "created_at"}}


def _agent_codes(conn: Connection, staff: StaffPrincipal) -> frozenset[str] | None:
    """The codes of an agent's posts; None for an administrator (every post)."""
    if staff.is_admin:
        return None
    codes = conn.execute(
        sa.select(post_table.c.code).where(post_table.c.id.in_(sorted(staff.post_ids)))
    ).scalars()
    return frozenset(codes)


def _check_scope(conn: Connection, staff: StaffPrincipal, segment: Segment) -> Segment:
    """The segment scoped to the caller's posts (see `domain.check_scope`), or a problem."""
    try:
        return domain.check_scope(conn, segment, None if staff.is_admin else staff.post_ids)
    except domain.OutsideStaffPosts as exc:
        raise ProblemError(403, str(exc)) from None
    except domain.UnknownPosts as exc:
        raise ProblemError(422, str(exc)) from None


def _visible(conn: Connection, staff: StaffPrincipal, broadcast_id: int) -> BroadcastRecord:
    """The broadcast, if the caller may see it; else 404."""
    record = domain.find(conn, broadcast_id)
    if record is None or not domain.within(record, _agent_codes(conn, staff)):
        raise ProblemError(404, "no such broadcast")
    return record


def _wrong_status(exc: domain.WrongStatus) -> ProblemError:
    return ProblemError(409, str(exc))


@router.get("/broadcasts", summary="List broadcasts, newest first (an agent: their posts')")
def list_all(
    staff: CurrentStaff,
    db: DbDep,
    page: PageDep,
    status: Annotated[BroadcastStatus | None, Query()] = None,
) -> Page[BroadcastPublic]:
    with read(db) as conn:
        records, total = domain.list_broadcasts(
            conn,
            post_codes=_agent_codes(conn, staff),
            status=status.value if status else None,
            limit=page.limit,
            offset=page.offset,
        )
    return page.wrap([to_public(r) for r in records], total)


@router.post(
    "/broadcasts",
    status_code=201,
    summary="Compose a broadcast (a draft)",
    responses=responses(403),
)
def create(body: BroadcastCreate, staff: CurrentStaff, db: DbDep, now: NowDep) -> BroadcastPublic:
    with staff_write(db, staff, now) as tx:
        segment = _check_scope(tx.conn, staff, body.segment)
        try:
            record = domain.create(
                tx.conn,
                title=body.title,
                texts=_texts(body.texts),
                segment=segment,
                created_by=staff.id,
                now=now,
            )
        except ValueError as exc:
            raise ProblemError(422, str(exc)) from None
        tx.audit("create", "broadcast", record.id, None, _snapshot(record))
    return to_public(record)


@router.post(
    "/broadcasts/count",
    summary="Live count of a segment's audience",
    responses=responses(403),
)
def count_audience(segment: Segment, staff: CurrentStaff, db: DbDep) -> AudienceCount:
    with read(db) as conn:
        found = domain.count(conn, _check_scope(conn, staff, segment))
    return AudienceCount(
        total=found.total,
        reachable=found.reachable,
        opted_out=found.opted_out,
        unreachable=found.unreachable,
    )


@router.get("/broadcasts/{broadcast_id}", summary="One broadcast", responses=responses(404))
def get_one(broadcast_id: IdPath, staff: CurrentStaff, db: DbDep) -> BroadcastPublic:
    with read(db) as conn:
        return to_public(_visible(conn, staff, broadcast_id))


@router.patch(
    "/broadcasts/{broadcast_id}",
    summary="Change a draft",
    responses=responses(403, 404, 409),
)
def update(
    broadcast_id: IdPath, body: BroadcastUpdate, staff: CurrentStaff, db: DbDep, now: NowDep
) -> BroadcastPublic:
    with staff_write(db, staff, now) as tx:
        _visible(tx.conn, staff, broadcast_id)
        segment = None if body.segment is None else _check_scope(tx.conn, staff, body.segment)
        try:
            before, after = domain.update_draft(
                tx.conn,
                broadcast_id,
                title=body.title,
                texts=_texts(body.texts) if body.texts is not None else None,
                segment=segment,
            )
        except domain.WrongStatus as exc:
            raise _wrong_status(exc) from None
        except ValueError as exc:
            raise ProblemError(422, str(exc)) from None
        tx.audit("update", "broadcast", broadcast_id, _snapshot(before), _snapshot(after))
    return to_public(after)


@router.post(
    "/broadcasts/{broadcast_id}/send",
    summary="Send a draft now, or schedule it (`send_at`)",
    description="The broadcast becomes `scheduled`; the worker's scheduler fans it out to the "
    "outbox when `send_at` has come (within seconds for now). The audience is resolved then.",
    responses=responses(403, 404, 409),
)
def send(
    broadcast_id: IdPath,
    staff: CurrentStaff,
    db: DbDep,
    now: NowDep,
    body: SendBody | None = None,
) -> BroadcastPublic:
    with staff_write(db, staff, now) as tx:
        before = _visible(tx.conn, staff, broadcast_id)
        # The posts an agent had may have changed since the draft was written.
        stored = domain.segment_of(before)
        segment = _check_scope(tx.conn, staff, stored)
        try:
            if segment != stored:  # a draft written before criteria were scoped
                domain.update_draft(tx.conn, broadcast_id, segment=segment)
            after = domain.schedule(tx.conn, broadcast_id, body.send_at if body else None, now)
        except domain.WrongStatus as exc:
            raise _wrong_status(exc) from None
        tx.audit("schedule", "broadcast", broadcast_id, _snapshot(before), _snapshot(after))
    return to_public(after)


@router.post(
    "/broadcasts/{broadcast_id}/cancel",
    summary="Cancel: stop every message not sent yet",
    responses=responses(404, 409),
)
def cancel(broadcast_id: IdPath, staff: CurrentStaff, db: DbDep, now: NowDep) -> BroadcastPublic:
    with staff_write(db, staff, now) as tx:
        before = _visible(tx.conn, staff, broadcast_id)
        try:
            after, stopped = domain.cancel(tx.conn, broadcast_id, now)
        except domain.WrongStatus as exc:
            raise _wrong_status(exc) from None
        tx.audit(
            "cancel",
            "broadcast",
            broadcast_id,
            _snapshot(before),
            {**_snapshot(after), "messages_cancelled": stopped},
        )
    return to_public(after)


@router.post(
    "/broadcasts/{broadcast_id}/duplicate",
    status_code=201,
    summary="Copy a broadcast as a new draft",
    responses=responses(403, 404),
)
def duplicate(broadcast_id: IdPath, staff: CurrentStaff, db: DbDep, now: NowDep) -> BroadcastPublic:
    with staff_write(db, staff, now) as tx:
        source = _visible(tx.conn, staff, broadcast_id)
        _check_scope(tx.conn, staff, domain.segment_of(source))
        record = domain.duplicate(tx.conn, broadcast_id, created_by=staff.id, now=now)
        tx.audit("create", "broadcast", record.id, None, {**_snapshot(record), "from": source.id})
    return to_public(record)


@router.get(
    "/broadcasts/{broadcast_id}/stats",
    summary="Progress and statistics: queued, sent, delivered, read, failed, skipped by reason",
    responses=responses(404),
)
def stats(broadcast_id: IdPath, staff: CurrentStaff, db: DbDep) -> BroadcastStats:
    with read(db) as conn:
        _visible(conn, staff, broadcast_id)
        found = domain.stats(conn, broadcast_id)
    return BroadcastStats(**{**found.as_dict(), "status": BroadcastStatus(found.status)})
