"""Consular requests at the desk: what staff see of them and what they do to them.

Each use case is one staff write (`api.domain.audit.staff_write`): check that the request
(or the post) is the caller's to see, change it (api.domain.requests), tell the citizen and
audit the change, in one transaction. The staff API and the console only translate the
outcome: `NotVisible` is a 404, `Refused` a 409 or 422 (or a flash message), by its `code`.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from api.domain.audit import StaffWrite
from api.domain.errors import NotVisible, Refused, hidden
from api.domain.requests import (
    RequestRecord,
    RequestService,
    TransitionRefused,
    UnknownRequest,
    clean_reference,
    record_query,
    to_record,
)
from api.domain.staff import StaffPrincipal, post_filter
from api.domain.tables import table
from api.models import ConsularRequest, Post, RequestStatus

request_table = table(ConsularRequest)
post_table = table(Post)


def snapshot(record: RequestRecord) -> dict[str, Any]:
    """What the audit log keeps: the file, not the person (no name, phone, birth date)."""
    return {
        "reference": record.reference,
        "post": record.post_code,
        "service": record.service_code,
        "status": record.status.value,
        "reason": record.reason,
    }


def visible(conn: Connection, staff: StaffPrincipal, reference: str) -> RequestRecord:
    """The request, if the caller may see it; else NotVisible."""
    row = conn.execute(
        record_query().where(
            request_table.c.reference == clean_reference(reference),
            post_filter(staff, request_table.c.post_id),
        )
    ).first()
    if row is None:
        exists = sa.select(request_table.c.id).where(
            request_table.c.reference == clean_reference(reference)
        )
        raise hidden("request", exists=conn.execute(exists).first() is not None)
    return to_record(row)


def lodge(
    tx: StaffWrite,
    post_code: str,
    service_code: str,
    phone: str | None,
    full_name: str,
    birth_date: date | None,
) -> RequestRecord:
    """Lodge a request at one of the caller's posts and issue its reference. NotVisible for a
    post that is not theirs (or does not exist) and for an unknown service; Refused
    `invalid` for a bad phone number or an empty name."""
    post = tx.conn.execute(
        sa.select(post_table.c.code).where(
            post_table.c.code == post_code.strip().upper(), post_filter(tx.staff, post_table.c.id)
        )
    ).scalar_one_or_none()
    if post is None:
        raise NotVisible("post")
    try:
        created = RequestService(tx.conn).create(
            post,
            service_code,
            phone,
            full_name,
            birth_date,
            tx.staff.id,
            tx.now,
            link_within=None if tx.staff.is_admin else tx.staff.post_ids,
        )
    except LookupError:
        raise NotVisible("service") from None
    except ValueError as exc:
        raise Refused("invalid", str(exc)) from None
    record = visible(tx.conn, tx.staff, created.reference)
    tx.audit("create", "request", record.reference, None, snapshot(record))
    return record


def move(
    tx: StaffWrite, reference: str, status: RequestStatus | str, reason: str
) -> tuple[RequestRecord, RequestRecord]:
    """Move a request on (the citizen is told); (before, after). Refused
    `unknown_status`, `transition_refused` (params `current`, `wanted`) or `reason_needed`
    (a rejection without its reason)."""
    before = visible(tx.conn, tx.staff, reference)
    try:
        wanted = RequestStatus(status)
    except ValueError:
        raise Refused("unknown_status", f"no such status: {status}", before.reference) from None
    try:
        RequestService(tx.conn).change_status(before.reference, wanted, reason, tx.staff.id, tx.now)
    except UnknownRequest:
        raise NotVisible("request") from None
    except TransitionRefused as refused:
        raise Refused(
            "transition_refused",
            str(refused),
            before.reference,
            current=refused.current.value,
            wanted=refused.wanted.value,
        ) from None
    except ValueError as exc:
        raise Refused("reason_needed", str(exc), before.reference) from None
    after = visible(tx.conn, tx.staff, before.reference)
    tx.audit("status", "request", after.reference, snapshot(before), snapshot(after))
    return before, after


def step_back(tx: StaffWrite, reference: str, reason: str) -> tuple[RequestRecord, RequestRecord]:
    """A correction, one step back with a reason (the citizen is told only if they had been
    told the step it leaves); (before, after). Refused `reason_needed` or `no_step_back`."""
    before = visible(tx.conn, tx.staff, reference)
    try:
        RequestService(tx.conn).step_back(before.reference, reason, tx.staff.id, tx.now)
    except UnknownRequest:
        raise NotVisible("request") from None
    except TransitionRefused as refused:
        raise Refused(
            "no_step_back",
            f"a request that is {refused.current.value} has no step back",
            before.reference,
            current=refused.current.value,
        ) from None
    except ValueError as exc:
        raise Refused("reason_needed", str(exc), before.reference) from None
    after = visible(tx.conn, tx.staff, before.reference)
    tx.audit(
        "step_back",
        "request",
        after.reference,
        snapshot(before),
        {**snapshot(after), "correction": " ".join(reason.split())[:300]},
    )
    return before, after
