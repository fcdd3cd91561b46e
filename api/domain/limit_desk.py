"""Booking limits at the desk: where one citizen stands against each post's allowances, and
lifting a limit for them (api.domain.fairness has the rules).

`standing` lists, for each post the caller may act for where the citizen has booked in the
window, the phone's count and each booked name's count against the post's limits. `lift` is
a staff write: checked, changed and audited in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from api.domain import fairness
from api.domain.audit import StaffWrite
from api.domain.errors import NotVisible, Refused
from api.domain.membership import belongs_to
from api.domain.staff import StaffPrincipal, post_filter
from api.domain.tables import table
from api.models import Appointment, Citizen, Post
from flows.world import person_key

_appt = table(Appointment)
_citizen = table(Citizen)
_post = table(Post)


@dataclass(frozen=True)
class Standing:
    post_code: str
    kind: str  # phone | name
    subject: str  # the phone (or `#id`), or the full name as booked
    used: int
    limit: int
    days: int
    lifts_at: datetime | None  # when one more booking is possible, if the limit is reached

    @property
    def reached(self) -> bool:
        return self.used >= self.limit


def _citizen_visible(conn: Connection, staff: StaffPrincipal, citizen_id: int) -> None:
    visible = sa.true() if staff.is_admin else belongs_to(_citizen, sorted(staff.post_ids))
    row = conn.execute(sa.select(_citizen.c.id).where(_citizen.c.id == citizen_id, visible)).first()
    if row is None:
        raise NotVisible("citizen")


def standing(
    conn: Connection, staff: StaffPrincipal, citizen_id: int, now: datetime
) -> list[Standing]:
    _citizen_visible(conn, staff, citizen_id)
    phone = fairness.phone_subject(conn, citizen_id)
    rows = conn.execute(
        sa.select(_post.c.id, _post.c.code, _appt.c.full_name)
        .select_from(_appt.join(_post, _post.c.id == _appt.c.post_id))
        .where(_appt.c.citizen_id == citizen_id, post_filter(staff, _post.c.id))
        .distinct()
        .order_by(_post.c.code, _appt.c.full_name)
    ).all()
    result: list[Standing] = []
    for post_id, code in sorted({(r.id, r.code) for r in rows}, key=lambda p: p[1]):
        rules = fairness.rules(conn, post_id)
        names = sorted({r.full_name for r in rows if r.id == post_id})
        subjects = [("phone", phone, phone, rules.per_phone)] + [
            ("name", name, person_key(name), rules.per_name) for name in names
        ]
        for kind, shown, subject, limit in subjects:
            used = fairness.counted(conn, rules, kind, subject, now)
            if kind == "phone":
                stop = fairness.limit(conn, citizen_id, post_id, None, None, now)
                stop = stop if stop is not None and stop.kind.value == "phone" else None
            else:
                stop = fairness.limit(conn, citizen_id, post_id, None, shown, now)
                stop = stop if stop is not None and stop.kind.value == "name" else None
            lifts_at = stop.lifts_at if stop is not None else None
            result.append(Standing(code, kind, shown, used, limit, rules.days, lifts_at))
    return result


def lift(tx: StaffWrite, citizen_id: int, post_code: str, kind: str, full_name: str = "") -> None:
    """Lift the phone's limit (or one full name's) at a post for this citizen: what they
    booked before now no longer counts. Refused `unknown_kind` or `name_needed`."""
    _citizen_visible(tx.conn, tx.staff, citizen_id)
    post = tx.conn.execute(
        sa.select(_post.c.id, _post.c.code).where(
            _post.c.code == post_code.strip().upper(), post_filter(tx.staff, _post.c.id)
        )
    ).first()
    if post is None:
        raise NotVisible("post")
    if kind not in (fairness.PHONE, fairness.NAME):
        raise Refused("unknown_kind", "kind is phone or name")
    full_name = " ".join(full_name.split())[:120]
    if kind == fairness.NAME and not person_key(full_name):
        raise Refused("name_needed", "a full name is needed to lift a name's limit")
    subject = fairness.phone_subject(tx.conn, citizen_id) if kind == fairness.PHONE else full_name
    fairness.lift(tx.conn, post.id, kind, subject, tx.staff.id, tx.now)
    tx.audit(
        "lift_limit",
        "citizen",
        citizen_id,
        None,
        {"post": post.code, "kind": kind},  # not the name: the log keeps no person
    )
