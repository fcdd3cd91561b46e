"""What the staff use cases raise, for the API and the console to put in their own words.

`NotVisible`: the thing does not exist for this caller (the API's 404, the console's "not found"
page). `NotYours`, a NotVisible, says more: it exists but belongs to another post — the console
tells its agent "not one of your posts" (403), while the API, which catches NotVisible, keeps
its 404 and leaks nothing. `Refused`: the change is not possible now, with a
stable `code` (the API's 409 or 422 detail, the console's flash message).
"""

from __future__ import annotations


class NotVisible(LookupError):
    """No such thing for this caller (`what`: appointment, request, broadcast, post…)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"no such {what}")
        self.what = what


class NotYours(NotVisible):
    """The thing exists, but is another post's: not this caller's to see."""


class Refused(ValueError):
    """The use case refused: `code` says why (stable, for messages), `detail` in English."""

    def __init__(self, code: str, detail: str, reference: str = "", **params: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.reference = reference
        self.params = params


def hidden(what: str, *, exists: bool) -> NotVisible:
    """What to raise when the caller may not see `what`: NotYours when it exists elsewhere."""
    return NotYours(what) if exists else NotVisible(what)
