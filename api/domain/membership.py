"""Who belongs to which post: the one rule behind an agent's view of citizens and the audience
of a broadcast aimed at posts (DESIGN.md).

A citizen belongs to the posts where they have booked (any appointment, even a cancelled one)
or have a request linked to them; one with neither belongs to the posts of their phone
number's country. A request is linked to its citizen by the citizen's own act or within the
desk's reach, never by typing a phone number alone (security review, item 8):

- when it is lodged, if the citizen with that verified phone already belongs to one of the
  lodging staff's posts (an administrator: any citizen);
- when the citizen opens it in the chat from that verified phone.

An unlinked request still reaches its phone's citizen for what the desk needs — the notice of
each status change — but pulls nobody into an agent's scope.
"""

from __future__ import annotations

from collections.abc import Collection

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from api.domain.tables import table
from api.models import Appointment, Citizen, ConsularRequest, Post

_citizen = table(Citizen)
_appointment = table(Appointment)
_request = table(ConsularRequest)
_post = table(Post)

PostIds = Collection[int] | sa.Select[tuple[int]]


def post_ids_of(codes: Collection[str]) -> sa.Select[tuple[int]]:
    """The ids of these post codes, as a subquery."""
    return sa.select(_post.c.id).where(_post.c.code.in_(sorted(codes)))


def requests_of(citizen: sa.FromClause) -> sa.ColumnElement[bool]:
    """The request is this citizen's (linked to them)."""
    return _request.c.citizen_id == citizen.c.id


def _booked(citizen: sa.FromClause, posts: PostIds | None) -> sa.Exists:
    query = sa.select(_appointment.c.id).where(_appointment.c.citizen_id == citizen.c.id)
    if posts is not None:
        query = query.where(_appointment.c.post_id.in_(posts))
    return query.exists()


def _lodged(citizen: sa.FromClause, posts: PostIds | None) -> sa.Exists:
    query = sa.select(_request.c.id).where(requests_of(citizen))
    if posts is not None:
        query = query.where(_request.c.post_id.in_(posts))
    return query.exists()


def belongs_to(citizen: sa.FromClause, posts: PostIds) -> sa.ColumnElement[bool]:
    """The citizen belongs to one of these posts (ids, or a subquery of ids)."""
    countries = sa.select(_post.c.country).where(_post.c.id.in_(posts))
    return sa.or_(
        _booked(citizen, posts),
        _lodged(citizen, posts),
        sa.and_(
            citizen.c.country.in_(countries),
            ~_booked(citizen, None),
            ~_lodged(citizen, None),
        ),
    )


def citizen_in_posts(conn: Connection, citizen_id: int, post_ids: Collection[int] | None) -> bool:
    """Does this citizen belong to one of these posts (None: an administrator, yes)?"""
    if post_ids is None:
        return True
    found = conn.execute(
        sa.select(_citizen.c.id).where(
            _citizen.c.id == citizen_id, belongs_to(_citizen, sorted(post_ids))
        )
    ).first()
    return found is not None
