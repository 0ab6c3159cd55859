"""Which event types the service reacts to, and the internal event types it makes up itself.

Everything the contract publishes that concerns people can be routed: the routing table (data, not
code) decides who hears about it. High-volume facts (one `stock.moved` per movement, one
`member.joined` per member), personal data (`user.created`) and our own `notification.*` events are
not routable, so they never reach the alerts queue.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from kkmp_shared.events.contracts import EVENT_MODELS, CooperativeRef, EventData, NeedKind

NOT_ROUTABLE = frozenset(
    {
        "stock.moved.v1",
        "member.joined.v1",
        "user.created.v1",
        "notification.delivered.v1",
        "notification.failed.v1",
    }
)

#: Contract event types the alerts queue is bound to.
ROUTABLE_EVENT_TYPES: tuple[str, ...] = tuple(t for t in EVENT_MODELS if t not in NOT_ROUTABLE)


class NeedEscalated(CooperativeRef):
    """Made up by this service when a submitted need stays unacknowledged too long (not on the bus)."""

    event_type: ClassVar[str] = "need.escalated"
    summary: ClassVar[str] = "A need stayed unacknowledged past the escalation time."
    need_id: str
    kind: NeedKind
    commodity: str | None = None
    description: str | None = None
    submitted_at: datetime
    waited_hours: int
    escalated_at: datetime


#: Types that never wait for a daily digest: an escalation held until the next morning is no escalation.
URGENT_TYPES = frozenset({NeedEscalated.event_type})

DIGEST_TYPE = "digest.daily"
ANNOUNCEMENT_TYPE = "announcement"

#: Internal types that routing rules may name (they are not events on the bus).
INTERNAL_MODELS: dict[str, type[EventData]] = {NeedEscalated.event_type: NeedEscalated}


def routable_model(event_type: str) -> type[EventData] | None:
    """The data model of a type a routing rule may name, or None."""
    if event_type in INTERNAL_MODELS:
        return INTERNAL_MODELS[event_type]
    if event_type in ROUTABLE_EVENT_TYPES:
        return EVENT_MODELS[event_type]
    return None


#: Types a user may mute (everything that can reach an inbox).
MUTABLE_EVENT_TYPES: tuple[str, ...] = (*ROUTABLE_EVENT_TYPES, *INTERNAL_MODELS, ANNOUNCEMENT_TYPE)
