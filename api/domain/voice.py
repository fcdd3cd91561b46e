"""Voice prompts: a translator's recording of one message in one language.

Whatever the browser recorded or the translator uploaded (WebM, OGG, MP3, WAV, M4A…) is
converted by Debian's `ffmpeg` to OGG/Opus, mono, 32 kbit/s — what WhatsApp and Telegram
play as a voice note — and refused above `MAX_UPLOAD` bytes or `MAX_SECONDS` seconds. The
clip is stored in the database (every process serves it) under a random token: its URL,
`/voice/{token}.ogg`, cannot be guessed. Every change is audited and bumps the version the
bot's renderer polls, so the bot sends the clip within seconds.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from api.db import read
from api.domain.audit import StaffWrite
from api.domain.errors import NotVisible, Refused
from api.domain.tables import table
from api.domain.translations import bump_version, catalogs
from api.models import VoicePrompt

voice_prompt = table(VoicePrompt)

MAX_UPLOAD = 3 * 1024 * 1024  # bytes, as uploaded
MAX_SECONDS = 60.0
CONVERT_TIMEOUT = 30  # seconds
OGG = "audio/ogg"


def _ffmpeg() -> str:
    found = shutil.which("ffmpeg")
    if found is None:
        raise Refused("no_ffmpeg", "ffmpeg is not installed on the server")
    return found


def convert(data: bytes) -> tuple[bytes, float]:
    """Any audio → OGG/Opus mono, and its length in seconds; Refused if unreadable/too long."""
    if not data:
        raise Refused("audio_empty", "the file is empty")
    if len(data) > MAX_UPLOAD:
        raise Refused("audio_too_large", f"over {MAX_UPLOAD // (1024 * 1024)} MiB")
    with tempfile.TemporaryDirectory(prefix="voice-") as folder:
        source, target = Path(folder) / "in", Path(folder) / "out.ogg"
        source.write_bytes(data)
        command = [
            _ffmpeg(),
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-i",
            str(source),
            "-vn",
            "-ac",
            "1",
            "-c:a",
            "libopus",
            "-b:a",
            "32k",
            "-t",
            str(MAX_SECONDS + 1),
            "-f",
            "ogg",
            str(target),
        ]
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=CONVERT_TIMEOUT)  # noqa: S603
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            raise Refused("audio_unreadable", "not an audio file ffmpeg can read") from None
        seconds = _duration(target)
        if seconds > MAX_SECONDS:
            raise Refused("audio_too_long", f"longer than {MAX_SECONDS:.0f} seconds")
        return target.read_bytes(), seconds


def _duration(path: Path) -> float:
    probe = shutil.which("ffprobe")
    if probe is None:
        return 0.0
    result = subprocess.run(  # noqa: S603
        [probe, "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
        check=False,
        capture_output=True,
        timeout=CONVERT_TIMEOUT,
    )
    try:
        return float(json.loads(result.stdout)["format"]["duration"])
    except (ValueError, KeyError, TypeError):
        return 0.0


def _where(lang: str, key: str) -> tuple[sa.ColumnElement[bool], ...]:
    return (voice_prompt.c.lang == lang, voice_prompt.c.key == key)


def save_voice(tx: StaffWrite, lang: str, key: str, data: bytes) -> str:
    """Store a clip for a message in a language (replacing any); its new token."""
    if not tx.staff.may_translate(lang):
        raise Refused("forbidden", f"not a translator of {lang}")
    catalogs().entry(lang, key)  # NotVisible for an unknown language or message
    audio, seconds = convert(data)
    token = secrets.token_urlsafe(24)
    old = tx.conn.execute(sa.select(voice_prompt.c.seconds).where(*_where(lang, key))).first()
    tx.conn.execute(voice_prompt.delete().where(*_where(lang, key)))
    tx.conn.execute(
        voice_prompt.insert().values(
            lang=lang,
            key=key,
            token=token,
            audio=audio,
            seconds=seconds,
            staff_id=tx.staff.id,
            updated_at=tx.now,
        )
    )
    bump_version(tx.conn)
    before = {"seconds": old.seconds} if old is not None else None
    tx.audit("voice.upload", "voice_prompt", f"{lang}:{key}"[:40], before, {"seconds": seconds})
    return token


def delete_voice(tx: StaffWrite, lang: str, key: str) -> None:
    if not tx.staff.may_translate(lang):
        raise Refused("forbidden", f"not a translator of {lang}")
    old = tx.conn.execute(sa.select(voice_prompt.c.seconds).where(*_where(lang, key))).first()
    if old is None:
        raise NotVisible("voice prompt")
    tx.conn.execute(voice_prompt.delete().where(*_where(lang, key)))
    bump_version(tx.conn)
    tx.audit("voice.delete", "voice_prompt", f"{lang}:{key}"[:40], {"seconds": old.seconds}, None)


def clip(engine: Engine, token: str) -> bytes | None:
    with read(engine) as conn:
        found = conn.execute(
            sa.select(voice_prompt.c.audio).where(voice_prompt.c.token == token)
        ).scalar()
    return bytes(found) if found is not None else None


def token_of(conn: Connection, lang: str, key: str) -> str | None:
    found = conn.execute(sa.select(voice_prompt.c.token).where(*_where(lang, key))).scalar()
    return str(found) if found is not None else None
