"""The outbox: due messages taken from a durable store and handed to the channels. Here its
vocabulary — lanes, the items, outcomes, the store's and the senders' interfaces, the retry
policy; its loop is bot.outbox_sender.

The store (a table, implemented in api/) holds every message the bot sends after the fact:
Telegram replies, notifications, reminders, announcements. This loop, one per worker process,
for each channel with a `Sender`:

1. claims a batch of due messages (`OutboxStore.claim`: replies before notifications before
   bulk; on PostgreSQL `FOR UPDATE SKIP LOCKED`, so that M workers never claim the same row);
2. waits for the channel's rate limiter (in-process, or shared by every worker through
   Redis), then sends, a few messages in flight at once. The limiter never lets more than
   the limit reach the provider within one second, as the provider counts (see `bot.rate_limits`);
3. records each outcome as soon as it is known (`OutboxStore.complete`): sent with the
   provider's message id, retried with back-off, skipped, failed, or the channel unreachable.

Exactly once, honestly. Neither Telegram nor Twilio takes an idempotency key, so "sent" is
recorded right after the provider accepted the message. If the process dies between the
provider's acceptance and that record, the claim's lease expires (`lease`) and the message is
claimed again. That window covers only the messages in flight at the moment of the crash (at
most `concurrency` per channel), never a whole batch, and lasts the few milliseconds it takes
to record an answer (about 3 ms on PostgreSQL, measured): a worker killed at a random instant
while sending 20 messages a second leaves one message in that window about once in 15 kills.
What happens to that message depends on the channel:

- The store marks a row whose send may have reached the provider unrecorded as *in doubt*
  (`OutboxItem.in_doubt_since`: its lease expired, or the call broke after the request went
  out). Before sending an in-doubt message again, the loop asks the channel's sender whether
  the provider already has it (`SentLookup.find_sent`); if so, the message is recorded as sent
  with the provider's id and not sent again. If the question cannot be answered, the message
  is retried later, still in doubt: never sent blind.
- WhatsApp (Twilio) answers that question (`WhatsAppSender.find_sent` lists the messages sent
  to that number since the claim): a worker killed mid-broadcast sends every WhatsApp message
  exactly once.
- Telegram has no way to list what a bot has sent, so `TelegramSender` has no `find_sent`:
  on Telegram an in-doubt message is sent again. Telegram stays at-least-once for the messages
  in flight when a worker is killed (SIGKILL, power loss), and exactly once otherwise.

A graceful stop (SIGTERM) finishes and records what is in flight first. A message whose claim
expired but whose send then succeeds late is still recorded as sent, so that a message merely
slow is not sent twice.

A provider's "slow down" (Telegram 429 `retry_after`, Twilio 20429) pauses the whole channel,
not one chat: every later message of that channel waits, in this worker and (with Redis) in
every other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from bot.channels import Media

# Lanes, in priority order (smaller first). The table stores the number.
LANE_REPLY = 0
LANE_NOTIFICATION = 1
LANE_BULK = 2

# Back-off after the 1st, 2nd… failed attempt; after the last one the message has failed.
BACKOFF: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
)
MAX_ATTEMPTS = len(BACKOFF) + 1
DEFAULT_LEASE = timedelta(minutes=5)


def utcnow() -> datetime:
    return datetime.now(UTC)


# -- what the store hands over and takes back ---------------------------------------------------


@dataclass(frozen=True)
class OutboxItem:
    """One claimed message, with what the sender must know about its recipient.

    `payload` is `{"text": str, "choices": [label, …]}` for a message (the text already carries
    its numbered choices; `choices` only make Telegram buttons), with `"media": [{"url",
    "kind"}, …]` when files go with it (`bot.channels.Media`), or
    `{"type": "callback_answer", "callback_query_id": str}` for a Telegram button tap.
    """

    id: int
    channel: str
    address: str
    lang: str
    lane: int
    kind: str
    payload: Mapping[str, Any]
    attempts: int = 0  # failed attempts so far
    last_inbound_at: datetime | None = None  # the recipient's last message on this channel
    unreachable: bool = False  # the channel refused this address for good (blocked, 21610)
    opted_out: bool = False  # the citizen said STOP (announcements only)
    # When an earlier send may have reached the provider without its answer being recorded
    # (the start of that claim); None when no earlier send of this message is in doubt.
    in_doubt_since: datetime | None = None

    @property
    def text(self) -> str:
        return str(self.payload.get("text") or "")

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(str(c) for c in self.payload.get("choices") or ())

    @property
    def media(self) -> tuple[Media, ...]:
        """The files sent before the text (a voice prompt, a proof's QR code and calendar file)."""
        return tuple(Media.from_json(m) for m in self.payload.get("media") or ())

    @property
    def request_id(self) -> str | None:
        """The id of the request whose handling queued this message (logs only)."""
        rid = self.payload.get("request_id")
        return str(rid) if rid else None


class Outcome(StrEnum):
    sent = "sent"  # accepted by the provider
    retry = "retry"  # a temporary failure: try again after back-off
    throttled = "throttled"  # the provider asked to slow down: pause the channel, not a failure
    unreachable = "unreachable"  # this address refuses the bot for good
    failed = "failed"  # permanently
    skipped = "skipped"  # not sendable, by rule (outside the 24-hour window, opted out…)


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    provider_id: str | None = None
    error: str = ""
    retry_after: float | None = None  # seconds the provider asked us to wait (throttled)
    carrier_opt_out: bool = False  # unreachable because the person opted out (Twilio 21610)
    # A retry whose call may have reached the provider all the same (a timeout after the
    # request went out, a gateway error): ask the provider before sending it again.
    in_doubt: bool = False

    @classmethod
    def sent(cls, provider_id: str) -> SendResult:
        return cls(Outcome.sent, provider_id=provider_id)

    @classmethod
    def skipped(cls, reason: str) -> SendResult:
        return cls(Outcome.skipped, error=reason)


@dataclass(frozen=True)
class Completion:
    item: OutboxItem
    result: SendResult


class OutboxStore(Protocol):
    """The durable side of the outbox (api.domain.outbox_store.SqlOutboxStore). Blocking calls: the
    sender runs them in a thread."""

    def claim(self, worker: str, channel: str, limit: int, now: datetime) -> list[OutboxItem]:
        """Mark up to `limit` due messages of `channel` as being sent by `worker`."""
        ...

    def complete(self, worker: str, completions: Sequence[Completion], now: datetime) -> None:
        """Record outcomes (one transaction for the lot)."""
        ...

    def release(self, worker: str, ids: Sequence[int]) -> None:
        """Give back claimed messages that were never handed to a provider."""
        ...

    def release_claim(self, worker: str, channel: str, claimed_at: datetime) -> int:
        """Give back what the claim made by `worker` at `claimed_at` took, if it was committed
        after all (its answer was lost): none of it was handed to a provider."""
        ...

    def reclaim_stale(self, now: datetime, lease: timedelta) -> int:
        """Put back messages claimed longer than `lease` ago (their worker died)."""
        ...

    def reclaim_own(self, worker: str, now: datetime) -> int:
        """Put back what `worker` holds: called by a worker starting under a stable id, whose
        previous life died holding those claims."""
        ...


class Sender(Protocol):
    """One channel's way of sending (bot.channels.telegram.TelegramSender, …)."""

    @property
    def channel(self) -> str: ...

    async def send(self, item: OutboxItem, now: datetime) -> SendResult:
        """Send one message; never raises for a provider's refusal (it returns the outcome)."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class SentLookup(Protocol):
    """What a `Sender` also implements when its provider can tell whether a message was sent
    (WhatsAppSender does; TelegramSender cannot: the Bot API has no way to list what a bot
    sent)."""

    async def find_sent(self, item: OutboxItem) -> str | None:
        """The provider's id of this in-doubt message if the provider already has it (sent
        since `item.in_doubt_since`), else None. Raises when the provider cannot be asked."""
        ...


def by_rule(item: OutboxItem) -> SendResult | None:
    """Messages that are not sent at all, whatever the channel."""
    if item.unreachable:
        return SendResult.skipped("unreachable")
    if item.lane >= LANE_BULK and item.opted_out:
        return SendResult.skipped("opted_out")
    return None


def reason(result: SendResult) -> str:
    """A small, closed name for why a message went the way it did (a metrics label)."""
    if result.outcome is Outcome.skipped:
        return result.error if result.error in SKIP_REASONS else "other"
    if result.outcome is Outcome.unreachable:
        return "carrier_opt_out" if result.carrier_opt_out else "blocked"
    if result.outcome is Outcome.retry:
        return "in_doubt" if result.in_doubt else "temporary"
    if result.outcome is Outcome.throttled:
        return "rate_limited"
    if result.outcome is Outcome.failed:
        return "permanent"
    return ""


SKIP_REASONS = frozenset({"opted_out", "unreachable", "outside_window"})


def next_attempt(attempts: int, now: datetime) -> datetime | None:
    """When to try again after `attempts` failed attempts; None when it is time to give up."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return now + BACKOFF[max(0, attempts - 1)]
