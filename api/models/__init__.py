"""The tables. SQLModel classes, one per entity, one module per part of the house; times are
UTC instants (see api.models.base.UTCDateTime). Importing this package registers them all."""

from api.models.base import UTCDateTime, utcnow
from api.models.broadcasts import (
    Broadcast,
    BroadcastStatus,
)
from api.models.citizens import (
    ChannelIdentity,
    Citizen,
    ConversationStart,
    InboundMessage,
)
from api.models.desk import (
    DeskAnswer,
    DeskConversation,
    DeskMessage,
    DeskStatus,
)
from api.models.network import (
    Appointment,
    AppointmentStatus,
    Closure,
    Draw,
    DrawEntry,
    LimitLift,
    OpeningHours,
    Post,
    PostService,
    Service,
    Slot,
    WaitlistEntry,
    WaitlistStatus,
)
from api.models.outbox import (
    Lane,
    OutboxMessage,
    OutboxStatus,
)
from api.models.requests import (
    ConsularRequest,
    LookupGuard,
    RequestEvent,
    RequestSequence,
    RequestStatus,
)
from api.models.staff import (
    ApiToken,
    AuditLog,
    ConsoleLogin,
    Staff,
    StaffLanguage,
    StaffPost,
    StaffRole,
)
from api.models.translations import (
    GlossaryTerm,
    Translation,
    TranslationVersion,
    VoicePrompt,
)

__all__ = [
    "ApiToken",
    "Appointment",
    "AppointmentStatus",
    "AuditLog",
    "Broadcast",
    "BroadcastStatus",
    "ChannelIdentity",
    "Citizen",
    "Closure",
    "ConsoleLogin",
    "ConsularRequest",
    "ConversationStart",
    "DeskAnswer",
    "DeskConversation",
    "DeskMessage",
    "DeskStatus",
    "Draw",
    "DrawEntry",
    "GlossaryTerm",
    "InboundMessage",
    "Lane",
    "LimitLift",
    "LookupGuard",
    "OpeningHours",
    "OutboxMessage",
    "OutboxStatus",
    "Post",
    "PostService",
    "RequestEvent",
    "RequestSequence",
    "RequestStatus",
    "Service",
    "Slot",
    "Staff",
    "StaffLanguage",
    "StaffPost",
    "StaffRole",
    "Translation",
    "TranslationVersion",
    "UTCDateTime",
    "VoicePrompt",
    "WaitlistEntry",
    "WaitlistStatus",
    "utcnow",
]
