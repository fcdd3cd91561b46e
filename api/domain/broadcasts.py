"""Broadcasts: announcements to whole communities, written to the outbox exactly once.

Compose. A broadcast has a title, a text per language (French required: every citizen gets
their language, else French) and an audience, the `Segment`. The criteria of a segment are
AND-ed; the values of one criterion are OR-ed; an empty segment is everybody (admins only):

    {"posts": ["ABJ", "BKE"],            # citizens who belong to these posts (below)
     "countries": ["CI"],                # country of their phone number
     "languages": ["fr", "mos"],         # their language (none chosen yet = fr)
     "channels": ["whatsapp"],           # reach them on these channels only
     "appointment": {"start": "2026-12-11", "end": "2026-12-11", "posts": ["ABJ"]},
     "request": {"statuses": ["ready"], "posts": ["ABJ"]}}

A citizen belongs to the posts where they have booked (any appointment, even a cancelled one)
or have a request linked to them; one with neither belongs to the posts of their phone
number's country (DESIGN.md; `api.domain.membership`). An agent's criteria are scoped to the
posts their segment names (`check_scope`). `appointment` matches an appointment
that is not cancelled and starts between `start` 00:00 and `end` 24:00 UTC (consulates open
in daytime between UTC-5 and UTC+1, so a UTC day is the local day). The audience is the
citizens, not erased, who have an identity on one of the segment's channels (WhatsApp and
Telegram by default; the simulator never receives announcements).

Deliver (in api.domain.broadcast_delivery). `schedule` (or send now = schedule at now) moves a
draft to `scheduled`; the job `due_broadcasts_job` claims due broadcasts with one conditional
UPDATE (scheduled → sending), so a second clock does no harm, and runs `fan_out`. Fan-out
resolves the audience at send time and streams it in keyset-paginated batches by citizen id:
each batch is one transaction that locks the broadcast row, reads its `cursor`, selects the ids
of the next `batch` citizens after it, copies them into the outbox with one `INSERT … SELECT …
ON CONFLICT DO NOTHING` over that id range (the rows never travel through Python; the dedupe
key `broadcast:<id>:citizen:<cid>` is the exactly-once backstop) and moves the cursor. A crash
loses at most the batch in flight, which nobody saw; a rerun, or two fan-outs at once, continue
from the cursor. When a batch comes back short, the broadcast is `sent` (all of its messages
are in the outbox; `stats` tells how far delivery is).

Each citizen gets one row, on their last-used reachable channel (the identity with the latest
`last_inbound_at` that is not marked unreachable, among the segment's channels). Citizens who
cannot receive it get a row too, with status `skipped` and a `skip_reason`, so that `stats`,
one GROUP BY over the outbox, counts everything: `opted_out` (STOP), `unreachable` (every
identity on these channels blocked the bot or opted out at the carrier), `outside_window` (the
sender's, at send time: WhatsApp's 24-hour rule with no template configured). The broadcast
row keeps the fan-out's own counts (`queued`, `skipped` by reason) for a quick look.

The rows are bulk-lane (`Lane.bulk`) outbox messages of kind `broadcast`: the sender serves
replies and notifications first, so an announcement never delays an answer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal, cast

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from api.domain import membership
from api.models import (
    Appointment,
    AppointmentStatus,
    Broadcast,
    BroadcastStatus,
    ChannelIdentity,
    Citizen,
    ConsularRequest,
    OutboxMessage,
    OutboxStatus,
    Post,
    RequestStatus,
)
from flows.engine import LANGUAGES

log = logging.getLogger(__name__)

DEFAULT_LANGUAGE = "fr"
CHANNELS = ("whatsapp", "telegram")  # the channels announcements go out on
TEXT_MAX = 1600  # WhatsApp's limit for one message (Telegram takes 4096)
TITLE_MAX = 200
EARLIEST, LATEST = date(2000, 1, 1), date(2100, 12, 31)  # the dates a segment may name


def _table(model: type[SQLModel]) -> sa.Table:
    return cast(sa.Table, sa.inspect(model).local_table)


_broadcast = _table(Broadcast)
_outbox = _table(OutboxMessage)
_citizen = _table(Citizen)
_identity = _table(ChannelIdentity)
_appointment = _table(Appointment)
_request = _table(ConsularRequest)
_post = _table(Post)


# --- errors -----------------------------------------------------------------------------------


class BroadcastError(Exception):
    """Base of what the routes turn into problem+json."""


class BroadcastNotFound(BroadcastError, LookupError):
    pass


class WrongStatus(BroadcastError):
    """The broadcast's status does not allow the operation (409)."""

    def __init__(self, current: str, operation: str) -> None:
        super().__init__(f"a broadcast that is {current} cannot be {operation}")
        self.current = current


class UnknownPosts(BroadcastError, ValueError):
    def __init__(self, codes: Iterable[str]) -> None:
        self.codes = sorted(codes)
        super().__init__(f"unknown post: {', '.join(self.codes)}")


class OutsideStaffPosts(BroadcastError, PermissionError):
    """An agent named a post that is not theirs, or no post at all (403)."""


# --- the segment -------------------------------------------------------------------------------

PostCode = Annotated[str, StringConstraints(strip_whitespace=True, to_upper=True, max_length=8)]
Country = Annotated[
    str, StringConstraints(strip_whitespace=True, to_upper=True, pattern=r"^[A-Za-z]{2}$")
]
Language = Literal["fr", "mos", "dyu", "ff", "en"]
Channel = Literal["whatsapp", "telegram"]


class AppointmentCriterion(BaseModel):
    """Has an appointment (not cancelled) from `start` 00:00 to `end` 24:00 UTC, inclusive."""

    model_config = ConfigDict(extra="forbid")
    start: date = Field(ge=EARLIEST, le=LATEST, examples=["2026-12-11"])
    end: date = Field(ge=EARLIEST, le=LATEST, examples=["2026-12-11"])
    posts: list[PostCode] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _ordered(self) -> AppointmentCriterion:
        if self.end < self.start:
            raise ValueError("end is before start")
        return self


class RequestCriterion(BaseModel):
    """Has a request in one of these statuses (optionally at these posts)."""

    model_config = ConfigDict(extra="forbid")
    statuses: list[RequestStatus] = Field(min_length=1, max_length=5)
    posts: list[PostCode] = Field(default_factory=list, max_length=50)


class Segment(BaseModel):
    """The audience of a broadcast (see the module's docstring)."""

    model_config = ConfigDict(extra="forbid")
    posts: list[PostCode] = Field(default_factory=list, max_length=50)
    countries: list[Country] = Field(default_factory=list, max_length=250)
    languages: list[Language] = Field(default_factory=list, max_length=5)
    channels: list[Channel] = Field(default_factory=list, max_length=2)
    appointment: AppointmentCriterion | None = None
    request: RequestCriterion | None = None

    def named_posts(self) -> set[str]:
        codes = set(self.posts)
        if self.appointment is not None:
            codes |= set(self.appointment.posts)
        if self.request is not None:
            codes |= set(self.request.posts)
        return codes

    def reach_channels(self) -> tuple[str, ...]:
        return tuple(c for c in CHANNELS if c in self.channels) if self.channels else CHANNELS

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_defaults=True)


def check_texts(texts: dict[str, str]) -> dict[str, str]:
    """Texts per language, stripped; French required, known languages only."""
    cleaned = {lang: text.strip() for lang, text in texts.items() if text and text.strip()}
    unknown = sorted(set(cleaned) - set(LANGUAGES))
    if unknown:
        raise ValueError(f"unknown language: {', '.join(unknown)}")
    if DEFAULT_LANGUAGE not in cleaned:
        raise ValueError("the French text (fr) is required")
    too_long = sorted(lang for lang, text in cleaned.items() if len(text) > TEXT_MAX)
    if too_long:
        raise ValueError(f"text longer than {TEXT_MAX} characters: {', '.join(too_long)}")
    return cleaned


def check_posts(conn: Connection, segment: Segment) -> dict[str, int]:
    """Ids of the posts the segment names; UnknownPosts if one does not exist."""
    codes = segment.named_posts()
    if not codes:
        return {}
    rows = conn.execute(sa.select(_post.c.code, _post.c.id).where(_post.c.code.in_(codes)))
    found = {code: int(id_) for code, id_ in rows}
    missing = codes - set(found)
    if missing:
        raise UnknownPosts(missing)
    return found


def check_scope(conn: Connection, segment: Segment, post_ids: frozenset[int] | None) -> Segment:
    """The segment as its author may use it, or raise (None = an admin: any segment as is).

    An agent's segment must name its posts (`posts` not empty), and every post it names —
    in `posts`, `appointment.posts` and `request.posts` — must be one of the agent's. Every
    criterion is then scoped to those posts: an appointment or request criterion that names
    no post means one at the segment's posts, so that an agent never counts or reaches what
    another post holds."""
    found = check_posts(conn, segment)
    if post_ids is None:
        return segment
    if not segment.posts:
        raise OutsideStaffPosts("an agent's segment must name their posts")
    outside = sorted(code for code, id_ in found.items() if id_ not in post_ids)
    if outside:
        raise OutsideStaffPosts(f"not your post: {', '.join(outside)}")
    return scoped(segment)


def scoped(segment: Segment) -> Segment:
    """The segment with its appointment and request criteria at its posts when they name none."""
    changes: dict[str, Any] = {}
    if segment.appointment is not None and not segment.appointment.posts:
        changes["appointment"] = segment.appointment.model_copy(
            update={"posts": list(segment.posts)}
        )
    if segment.request is not None and not segment.request.posts:
        changes["request"] = segment.request.model_copy(update={"posts": list(segment.posts)})
    return segment.model_copy(update=changes) if changes else segment


# --- the audience in SQL -----------------------------------------------------------------------


def _conditions(citizen: sa.FromClause, segment: Segment) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = [citizen.c.erased_at.is_(None)]
    if segment.posts:
        where.append(membership.belongs_to(citizen, membership.post_ids_of(segment.posts)))
    if segment.countries:
        where.append(citizen.c.country.in_(segment.countries))
    if segment.languages:
        where.append(sa.func.coalesce(citizen.c.lang, DEFAULT_LANGUAGE).in_(segment.languages))
    if segment.appointment is not None:
        crit = segment.appointment
        starts = datetime.combine(crit.start, time(0), tzinfo=UTC)
        ends = datetime.combine(crit.end + timedelta(days=1), time(0), tzinfo=UTC)
        query = sa.select(_appointment.c.id).where(
            _appointment.c.citizen_id == citizen.c.id,
            _appointment.c.status != AppointmentStatus.cancelled.value,
            _appointment.c.starts_at >= starts,
            _appointment.c.starts_at < ends,
        )
        if crit.posts:
            query = query.where(_appointment.c.post_id.in_(membership.post_ids_of(crit.posts)))
        where.append(query.exists())
    if segment.request is not None:
        statuses = [s.value for s in segment.request.statuses]
        query = sa.select(_request.c.id).where(
            membership.requests_of(citizen), _request.c.status.in_(statuses)
        )
        if segment.request.posts:
            query = query.where(
                _request.c.post_id.in_(membership.post_ids_of(segment.request.posts))
            )
        where.append(query.exists())
    return where


def _audience(segment: Segment, *columns: Any) -> sa.Select[Any]:
    """Citizens of the segment joined to the one identity that would carry the message: the
    reachable one used last, else (all unreachable) the one used last, among the channels."""
    citizen = _citizen
    candidate = _identity.alias("candidate")
    chosen = (
        sa.select(candidate.c.id)
        .where(candidate.c.citizen_id == citizen.c.id)
        .where(candidate.c.channel.in_(segment.reach_channels()))
        .order_by(
            sa.case((candidate.c.unreachable_at.is_(None), 0), else_=1),
            candidate.c.last_inbound_at.desc().nulls_last(),
            candidate.c.id.desc(),
        )
        .limit(1)
        .correlate(citizen)
        .scalar_subquery()
    )
    return (
        sa.select(*columns)
        .select_from(citizen.join(_identity, _identity.c.id == chosen))
        .where(*_conditions(citizen, segment))
    )


@dataclass(frozen=True)
class AudienceCount:
    total: int  # citizens in the segment
    reachable: int  # who would get it
    opted_out: int
    unreachable: int


def count(conn: Connection, segment: Segment) -> AudienceCount:
    """The live count of a segment: one query (on both stores)."""
    opted = _citizen.c.opted_out.is_(True)
    unreachable = sa.and_(~opted, _identity.c.unreachable_at.is_not(None))
    query = _audience(
        segment,
        sa.func.count().label("total"),
        sa.func.coalesce(sa.func.sum(sa.case((opted, 1), else_=0)), 0).label("opted_out"),
        sa.func.coalesce(sa.func.sum(sa.case((unreachable, 1), else_=0)), 0).label("unreachable"),
    )
    row = conn.execute(query).one()
    total, opted_out, unreach = int(row.total), int(row.opted_out), int(row.unreachable)
    return AudienceCount(
        total=total,
        reachable=total - opted_out - unreach,
        opted_out=opted_out,
        unreachable=unreach,
    )


# --- the broadcast row -------------------------------------------------------------------------


@dataclass(frozen=True)
class BroadcastRecord:
    id: int
    title: str
    texts: dict[str, str]
    segment: dict[str, Any]
    status: str
    send_at: datetime | None
    created_by: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    queued: int
    skipped: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_RECORD_COLUMNS = (
    _broadcast.c.id,
    _broadcast.c.title,
    _broadcast.c.texts,
    _broadcast.c.segment,
    _broadcast.c.status,
    _broadcast.c.send_at,
    _broadcast.c.created_by,
    _broadcast.c.created_at,
    _broadcast.c.started_at,
    _broadcast.c.finished_at,
    _broadcast.c.queued,
    _broadcast.c.skipped,
)


def _record(row: Any) -> BroadcastRecord:
    return BroadcastRecord(
        id=row.id,
        title=row.title,
        texts=dict(row.texts),
        segment=dict(row.segment),
        status=row.status,
        send_at=row.send_at,
        created_by=row.created_by,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        queued=row.queued,
        skipped=dict(row.skipped or {}),
    )


def create(
    conn: Connection,
    *,
    title: str,
    texts: dict[str, str],
    segment: Segment,
    created_by: int | None,
    now: datetime,
) -> BroadcastRecord:
    """A new draft. Raises ValueError (texts, title) or UnknownPosts."""
    title = " ".join(title.split())[:TITLE_MAX]
    if not title:
        raise ValueError("the title is empty")
    cleaned = check_texts(texts)
    check_posts(conn, segment)
    new_id = conn.execute(
        sa.insert(_broadcast)
        .values(
            title=title,
            texts=cleaned,
            segment=segment.to_json(),
            status=BroadcastStatus.draft.value,
            created_by=created_by,
            created_at=now,
            cursor=0,
            queued=0,
            skipped={},
        )
        .returning(_broadcast.c.id)
    ).scalar_one()
    return get(conn, int(new_id))


def find(conn: Connection, broadcast_id: int) -> BroadcastRecord | None:
    row = conn.execute(sa.select(*_RECORD_COLUMNS).where(_broadcast.c.id == broadcast_id)).first()
    return None if row is None else _record(row)


def get(conn: Connection, broadcast_id: int) -> BroadcastRecord:
    found = find(conn, broadcast_id)
    if found is None:
        raise BroadcastNotFound(f"no broadcast {broadcast_id}")
    return found


def segment_of(record: BroadcastRecord) -> Segment:
    return Segment.model_validate(record.segment)


def within(record: BroadcastRecord, post_codes: frozenset[str] | None) -> bool:
    """May staff with these posts (None = admin) see this broadcast? Its segment must name
    posts, all theirs."""
    if post_codes is None:
        return True
    segment = segment_of(record)
    return bool(segment.posts) and segment.named_posts() <= post_codes


def list_broadcasts(
    conn: Connection,
    *,
    post_codes: frozenset[str] | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[BroadcastRecord], int]:
    """Newest first, with the total; agents (post_codes) see those within their posts.

    Broadcasts number in the hundreds, not millions: the segment is filtered here rather than
    in SQL (it is JSON, which the two stores query differently)."""
    query = sa.select(*_RECORD_COLUMNS).order_by(_broadcast.c.id.desc())
    if status is not None:
        query = query.where(_broadcast.c.status == status)
    records = [_record(row) for row in conn.execute(query)]
    visible = [r for r in records if within(r, post_codes)]
    return visible[offset : offset + limit], len(visible)


def update_draft(
    conn: Connection,
    broadcast_id: int,
    *,
    title: str | None = None,
    texts: dict[str, str] | None = None,
    segment: Segment | None = None,
) -> tuple[BroadcastRecord, BroadcastRecord]:
    """Change a draft; (before, after). WrongStatus once it is scheduled or later."""
    before = get(conn, broadcast_id)
    values: dict[str, Any] = {}
    if title is not None:
        values["title"] = " ".join(title.split())[:TITLE_MAX]
        if not values["title"]:
            raise ValueError("the title is empty")
    if texts is not None:
        values["texts"] = check_texts(texts)
    if segment is not None:
        check_posts(conn, segment)
        values["segment"] = segment.to_json()
    if values:
        done = conn.execute(
            sa.update(_broadcast)
            .where(_broadcast.c.id == broadcast_id)
            .where(_broadcast.c.status == BroadcastStatus.draft.value)
            .values(**values)
        )
        if done.rowcount != 1:
            raise WrongStatus(get(conn, broadcast_id).status, "edited")
    elif before.status != BroadcastStatus.draft.value:
        raise WrongStatus(before.status, "edited")
    return before, get(conn, broadcast_id)


def schedule(
    conn: Connection, broadcast_id: int, send_at: datetime | None, now: datetime
) -> BroadcastRecord:
    """Draft → scheduled, at `send_at` (None or past: now). The job sends it when due."""
    when = now if send_at is None or send_at < now else send_at
    done = conn.execute(
        sa.update(_broadcast)
        .where(_broadcast.c.id == broadcast_id)
        .where(_broadcast.c.status == BroadcastStatus.draft.value)
        .values(status=BroadcastStatus.scheduled.value, send_at=when)
    )
    if done.rowcount != 1:
        raise WrongStatus(get(conn, broadcast_id).status, "sent")
    return get(conn, broadcast_id)


def cancel(conn: Connection, broadcast_id: int, now: datetime) -> tuple[BroadcastRecord, int]:
    """Stop what is not sent yet: pending outbox rows → cancelled, the broadcast cancelled.

    Idempotent on a cancelled broadcast. A `sent` broadcast whose messages have all left
    cannot be cancelled any more (WrongStatus). Rows a worker has already claimed (`sending`)
    go out: they are in the provider's hands. Returns the broadcast and how many rows stopped.
    """
    current = get(conn, broadcast_id)
    if current.status == BroadcastStatus.cancelled.value:
        return current, 0
    # Lock the row (PostgreSQL; SQLite holds the write lock): fan-out batches queue behind.
    conn.execute(
        sa.select(_broadcast.c.id).where(_broadcast.c.id == broadcast_id).with_for_update()
    )
    stopped = conn.execute(
        sa.update(_outbox)
        .where(_outbox.c.broadcast_id == broadcast_id)
        .where(_outbox.c.status == OutboxStatus.pending.value)
        .values(status=OutboxStatus.cancelled.value)
    ).rowcount
    allowed = [
        BroadcastStatus.draft.value,
        BroadcastStatus.scheduled.value,
        BroadcastStatus.sending.value,
    ]
    if stopped:
        allowed.append(BroadcastStatus.sent.value)
    done = conn.execute(
        sa.update(_broadcast)
        .where(_broadcast.c.id == broadcast_id)
        .where(_broadcast.c.status.in_(allowed))
        .values(status=BroadcastStatus.cancelled.value, finished_at=now)
    )
    if done.rowcount != 1:
        raise WrongStatus(get(conn, broadcast_id).status, "cancelled")
    return get(conn, broadcast_id), stopped


def duplicate(
    conn: Connection, broadcast_id: int, *, created_by: int | None, now: datetime
) -> BroadcastRecord:
    """A new draft with the same title, texts and segment."""
    source = get(conn, broadcast_id)
    return create(
        conn,
        title=source.title,
        texts=source.texts,
        segment=segment_of(source),
        created_by=created_by,
        now=now,
    )
