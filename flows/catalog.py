"""The flows that make up the bot, wired into one engine."""

from __future__ import annotations

from flows.appointments import AppointmentsFlow
from flows.booking import BookingFlow
from flows.contacts import ContactsFlow
from flows.desk import DeskFlow
from flows.engine import Engine
from flows.info import InfoFlow
from flows.language import LanguageFlow
from flows.menu import MenuFlow
from flows.status import StatusFlow
from flows.waitlist import WaitlistFlow


def build_engine() -> Engine:
    return Engine(
        [
            MenuFlow(),
            LanguageFlow(),
            BookingFlow(),
            AppointmentsFlow(),
            StatusFlow(),
            InfoFlow(),
            ContactsFlow(),
            WaitlistFlow(),
            DeskFlow(),
        ]
    )
