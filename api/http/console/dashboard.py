"""Dashboard: the figures of api.domain.dashboard for one post or all of the desk's posts, as
SVG charts drawn on the server (each with its table of numbers beside it, for screen readers
and for copying) and a CSV download of each table."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any

from fastapi import Query, Response

from api import db
from api.domain import broadcast_desk
from api.domain.dashboard import Dashboard, Table, dashboard
from api.http.console.base import (
    AnyRow,
    Desk,
    DeskDep,
    not_found,
    pick_post,
    section_router,
    secure,
    visible_posts,
)

router = section_router()

PALETTE = ("#00753a", "#c8102e", "#1a4a8a", "#b07d00", "#6a3d9a", "#2b7a78", "#8c564b", "#555")
CHART_WIDTH, CHART_HEIGHT = 720, 180
LABEL_ROOM = 28  # under the bars: the days
HBAR_WIDTH, HBAR_LABEL, HBAR_ROOM = 480, 190, 230  # horizontal bars: label, then the bar


def stacked_bars(figure: Table) -> dict[str, Any]:
    """Geometry of a stacked bar chart of a table whose first column is the day."""
    series = figure.columns[1:]
    days = figure.rows
    totals = [sum(row[1:]) for row in days]
    top = max(totals, default=0) or 1
    step = CHART_WIDTH / max(len(days), 1)
    bars = []
    for i, row in enumerate(days):
        y = float(CHART_HEIGHT)
        for j, value in enumerate(row[1:]):
            if not value:
                continue
            h = CHART_HEIGHT * value / top
            y -= h
            bars.append(
                {
                    "x": round(i * step + 1, 1),
                    "y": round(y, 1),
                    "w": round(max(step - 2, 1), 1),
                    "h": round(h, 1),
                    "color": PALETTE[j % len(PALETTE)],
                    "title": f"{row[0]} — {series[j]} : {value}",
                }
            )
    labels = [
        {"x": round(i * step + 1, 1), "text": str(row[0])[5:]}
        for i, row in enumerate(days)
        if i % 7 == 0
    ]
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT + LABEL_ROOM,
        "plot_height": CHART_HEIGHT,
        "bars": bars,
        "labels": labels,
        "top": top,
        "legend": [(name, PALETTE[j % len(PALETTE)]) for j, name in enumerate(series)],
    }


def horizontal_bars(items: list[tuple[str, float]], unit: str = "") -> dict[str, Any]:
    top = max((v for _, v in items), default=0) or 1
    rows = [
        {
            "label": label,
            "value": value,
            "text": f"{value:g}{unit}",
            "y": i * 28,
            "w": round(HBAR_ROOM * value / top, 1),
            "color": PALETTE[i % len(PALETTE)],
        }
        for i, (label, value) in enumerate(items)
    ]
    height = max(len(rows), 1) * 28
    return {"width": HBAR_WIDTH, "height": height, "bar_x": HBAR_LABEL, "rows": rows}


def _figures(desk: Desk, code: str | None) -> tuple[Dashboard, list[AnyRow], AnyRow | None]:
    with db.read(desk.engine) as conn:
        posts = visible_posts(conn, desk.staff)
        post = pick_post(posts, code) if code else None
        if code and post is None:
            raise not_found(desk, "post")
        if post is not None:
            ids: frozenset[int] | None = frozenset({post.id})
            codes: frozenset[str] | None = frozenset({post.code})
        elif desk.staff.is_admin:
            ids, codes = None, None
        else:
            ids = frozenset(desk.staff.post_ids)
            codes = broadcast_desk.post_codes(conn, desk.staff)
        figures = dashboard(conn, ids, codes, desk.now)
    return figures, posts, post


@router.get("/dashboard", response_model=None)
def dashboard_page(desk: DeskDep, post: Annotated[str, Query(max_length=8)] = "") -> Response:
    figures, posts, chosen = _figures(desk, post or None)
    requests = figures.requests
    reach = figures.reach
    return desk.page(
        "console/dashboard.html",
        "dashboard",
        d=figures,
        posts=posts,
        chosen=chosen,
        appointments_chart=stacked_bars(figures.appointments),
        conversations_chart=stacked_bars(figures.conversations),
        requests_chart=horizontal_bars([(str(s), float(n)) for s, n in requests.rows]),
        reach_chart=horizontal_bars([(str(r[0]), float(r[4])) for r in reach.rows], " %"),
    )


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula."""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA) else text


@router.get("/dashboard.csv", response_model=None)
def dashboard_csv(
    desk: DeskDep,
    table: Annotated[str, Query(max_length=20)] = "appointments",
    post: Annotated[str, Query(max_length=8)] = "",
) -> Response:
    figures, _, chosen = _figures(desk, post or None)
    found = figures.tables().get(table)
    if found is None:
        raise not_found(desk)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(found.columns)
    for row in found.rows:
        writer.writerow([_cell(v) for v in row])
    scope = chosen.code if chosen is not None else "all"
    response = Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{table}-{scope}.csv"'},
    )
    return secure(response)
