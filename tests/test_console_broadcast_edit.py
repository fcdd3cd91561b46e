"""Editing a draft broadcast in the console: the composer opens filled in with the draft, saves
through the staff API's own use case (api.domain.broadcast_desk.edit, audited the same way),
and refuses, with a clear message, a broadcast that is no longer a draft."""

from __future__ import annotations

import html

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from api import db
from api.domain.tables import table
from api.models import AuditLog, Broadcast
from tests.test_console import _compose, console, csrf, login, make_staff

__all__ = ["console"]  # the fixture, used by name
_broadcast = table(Broadcast)
_audit = table(AuditLog)


def _admin_draft(client: TestClient, engine: Engine) -> str:
    """Log an administrator in and compose a draft; its page's address."""
    make_staff(engine, "admin@mae.bf", "admin")
    login(client, "admin@mae.bf")
    return str(_compose(client).headers["location"])


def _titles(engine: Engine) -> list[str]:
    with db.read(engine) as conn:
        return list(conn.execute(sa.select(_broadcast.c.title)).scalars())


def test_a_draft_opens_filled_in_is_changed_and_saved_through_the_use_case(
    console: tuple[TestClient, Engine],
) -> None:
    client, engine = console
    make_staff(engine, "admin@mae.bf", "admin")
    login(client, "admin@mae.bf")
    created = _compose(
        client, channels=["whatsapp"], request_statuses=["ready"], countries="CI", languages=["fr"]
    )
    detail = created.headers["location"]
    assert 'href="' + detail + '/edit"' in client.get(detail).text

    form = client.get(detail + "/edit")
    assert form.status_code == 200
    page = html.unescape(form.text)
    assert f'action="{detail}/edit"' in page
    assert 'value="Mission <b>consulaire</b>"' in page  # the title, escaped in the page
    assert "Mission à Bouaké le 12 <script>alert(1)</script></textarea>" in page
    assert "Consular mission in Bouaké on the 12th</textarea>" in page
    assert 'value="ABJ" checked' in page
    assert 'value="whatsapp" checked' in page
    assert 'value="ready" checked' in page
    assert 'value="CI"' in page

    saved = client.post(
        detail + "/edit",
        data={
            "csrf": csrf(form.text),
            "title": "Mission consulaire à Bouaké",
            "text_fr": "Mission à Bouaké le 14",
            "posts": ["ABJ", "BKE"],
            "channels": ["telegram"],
        },
        follow_redirects=False,
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == detail
    shown = client.get(detail).text
    assert "Brouillon « Mission consulaire à Bouaké » modifié" in shown
    with db.read(engine) as conn:
        row = conn.execute(sa.select(_broadcast).where(_broadcast.c.title.like("%Bouaké"))).one()
        actions = list(
            conn.execute(
                sa.select(_audit.c.action).where(
                    _audit.c.entity == "broadcast", _audit.c.entity_id == str(row.id)
                )
            ).scalars()
        )
    assert row.texts == {"fr": "Mission à Bouaké le 14"}  # the English text was emptied
    assert row.segment["posts"] == ["ABJ", "BKE"]
    assert row.segment["channels"] == ["telegram"]
    assert "request" not in row.segment
    assert row.status == "draft"
    assert sorted(actions) == ["create", "update"]

    sent = client.post(detail + "/send", data={"csrf": csrf(shown), "when": "now"})
    assert sent.status_code == 200


def test_a_broadcast_no_longer_a_draft_cannot_be_edited(
    console: tuple[TestClient, Engine],
) -> None:
    client, engine = console
    detail = _admin_draft(client, engine)
    page = client.get(detail).text
    client.post(detail + "/cancel", data={"csrf": csrf(page)})

    opened = client.get(detail + "/edit")
    assert opened.history
    assert opened.url.path == detail
    assert "Seul un brouillon se modifie : cette annonce est « Annulée »." in opened.text
    assert 'href="' + detail + '/edit"' not in opened.text

    posted = client.post(
        detail + "/edit",
        data={"csrf": csrf(opened.text), "title": "Autre", "text_fr": "Autre", "posts": ["ABJ"]},
    )
    assert "Seul un brouillon se modifie" in posted.text
    assert "Autre" not in _titles(engine)


def test_an_edit_with_a_missing_french_text_keeps_the_draft_and_says_so(
    console: tuple[TestClient, Engine],
) -> None:
    client, engine = console
    detail = _admin_draft(client, engine)
    form = client.get(detail + "/edit").text
    refused = client.post(
        detail + "/edit", data={"csrf": csrf(form), "title": "Sans texte", "posts": ["ABJ"]}
    )
    assert refused.status_code == 200
    assert "Le texte en français est obligatoire" in refused.text
    assert f'action="{detail}/edit"' in refused.text  # still editing the same draft
    assert "Sans texte" not in _titles(engine)


def test_editing_needs_a_login_and_the_forms_csrf_token(
    console: tuple[TestClient, Engine],
) -> None:
    client, engine = console
    detail = _admin_draft(client, engine)
    refused = client.post(
        detail + "/edit", data={"csrf": "nope", "title": "Autre", "text_fr": "Autre"}
    )
    assert refused.status_code == 403
    client.cookies.clear()
    anonymous = client.get(detail + "/edit", follow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/console/login")
    assert "Autre" not in _titles(engine)
