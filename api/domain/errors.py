"""What the staff use cases raise, for the API and the console to put in their own words.

`NotVisible`: the thing does not exist, or is another post's — the same answer for both (the
API's 404, the console's "not found" page). `Refused`: the change is not possible now, with a
stable `code` (the API's 409 or 422 detail, the console's flash message).
"""

from __future__ import annotations


class NotVisible(LookupError):
    """No such thing for this caller (`what`: appointment, request, broadcast, post…)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"no such {what}")
        self.what = what


class Refused(ValueError):
    """The use case refused: `code` says why (stable, for messages), `detail` in English."""

    def __init__(self, code: str, detail: str, reference: str = "", **params: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.reference = reference
        self.params = params
