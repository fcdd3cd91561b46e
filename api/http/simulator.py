"""`POST /api/v1/simulator/messages` — talk to the flows over HTTP, as DESIGN.md describes;
`GET /api/v1/simulator/messages?user=&after=` — what the bot sent that user since (notices,
reminders, an agent's replies: api.domain.simulator_mailbox), polled by the web page.

Open while SIMULATOR_ENABLED is true; otherwise the route answers 404. `now` sets the clock of
that turn only when SIMULATOR_CLOCK is true (scripts and demos), else the server's clock rules;
`channel` only picks the phone's default country of a demo. Each client address may send
`SIMULATOR_MESSAGES_PER_MINUTE` messages a minute and start `SIMULATOR_USERS_PER_10_MINUTES`
new users in ten minutes (api.http.address_limits), else 429 with `Retry-After`; lifted under
SIMULATOR_CLOCK, the test mode.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator

from api import db
from api.domain import simulator_mailbox
from api.domain.citizens import normalise_phone
from api.http.address_limits import AddressLimit, DistinctLimit, client_address
from api.http.problems import problem
from api.http.staff.errors import ProblemRoute, responses
from api.messaging import Messaging
from bot.channels import simulator
from flows.engine import Kind

router = APIRouter(
    prefix="/api/v1/simulator",
    tags=["simulator"],
    route_class=ProblemRoute,
    responses=responses(404, 413, 422, 429),
)


class SimulatorLimits:
    """The simulator's limits per client address (api.http.address_limits)."""

    def __init__(self, messages_per_minute: int, users_per_10_minutes: int) -> None:
        self.messages = AddressLimit(messages_per_minute, 60.0)
        self.users = DistinctLimit(users_per_10_minutes, 600.0)

    def wait(self, address: str, user: str) -> int:
        """0 when this message may go on, else the seconds to wait (nothing counted)."""
        return (
            self.messages.wait(address)
            or self.users.hit(address, user)
            or (self.messages.hit(address))
        )


class SimulatorMessage(BaseModel):
    user: Annotated[str, Field(min_length=1, max_length=64)]
    text: Annotated[str, Field(max_length=simulator.MAX_TEXT)] = ""
    phone: str | None = Field(default=None, max_length=32, examples=["+2250701000001"])
    channel: Literal["whatsapp", "telegram"] | None = None
    kind: Literal["text", "voice", "photo", "sticker", "location", "document"] = "text"
    now: datetime | None = Field(default=None, examples=["2026-12-01T08:00:00Z"])

    @field_validator("now")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("now needs a time zone, e.g. 2026-12-01T08:00:00Z")
        return value


class SimulatorReply(BaseModel):
    text: str
    choices: list[str]
    image: str | None = None  # only when the reply has one: the URL of a proof's QR code


class SimulatorAnswer(BaseModel):
    replies: list[SimulatorReply]


@router.post("/messages", responses={200: {"model": SimulatorAnswer}})
async def post_message(body: SimulatorMessage, request: Request) -> Response:
    if not request.app.state.settings.simulator_enabled:
        return problem(404, "Not Found", "the simulator is disabled")
    settings = request.app.state.settings
    if not settings.simulator_clock:
        limits: SimulatorLimits = request.app.state.simulator_limits
        wait = limits.wait(client_address(request), body.user)
        if wait:
            detail = "too many messages from this address: try again later"
            return problem(429, "Too Many Requests", detail, headers={"Retry-After": str(wait)})
    phone = normalise_phone(body.phone) if body.phone else None
    if body.phone and phone is None:
        return problem(422, "Unprocessable Content", "phone is not a valid international number")
    messaging: Messaging = request.app.state.messaging
    # The client's clock only where SIMULATOR_CLOCK allows it (tests, demos): elsewhere a
    # client could wait out lookup locks in no time or book in the past.
    now = request.app.state.clock()
    if body.now is not None and request.app.state.settings.simulator_clock:
        now = body.now
    message = simulator.inbound(
        body.user,
        body.text,
        now,
        phone,
        Kind(body.kind),
    )
    output = await messaging.run(messaging.runtime.handle, message)
    # Built by hand rather than validated through a response model: this is the hot path.
    return JSONResponse({"replies": simulator.replies_json(output)})


class SimulatorPush(SimulatorReply):
    id: int


class SimulatorInbox(BaseModel):
    messages: list[SimulatorPush]
    cursor: int = Field(description="The `after` of the next poll")


@router.get("/messages", responses={200: {"model": SimulatorInbox}})
def poll_messages(
    request: Request,
    user: Annotated[str, Query(min_length=1, max_length=64)],
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
) -> Response:
    """The messages the bot sent `user` on its own since `after` (the last id seen), oldest
    first; each is handed over once per cursor."""
    if not request.app.state.settings.simulator_enabled:
        return problem(404, "Not Found", "the simulator is disabled")
    with db.write(request.app.state.engine) as conn:
        messages = simulator_mailbox.collect(conn, user, after, request.app.state.clock())
    cursor = max((m["id"] for m in messages), default=after)
    return JSONResponse({"messages": messages, "cursor": cursor})
