"""Local fake provider servers (Telegram Bot API, Twilio Messages API) for tests."""

from tests.fakes._base import Call
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.fakes.twilio_api import FakeTwilioAPI

__all__ = ["Call", "FakeTelegramAPI", "FakeTwilioAPI"]
