"""A post's weekly opening hours, and the staff use case that replaces them as a whole
(`replace_hours`, the staff API's `PUT /posts/{code}/hours` and the console's post page).

Hours are local wall times of the post, weekday 0 = Monday, several intervals a day allowed
but never overlapping. New hours change the seats offered from now on: bookings already made
stay made (even outside the new hours: staff cancel those, if they must, one by one), and
seats the new hours open go first to the citizens on the post's waitlists
(api.domain.waitlist.offer_free_seats), in the same transaction.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from api.domain import waitlist
from api.domain.audit import StaffWrite
from api.domain.errors import Refused
from api.domain.tables import table
from api.models import OpeningHours, PostService

hours_table = table(OpeningHours)
offer_table = table(PostService)


@dataclass(frozen=True, order=True)
class Interval:
    weekday: int  # 0 = Monday … 6 = Sunday
    opens: time
    closes: time

    def snapshot(self) -> dict[str, Any]:
        return {"weekday": self.weekday, "opens": self.opens, "closes": self.closes}


def week(conn: Connection, post_id: int) -> list[Interval]:
    """The post's hours, by weekday then opening time."""
    rows = conn.execute(
        sa.select(hours_table.c.weekday, hours_table.c.opens, hours_table.c.closes)
        .where(hours_table.c.post_id == post_id)
        .order_by(hours_table.c.weekday, hours_table.c.opens)
    )
    return [Interval(r.weekday, r.opens, r.closes) for r in rows]


def check(intervals: list[Interval]) -> None:
    """Refused `hours_order` (an interval that does not open before it closes) or
    `hours_overlap` (two intervals of one day overlap, `weekday` in the params)."""
    for interval in intervals:
        if not 0 <= interval.weekday <= 6 or interval.opens >= interval.closes:
            raise Refused("hours_order", "opens must come before closes")
    for weekday, of_day in itertools.groupby(sorted(intervals), key=lambda i: i.weekday):
        for before, after in itertools.pairwise(of_day):
            if after.opens < before.closes:
                raise Refused(
                    "hours_overlap",
                    f"intervals overlap on weekday {weekday}",
                    weekday=str(weekday),
                )


def replace_hours(
    tx: StaffWrite, post_id: int, post_code: str, intervals: list[Interval]
) -> list[Interval]:
    """Replace the post's weekly hours, audited; the hours after. Refused as `check` says.
    The caller has checked that the post is the staff's."""
    check(intervals)
    before = week(tx.conn, post_id)
    tx.conn.execute(sa.delete(hours_table).where(hours_table.c.post_id == post_id))
    if intervals:
        tx.conn.execute(
            sa.insert(hours_table),
            [{"post_id": post_id, **i.snapshot()} for i in sorted(intervals)],
        )
    after = week(tx.conn, post_id)
    tx.audit(
        "replace",
        "opening_hours",
        post_code,
        {"hours": [i.snapshot() for i in before]},
        {"hours": [i.snapshot() for i in after]},
    )
    services = tx.conn.execute(
        sa.select(offer_table.c.service_id).where(offer_table.c.post_id == post_id)
    ).scalars()
    for service_id in list(services):
        waitlist.offer_free_seats(tx.conn, tx.now, post_id, service_id)
    return after
