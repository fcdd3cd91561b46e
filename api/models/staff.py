"""The tables of staff."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from api.models.base import json_field, utc_field


class StaffRole(StrEnum):
    admin = "admin"
    agent = "agent"
    translator = "translator"  # reviews the catalogs of their languages (staff_language)


class Staff(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=200, unique=True)
    role: StaffRole = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    password_hash: str | None = Field(default=None, max_length=200)
    active: bool = True
    created_at: datetime = utc_field()


class StaffPost(SQLModel, table=True):
    """The posts an agent is attached to."""

    __tablename__ = "staff_post"
    staff_id: int = Field(foreign_key="staff.id", primary_key=True)
    post_id: int = Field(foreign_key="post.id", primary_key=True)


class StaffLanguage(SQLModel, table=True):
    """The languages a translator reviews (administrators review every language)."""

    __tablename__ = "staff_language"
    staff_id: int = Field(foreign_key="staff.id", primary_key=True)
    lang: str = Field(max_length=8, primary_key=True)


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"
    id: int | None = Field(default=None, primary_key=True)
    staff_id: int = Field(foreign_key="staff.id", index=True)
    token_hash: str = Field(max_length=64, unique=True)  # sha256 of a 256-bit random token
    created_at: datetime = utc_field()
    last_used_at: datetime | None = utc_field(nullable=True)
    revoked_at: datetime | None = utc_field(nullable=True)
    expires_at: datetime | None = utc_field(nullable=True)  # None: until revoked


class ConsoleLogin(SQLModel, table=True):
    """One console session on the server's side: logging out ends it, so a copied cookie stops
    working; disabling the account ends them all. The cookie carries the random id, the
    database its SHA-256."""

    __tablename__ = "console_login"
    id_hash: str = Field(max_length=64, primary_key=True)
    staff_id: int = Field(foreign_key="staff.id", index=True)
    created_at: datetime = utc_field()
    expires_at: datetime = utc_field()
    ended_at: datetime | None = utc_field(nullable=True)


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_log"
    id: int | None = Field(default=None, primary_key=True)
    staff_id: int | None = Field(default=None, foreign_key="staff.id", index=True)
    action: str = Field(max_length=40)
    entity: str = Field(max_length=40)
    entity_id: str = Field(max_length=40)
    before: dict[str, Any] | None = json_field(nullable=True)
    after: dict[str, Any] | None = json_field(nullable=True)
    at: datetime = utc_field(index=True)
