"""The desk's dashboard: the figures of one post, or of several (an agent's, or all for an
administrator), read in one connection.

- appointments per day (the last 30 days and the next 14), by service, not cancelled; days
  are UTC days, which are the posts' own (consulates sit between UTC-5 and UTC+1);
- the no-show rate of the last 30 days: absent / (present + absent);
- requests by status, and the median days from received to ready (first `ready` event);
- broadcast reach: per broadcast sent within the posts, delivered and read as a share of
  its audience;
- conversations per day (last 30), by channel and language, of the citizens who belong to
  the posts (api.domain.membership).

Each figure is a `Table` (a title, column names, rows) so that a page can draw it and a CSV
download can write it, the same numbers both ways.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from api.domain import broadcast_delivery, broadcasts, desk_conversations, membership
from api.domain.tables import table
from api.models import (
    Appointment,
    Citizen,
    ConsularRequest,
    ConversationStart,
    Post,
    RequestEvent,
    RequestStatus,
    Service,
)

PAST_DAYS = 30
NEXT_DAYS = 14

_appointment = table(Appointment)
_service = table(Service)
_request = table(ConsularRequest)
_event = table(RequestEvent)
_post = table(Post)
_citizen = table(Citizen)
_conversation = table(ConversationStart)


@dataclass(frozen=True)
class Table:
    """One figure: what it is, its columns, its rows (the first column names the row)."""

    key: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True)
class Dashboard:
    first_day: date
    today: date
    last_day: date
    appointments: Table  # day, then one column per service
    no_show: Table  # one row: absent, present, rate %
    requests: Table  # status, count
    median_days_to_ready: float | None
    reach: Table  # title, audience, delivered, read, delivered %, read %
    conversations: Table  # day, then one column per channel/language
    desk: Table  # post, conversations waiting now, median first response (minutes, 30 days)

    def tables(self) -> dict[str, Table]:
        return {
            t.key: t
            for t in (
                self.appointments,
                self.no_show,
                self.requests,
                self.reach,
                self.conversations,
                self.desk,
            )
        }


def _start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _in_posts(column: sa.ColumnElement[Any], post_ids: Collection[int] | None) -> Any:
    return sa.true() if post_ids is None else column.in_(sorted(post_ids))


def appointments_per_day(
    conn: Connection, post_ids: Collection[int] | None, first: date, last: date
) -> Table:
    rows = conn.execute(
        sa.select(_appointment.c.starts_at, _service.c.code)
        .join(_service, _service.c.id == _appointment.c.service_id)
        .where(
            _in_posts(_appointment.c.post_id, post_ids),
            _appointment.c.status != "cancelled",
            _appointment.c.starts_at >= _start(first),
            _appointment.c.starts_at < _start(last + timedelta(days=1)),
        )
    ).all()
    per_day: dict[date, Counter[str]] = defaultdict(Counter)
    for starts_at, code in rows:
        per_day[starts_at.astimezone(UTC).date()][code] += 1
    services = sorted({code for _, code in rows})
    return Table(
        "appointments",
        ("day", *services),
        tuple(
            (day.isoformat(), *(per_day[day][s] for s in services)) for day in _days(first, last)
        ),
    )


def no_show_rate(
    conn: Connection, post_ids: Collection[int] | None, first: date, now: datetime
) -> Table:
    counts: dict[str, int] = dict(
        conn.execute(
            sa.select(_appointment.c.status, sa.func.count())
            .where(
                _in_posts(_appointment.c.post_id, post_ids),
                _appointment.c.status.in_(["attended", "no_show"]),
                _appointment.c.starts_at >= _start(first),
                _appointment.c.starts_at < now,
            )
            .group_by(_appointment.c.status)
        ).all()
    )
    absent, present = int(counts.get("no_show", 0)), int(counts.get("attended", 0))
    seen = absent + present
    rate = round(100 * absent / seen, 1) if seen else 0.0
    return Table("no_show", ("no_show", "attended", "rate_percent"), ((absent, present, rate),))


def requests_by_status(conn: Connection, post_ids: Collection[int] | None) -> Table:
    counts: dict[str, int] = dict(
        conn.execute(
            sa.select(_request.c.status, sa.func.count())
            .where(_in_posts(_request.c.post_id, post_ids))
            .group_by(_request.c.status)
        ).all()
    )
    return Table(
        "requests",
        ("status", "requests"),
        tuple((s.value, int(counts.get(s.value, 0))) for s in RequestStatus),
    )


def median_days_to_ready(conn: Connection, post_ids: Collection[int] | None) -> float | None:
    """From the request's creation (received) to its first `ready` event, in days."""
    ready = (
        sa.select(_event.c.request_id, sa.func.min(_event.c.at).label("ready_at"))
        .where(_event.c.status == RequestStatus.ready.value)
        .group_by(_event.c.request_id)
        .subquery()
    )
    rows = conn.execute(
        sa.select(_request.c.created_at, ready.c.ready_at)
        .join(ready, ready.c.request_id == _request.c.id)
        .where(_in_posts(_request.c.post_id, post_ids))
    ).all()
    spans = [(ready_at - created).total_seconds() / 86400 for created, ready_at in rows]
    return round(statistics.median(spans), 1) if spans else None


def broadcast_reach(conn: Connection, post_codes: frozenset[str] | None) -> Table:
    records, _ = broadcasts.list_broadcasts(conn, post_codes=post_codes, limit=20)
    rows = []
    for record in records:
        if record.status not in ("sent", "sending", "cancelled"):
            continue
        found = broadcast_delivery.stats(conn, record.id)
        if not found.audience:
            continue
        rows.append(
            (
                record.title,
                found.audience,
                found.delivered,
                found.read,
                round(100 * found.delivered / found.audience, 1),
                round(100 * found.read / found.audience, 1),
            )
        )
    return Table(
        "reach",
        ("broadcast", "audience", "delivered", "read", "delivered_percent", "read_percent"),
        tuple(rows),
    )


def conversations_per_day(
    conn: Connection, post_ids: Collection[int] | None, first: date, last: date
) -> Table:
    query = sa.select(
        _conversation.c.started_at, _conversation.c.channel, _conversation.c.lang
    ).where(
        _conversation.c.started_at >= _start(first),
        _conversation.c.started_at < _start(last + timedelta(days=1)),
    )
    if post_ids is not None:
        members = sa.select(_citizen.c.id).where(membership.belongs_to(_citizen, sorted(post_ids)))
        query = query.where(_conversation.c.citizen_id.in_(members))
    rows = conn.execute(query).all()
    per_day: dict[date, Counter[str]] = defaultdict(Counter)
    for started_at, channel, lang in rows:
        per_day[started_at.astimezone(UTC).date()][f"{channel}/{lang}"] += 1
    keys = sorted({f"{channel}/{lang}" for _, channel, lang in rows})
    return Table(
        "conversations",
        ("day", *keys),
        tuple((day.isoformat(), *(per_day[day][k] for k in keys)) for day in _days(first, last)),
    )


def dashboard(
    conn: Connection,
    post_ids: Collection[int] | None,
    post_codes: frozenset[str] | None,
    now: datetime,
) -> Dashboard:
    """The figures of these posts (None: every post)."""
    today = now.astimezone(UTC).date()
    first, last = today - timedelta(days=PAST_DAYS), today + timedelta(days=NEXT_DAYS)
    return Dashboard(
        first_day=first,
        today=today,
        last_day=last,
        appointments=appointments_per_day(conn, post_ids, first, last),
        no_show=no_show_rate(conn, post_ids, first, now),
        requests=requests_by_status(conn, post_ids),
        median_days_to_ready=median_days_to_ready(conn, post_ids),
        reach=broadcast_reach(conn, post_codes),
        conversations=conversations_per_day(conn, post_ids, first, today),
        desk=desk_numbers(conn, post_codes, now),
    )


def desk_numbers(conn: Connection, post_codes: frozenset[str] | None, now: datetime) -> Table:
    """The desk of menu 7, per post: conversations waiting for an agent now, and the median
    time to an agent's first answer over the last 30 days (api.domain.desk_conversations)."""
    rows = []
    for row in desk_conversations.numbers(conn, now):
        if post_codes is not None and row.post_code not in post_codes:
            continue
        median = row.median_first_response
        minutes = "" if median is None else round(median.total_seconds() / 60)
        rows.append((row.post_code, row.waiting, minutes))
    return Table("desk", ("post", "waiting", "first_response_minutes"), tuple(rows))
