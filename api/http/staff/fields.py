"""Field types shared by the staff API's models: bounded single-line text, codes, ids."""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from typing import Annotated
from zoneinfo import available_timezones

from fastapi import Path
from pydantic import AfterValidator, Field

from api.http.staff.deps import MAX_ID

ONE_LINE = r"^[^\x00-\x1f\x7f]*$"
"""No control characters: what a desk types into one field."""

POST_CODE = r"^[A-Z]{3}$"
COUNTRY = r"^[A-Z]{2}$"


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _known_zone(value: str) -> str:
    if value not in _zones():
        raise ValueError("not an IANA time zone (e.g. Africa/Abidjan)")
    return value


TimeZoneName = Annotated[
    str,
    Field(min_length=1, max_length=64, examples=["Africa/Abidjan"]),
    AfterValidator(_known_zone),
]
PostCode = Annotated[str, Field(pattern=POST_CODE, examples=["ABJ"])]
CountryCode = Annotated[str, Field(pattern=COUNTRY, examples=["CI"])]
ServiceCode = Annotated[
    str, Field(min_length=1, max_length=32, pattern=ONE_LINE, examples=["passport"])
]

IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
CodePath = Annotated[str, Path(min_length=1, max_length=32, pattern=ONE_LINE)]
"""A post code (ABJ) or a service code (passport) in a path."""
ReferencePath = Annotated[
    str, Path(min_length=1, max_length=40, pattern=ONE_LINE, examples=["ABJ-2026-000123"])
]

FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2199, 12, 31)


def _calendar_day(value: date) -> date:
    if not FIRST_DAY <= value <= LAST_DAY:
        raise ValueError(f"a day between {FIRST_DAY} and {LAST_DAY}")
    return value


Day = Annotated[date, AfterValidator(_calendar_day)]
"""A day of the consular calendar (closures, appointment lists): 2000 to 2199."""

# The 422 of a `phone=` filter that is no phone number (api.domain.search.phone_terms).
NOT_A_PHONE = "phone: not a phone number, international or local"
