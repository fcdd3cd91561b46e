"""Staff accounts and API tokens on both stores: the database never holds a raw token."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from api.db import read, write
from api.domain.staff import (
    StaffPrincipal,
    add_staff,
    issue_token,
    revoke_all_tokens,
    revoke_token,
    staff_for_token,
    verify_password,
)
from api.models import StaffRole

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _post_id(engine: Engine, code: str) -> int:
    with read(engine) as conn:
        return int(
            conn.execute(sa.text("SELECT id FROM post WHERE code = :c"), {"c": code}).scalar_one()
        )


def _last_used(engine: Engine) -> datetime | None:
    with read(engine) as conn:
        value = conn.execute(sa.text("SELECT last_used_at FROM api_token")).scalar_one()
    if isinstance(value, str):  # SQLite hands raw text back to a text query
        value = datetime.fromisoformat(value)
    return None if value is None else value.replace(tzinfo=UTC)


def test_add_issue_lookup_revoke(demo_engine: Engine) -> None:
    with write(demo_engine) as conn:
        staff_id = add_staff(conn, "  Awa.Agent@Consulat.BF ", "agent", ["abj", "PAR"], now=NOW)
        token = issue_token(conn, "awa.agent@consulat.bf", NOW)
    assert token.startswith("dbt_")
    assert len(token) >= 4 + 43

    with write(demo_engine) as conn:
        principal = staff_for_token(conn, token, NOW)
    assert principal == StaffPrincipal(
        id=staff_id,
        email="awa.agent@consulat.bf",
        role=StaffRole.agent,
        post_ids=frozenset({_post_id(demo_engine, "ABJ"), _post_id(demo_engine, "PAR")}),
    )
    assert principal.may_act_for(_post_id(demo_engine, "ABJ"))
    assert not principal.may_act_for(_post_id(demo_engine, "NYC"))

    with write(demo_engine) as conn:
        assert staff_for_token(conn, token + "x", NOW) is None
        assert staff_for_token(conn, "dbt_" + "A" * 43, NOW) is None
        assert staff_for_token(conn, "", NOW) is None
        assert revoke_token(conn, token, NOW) is True
        assert revoke_token(conn, token, NOW) is False
        assert staff_for_token(conn, token, NOW) is None


def test_database_holds_only_the_hash(demo_engine: Engine) -> None:
    with write(demo_engine) as conn:
        add_staff(conn, "admin@mae.bf", "admin", [], password="correct horse", now=NOW)
        token = issue_token(conn, "admin@mae.bf", NOW)
    with read(demo_engine) as conn:
        rows = conn.execute(sa.text("SELECT * FROM api_token")).mappings().all()
        staff = conn.execute(sa.text("SELECT * FROM staff")).mappings().one()
    assert len(rows) == 1
    assert rows[0]["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    stored = " ".join(str(v) for row in rows for v in row.values())
    assert token not in stored
    assert token[4:] not in stored
    assert "correct horse" not in " ".join(str(v) for v in staff.values())
    assert str(staff["password_hash"]).startswith("$argon2id$")


def test_last_used_at_at_most_once_a_minute(demo_engine: Engine) -> None:
    with write(demo_engine) as conn:
        add_staff(conn, "admin@mae.bf", "admin", [], now=NOW)
        token = issue_token(conn, "admin@mae.bf", NOW)
    assert _last_used(demo_engine) is None
    for at, expected in [
        (NOW, NOW),
        (NOW + timedelta(seconds=30), NOW),
        (NOW + timedelta(seconds=61), NOW + timedelta(seconds=61)),
    ]:
        with write(demo_engine) as conn:
            assert staff_for_token(conn, token, at) is not None
        assert _last_used(demo_engine) == expected


def test_revoke_all_and_disabled_account(demo_engine: Engine) -> None:
    with write(demo_engine) as conn:
        add_staff(conn, "agent@mae.bf", "agent", ["BKE"], now=NOW)
        first = issue_token(conn, "agent@mae.bf", NOW)
        second = issue_token(conn, "agent@mae.bf", NOW)
        assert revoke_all_tokens(conn, "AGENT@mae.bf", NOW) == 2
        assert staff_for_token(conn, first, NOW) is None
        assert staff_for_token(conn, second, NOW) is None
        third = issue_token(conn, "agent@mae.bf", NOW)
        conn.execute(sa.text("UPDATE staff SET active = :f"), {"f": False})
        assert staff_for_token(conn, third, NOW) is None
        with pytest.raises(ValueError, match="no active staff account"):
            issue_token(conn, "agent@mae.bf", NOW)


def test_verify_password(demo_engine: Engine) -> None:
    with write(demo_engine) as conn:
        add_staff(conn, "admin@mae.bf", "admin", [], password="correct horse", now=NOW)
        add_staff(conn, "agent@mae.bf", "agent", ["ACC"], now=NOW)
        ok = verify_password(conn, "Admin@MAE.bf", "correct horse")
        assert ok is not None
        assert ok.is_admin
        assert verify_password(conn, "admin@mae.bf", "wrong horse") is None
        assert verify_password(conn, "agent@mae.bf", "anything at all") is None
        assert verify_password(conn, "ghost@mae.bf", "correct horse") is None


@pytest.mark.parametrize(
    ("email", "role", "posts", "message"),
    [
        ("dup@mae.bf", "admin", [], "already exists"),
        ("new@mae.bf", "agent", ["XYZ"], "unknown post: XYZ"),
        ("new@mae.bf", "chief", [], "unknown role"),
        ("new@mae.bf", "agent", [], "at least one post"),
        ("not-an-address", "admin", [], "not an e-mail"),
    ],
)
def test_refusals(
    demo_engine: Engine, email: str, role: str, posts: list[str], message: str
) -> None:
    with write(demo_engine) as conn:
        add_staff(conn, "DUP@mae.bf", "admin", [], now=NOW)
    with write(demo_engine) as conn, pytest.raises(ValueError, match=message):
        add_staff(conn, email, role, posts, now=NOW)
