"""Helpers to hold conversations in tests: through the simulator endpoint, or straight
through the runtime, and read the answers as the scripts of ../shared/conversations do."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient


@dataclass
class Answer:
    """One turn's answer: every message with its choices."""

    replies: list[dict[str, Any]]

    @property
    def whole(self) -> str:
        """All messages of the turn with their choices, joined by newlines (the scripts' view)."""
        parts: list[str] = []
        for reply in self.replies:
            parts.append(reply["text"])
            parts.extend(reply.get("choices") or [])
        return "\n".join(parts)

    @property
    def choices(self) -> list[str]:
        """The numbered choices of the last message that has some."""
        for reply in reversed(self.replies):
            if reply.get("choices"):
                return list(reply["choices"])
        return []

    def number_of(self, pattern: str) -> int:
        for i, label in enumerate(self.choices, start=1):
            if re.search(pattern, label):
                return i
        raise AssertionError(f"no choice matches {pattern!r} in {self.choices!r}")


@dataclass
class SimulatorChat:
    """A citizen on the simulator channel, talking through POST /api/v1/simulator/messages."""

    client: TestClient
    user: str = "tester"
    phone: str | None = None
    now: str | None = None
    history: list[tuple[str, Answer]] = field(default_factory=list)

    def send(self, text: str, **extra: Any) -> Answer:
        body: dict[str, Any] = {"user": self.user, "text": text, **extra}
        if self.phone:
            body["phone"] = self.phone
        if self.now:
            body["now"] = self.now
        response = self.client.post("/api/v1/simulator/messages", json=body)
        assert response.status_code == 200, response.text
        answer = Answer(response.json()["replies"])
        self.history.append((text, answer))
        return answer

    @property
    def last(self) -> Answer:
        return self.history[-1][1]

    def pick(self, pattern: str) -> Answer:
        return self.send(str(self.last.number_of(pattern)))
