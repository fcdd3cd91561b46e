"""The tables of translations reviewed by their speakers, voice prompts."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from api.models.base import utc_field


class Translation(SQLModel, table=True):
    """One catalog entry as a translator left it: it overlays locales/<lang>/…/messages.po.

    `source` is the French text it was reviewed against: when the French changes, the entry
    is "changed" (to review again) and keeps its text until then (`previous_text` keeps the
    text before the last edit)."""

    lang: str = Field(max_length=8, primary_key=True)
    key: str = Field(max_length=80, primary_key=True)
    text: str = Field(max_length=4096)
    source: str = Field(max_length=4096)
    reviewed: bool = False
    previous_text: str | None = Field(default=None, max_length=4096)
    comment: str = Field(default="", max_length=1000)
    staff_id: int | None = Field(default=None, foreign_key="staff.id")
    updated_at: datetime = utc_field()


class TranslationVersion(SQLModel, table=True):
    """One row, bumped by every change of translations, glossary or voice prompts: each
    process polls it (one primary-key read every few seconds) to reload its overlay."""

    __tablename__ = "translation_version"
    id: int = Field(default=1, primary_key=True)
    version: int = 0


class GlossaryTerm(SQLModel, table=True):
    """A consular term in one language, edited by translators (seeded from glossary.csv)."""

    __tablename__ = "glossary_term"
    term_id: str = Field(max_length=40, primary_key=True)
    lang: str = Field(max_length=8, primary_key=True)
    text: str = Field(max_length=200)
    staff_id: int | None = Field(default=None, foreign_key="staff.id")
    updated_at: datetime = utc_field()


class VoicePrompt(SQLModel, table=True):
    """A recorded clip (OGG/Opus) of one message in one language, served at /voice/{token}."""

    __tablename__ = "voice_prompt"
    lang: str = Field(max_length=8, primary_key=True)
    key: str = Field(max_length=80, primary_key=True)
    token: str = Field(max_length=64, unique=True)  # random: the URL cannot be guessed
    audio: bytes = Field(sa_column=sa.Column(sa.LargeBinary(), nullable=False))
    seconds: float = 0.0
    staff_id: int | None = Field(default=None, foreign_key="staff.id")
    updated_at: datetime = utc_field()
