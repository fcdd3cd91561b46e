"""Broadcasts at the desk: what a staff member may see of them and do to them.

The one visibility rule (`api.domain.broadcasts.within`): an agent sees and acts on a
broadcast whose whole segment stays within their posts; an administrator on all. An agent's
segment is scoped to their posts (`api.domain.broadcasts.check_scope`). Each change is one
staff write (`api.domain.audit.staff_write`) that audits itself; reads take a connection.

Raises `NotVisible("broadcast")` for another post's broadcast or one that does not exist, and
`Refused` with a stable `code` for the rest: `outside_posts`, `unknown_posts`, `invalid`
(title or texts), `wrong_status`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from api.domain import broadcast_delivery, broadcasts
from api.domain.audit import StaffWrite
from api.domain.broadcast_delivery import Stats
from api.domain.broadcasts import AudienceCount, BroadcastRecord, Segment
from api.domain.errors import Refused, hidden
from api.domain.staff import StaffPrincipal
from api.domain.tables import table
from api.models import Post

_post = table(Post)


def post_codes(conn: Connection, staff: StaffPrincipal) -> frozenset[str] | None:
    """The codes of an agent's posts; None for an administrator (every post)."""
    if staff.is_admin:
        return None
    codes = conn.execute(
        sa.select(_post.c.code).where(_post.c.id.in_(sorted(staff.post_ids)))
    ).scalars()
    return frozenset(codes)


def scope(conn: Connection, staff: StaffPrincipal, segment: Segment) -> Segment:
    """The segment as this staff member may use it (scoped to an agent's posts), or Refused."""
    try:
        return broadcasts.check_scope(conn, segment, None if staff.is_admin else staff.post_ids)
    except broadcasts.OutsideStaffPosts as exc:
        raise Refused("outside_posts", str(exc)) from None
    except broadcasts.UnknownPosts as exc:
        raise Refused("unknown_posts", str(exc), codes=", ".join(exc.codes)) from None


def visible(conn: Connection, staff: StaffPrincipal, broadcast_id: int) -> BroadcastRecord:
    record = broadcasts.find(conn, broadcast_id)
    if record is None or not broadcasts.within(record, post_codes(conn, staff)):
        raise hidden("broadcast", exists=record is not None)
    return record


def listing(conn: Connection, staff: StaffPrincipal, limit: int = 100) -> list[BroadcastRecord]:
    rows, _ = broadcasts.list_broadcasts(
        conn, post_codes=post_codes(conn, staff), limit=limit, offset=0
    )
    return rows


def audience(conn: Connection, staff: StaffPrincipal, segment: Segment) -> AudienceCount:
    """The live count of a segment, as its author may address it."""
    return broadcasts.count(conn, scope(conn, staff, segment))


def progress(conn: Connection, staff: StaffPrincipal, broadcast_id: int) -> Stats:
    visible(conn, staff, broadcast_id)
    return broadcast_delivery.stats(conn, broadcast_id)


def snapshot(record: BroadcastRecord) -> dict[str, Any]:
    return {k: v for k, v in record.as_dict().items() if k not in {"created_by", "created_at"}}


def _wrong_status(exc: broadcasts.WrongStatus) -> Refused:
    return Refused("wrong_status", str(exc), status=exc.current)


def compose(
    tx: StaffWrite, *, title: str, texts: dict[str, str], segment: Segment
) -> BroadcastRecord:
    """A new draft, audited."""
    scoped = scope(tx.conn, tx.staff, segment)
    try:
        record = broadcasts.create(
            tx.conn, title=title, texts=texts, segment=scoped, created_by=tx.staff.id, now=tx.now
        )
    except ValueError as exc:
        raise Refused("invalid", str(exc)) from None
    tx.audit("create", "broadcast", record.id, None, snapshot(record))
    return record


def edit(
    tx: StaffWrite,
    broadcast_id: int,
    *,
    title: str | None = None,
    texts: dict[str, str] | None = None,
    segment: Segment | None = None,
) -> BroadcastRecord:
    """Change a draft (what is None stays), audited."""
    visible(tx.conn, tx.staff, broadcast_id)
    scoped = None if segment is None else scope(tx.conn, tx.staff, segment)
    try:
        before, after = broadcasts.update_draft(
            tx.conn, broadcast_id, title=title, texts=texts, segment=scoped
        )
    except broadcasts.WrongStatus as exc:
        raise _wrong_status(exc) from None
    except ValueError as exc:
        raise Refused("invalid", str(exc)) from None
    tx.audit("update", "broadcast", broadcast_id, snapshot(before), snapshot(after))
    return after


def send(tx: StaffWrite, broadcast_id: int, send_at: datetime | None) -> BroadcastRecord:
    """Draft → scheduled at `send_at` (None or past: now), with the segment scoped again (an
    agent's posts may have changed since the draft was written)."""
    before = visible(tx.conn, tx.staff, broadcast_id)
    stored = broadcasts.segment_of(before)
    segment = scope(tx.conn, tx.staff, stored)
    try:
        if segment != stored:
            broadcasts.update_draft(tx.conn, broadcast_id, segment=segment)
        after = broadcasts.schedule(tx.conn, broadcast_id, send_at, tx.now)
    except broadcasts.WrongStatus as exc:
        raise _wrong_status(exc) from None
    tx.audit("schedule", "broadcast", broadcast_id, snapshot(before), snapshot(after))
    return after


def cancel(tx: StaffWrite, broadcast_id: int) -> tuple[BroadcastRecord, int]:
    """Stop what is not sent yet; the broadcast and how many messages stopped."""
    before = visible(tx.conn, tx.staff, broadcast_id)
    try:
        after, stopped = broadcasts.cancel(tx.conn, broadcast_id, tx.now)
    except broadcasts.WrongStatus as exc:
        raise _wrong_status(exc) from None
    tx.audit(
        "cancel",
        "broadcast",
        broadcast_id,
        snapshot(before),
        {**snapshot(after), "messages_cancelled": stopped},
    )
    return after, stopped


def duplicate(tx: StaffWrite, broadcast_id: int) -> BroadcastRecord:
    """A new draft with the same title, texts and segment."""
    source = visible(tx.conn, tx.staff, broadcast_id)
    scope(tx.conn, tx.staff, broadcasts.segment_of(source))
    record = broadcasts.duplicate(tx.conn, broadcast_id, created_by=tx.staff.id, now=tx.now)
    tx.audit("create", "broadcast", record.id, None, {**snapshot(record), "from": source.id})
    return record
