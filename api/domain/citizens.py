"""Citizens: phone numbers, preferences, and the channel identities that lead to them."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from api.domain.tables import table
from api.models import Citizen

citizen = table(Citizen)


@lru_cache(maxsize=4096)  # every simulator and WhatsApp turn brings the number again
def normalise_phone(text: str | None) -> str | None:
    """'+225 07 01 00 00 01' or 'whatsapp:+2250701000001' → '+2250701000001'; None if invalid."""
    if not text:
        return None
    text = text.removeprefix("whatsapp:").strip()
    if not text.startswith("+"):
        text = "+" + text.lstrip("0")
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=4096)
def country_of(phone: str | None) -> str | None:
    """ISO country of an E.164 number ('+2250701…' → 'CI'; '+1212…' → 'US')."""
    if not phone:
        return None
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(phone, None))
    except phonenumbers.NumberParseException:
        return None
    return region if region and region != "ZZ" else None


def _set(column: str) -> sa.Update:
    """`UPDATE citizen SET <column> = :value WHERE id = :id`, built once: a conversation's
    turns set these (sa's compiled cache then skips the statement's construction)."""
    return (
        sa.update(citizen)
        .where(citizen.c.id == sa.bindparam("citizen_id"))
        .values({column: sa.bindparam("value")})
    )


_SET_LANG, _SET_OPTED_OUT, _SET_VOICE = _set("lang"), _set("opted_out"), _set("voice")


def set_language(conn: Connection, citizen_id: int, lang: str) -> None:
    conn.execute(_SET_LANG, {"citizen_id": citizen_id, "value": lang})


def set_opted_out(conn: Connection, citizen_id: int, opted_out: bool) -> None:
    conn.execute(_SET_OPTED_OUT, {"citizen_id": citizen_id, "value": opted_out})


def set_voice(conn: Connection, citizen_id: int, on: bool) -> None:
    conn.execute(_SET_VOICE, {"citizen_id": citizen_id, "value": on})
