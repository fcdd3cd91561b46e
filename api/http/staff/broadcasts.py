"""Broadcasts: compose an announcement, count its audience live, send it now or later, follow
its statistics, cancel what is not sent yet, duplicate it as a new draft.

Access. An administrator may address anyone. An agent's segment must name posts, all of them
theirs (in `posts`, `appointment.posts`, `request.posts`), else 403; an agent sees only the
broadcasts whose segment stays within their posts (others answer 404, like data that does not
exist). Every change is audited.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AfterValidator, BaseModel, Field, model_validator

from api.db import read
from api.domain import broadcast_desk as desk
from api.domain import broadcasts as domain
from api.domain.broadcasts import (
    TEXT_MAX,
    BroadcastRecord,
    Language,
    Segment,
)
from api.domain.errors import NotVisible, Refused
from api.http.staff.deps import (
    CurrentStaff,
    DbDep,
    NowDep,
    Page,
    PageDep,
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


_REFUSED_STATUS = {"outside_posts": 403, "unknown_posts": 422, "invalid": 422}


def _problem(exc: NotVisible | Refused) -> ProblemError:
    """What the use cases of api.domain.broadcast_desk raise, as a problem."""
    if isinstance(exc, NotVisible):
        return ProblemError(404, "no such broadcast")
    return ProblemError(_REFUSED_STATUS.get(exc.code, 409), exc.detail)


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
            post_codes=desk.post_codes(conn, staff),
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
    try:
        with staff_write(db, staff, now) as tx:
            record = desk.compose(
                tx, title=body.title, texts=_texts(body.texts), segment=body.segment
            )
    except (NotVisible, Refused) as exc:
        raise _problem(exc) from None
    return to_public(record)


@router.post(
    "/broadcasts/count",
    summary="Live count of a segment's audience",
    responses=responses(403),
)
def count_audience(segment: Segment, staff: CurrentStaff, db: DbDep) -> AudienceCount:
    try:
        with read(db) as conn:
            found = desk.audience(conn, staff, segment)
    except Refused as exc:
        raise _problem(exc) from None
    return AudienceCount(
        total=found.total,
        reachable=found.reachable,
        opted_out=found.opted_out,
        unreachable=found.unreachable,
    )


@router.get("/broadcasts/{broadcast_id}", summary="One broadcast", responses=responses(404))
def get_one(broadcast_id: IdPath, staff: CurrentStaff, db: DbDep) -> BroadcastPublic:
    try:
        with read(db) as conn:
            return to_public(desk.visible(conn, staff, broadcast_id))
    except NotVisible as exc:
        raise _problem(exc) from None


@router.patch(
    "/broadcasts/{broadcast_id}",
    summary="Change a draft",
    responses=responses(403, 404, 409),
)
def update(
    broadcast_id: IdPath, body: BroadcastUpdate, staff: CurrentStaff, db: DbDep, now: NowDep
) -> BroadcastPublic:
    try:
        with staff_write(db, staff, now) as tx:
            after = desk.edit(
                tx,
                broadcast_id,
                title=body.title,
                texts=_texts(body.texts) if body.texts is not None else None,
                segment=body.segment,
            )
    except (NotVisible, Refused) as exc:
        raise _problem(exc) from None
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
    try:
        with staff_write(db, staff, now) as tx:
            after = desk.send(tx, broadcast_id, body.send_at if body else None)
    except (NotVisible, Refused) as exc:
        raise _problem(exc) from None
    return to_public(after)


@router.post(
    "/broadcasts/{broadcast_id}/cancel",
    summary="Cancel: stop every message not sent yet",
    responses=responses(404, 409),
)
def cancel(broadcast_id: IdPath, staff: CurrentStaff, db: DbDep, now: NowDep) -> BroadcastPublic:
    try:
        with staff_write(db, staff, now) as tx:
            after, _ = desk.cancel(tx, broadcast_id)
    except (NotVisible, Refused) as exc:
        raise _problem(exc) from None
    return to_public(after)


@router.post(
    "/broadcasts/{broadcast_id}/duplicate",
    status_code=201,
    summary="Copy a broadcast as a new draft",
    responses=responses(403, 404),
)
def duplicate(broadcast_id: IdPath, staff: CurrentStaff, db: DbDep, now: NowDep) -> BroadcastPublic:
    try:
        with staff_write(db, staff, now) as tx:
            record = desk.duplicate(tx, broadcast_id)
    except (NotVisible, Refused) as exc:
        raise _problem(exc) from None
    return to_public(record)


@router.get(
    "/broadcasts/{broadcast_id}/stats",
    summary="Progress and statistics: queued, sent, delivered, read, failed, skipped by reason",
    responses=responses(404),
)
def stats(broadcast_id: IdPath, staff: CurrentStaff, db: DbDep) -> BroadcastStats:
    try:
        with read(db) as conn:
            found = desk.progress(conn, staff, broadcast_id)
    except NotVisible as exc:
        raise _problem(exc) from None
    return BroadcastStats(**{**found.as_dict(), "status": BroadcastStatus(found.status)})
