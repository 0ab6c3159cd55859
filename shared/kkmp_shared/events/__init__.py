"""Events: the CloudEvents envelope and the versioned data model of every event in the contract."""

from kkmp_shared.events.contracts import EVENT_MODELS, EventData, event_model
from kkmp_shared.events.envelope import CloudEvent, new_event

__all__ = ["EVENT_MODELS", "CloudEvent", "EventData", "event_model", "new_event"]
