"""The CloudEvents 1.0 structured-mode envelope every KKMP event travels in."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kkmp_shared import clock
from kkmp_shared.events.contracts import EventData


class CloudEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    specversion: str = "1.0"
    id: str
    source: str
    type: str
    time: datetime
    subject: str | None = None
    datacontenttype: str = "application/json"
    data: dict[str, Any] = Field(default_factory=dict)
    traceparent: str | None = None
    tracestate: str | None = None


def new_event(
    data: EventData, *, source: str, subject: str | None = None, traceparent: str | None = None
) -> CloudEvent:
    """Wrap event data in an envelope; the subject defaults to the data's cooperative."""
    if subject is None:
        subject = getattr(data, "cooperative_id", None)
    return CloudEvent(
        id=str(uuid.uuid4()),
        source=source if source.startswith("/") else f"/{source}",
        type=data.event_type,
        time=clock.now(),
        subject=subject,
        data=data.model_dump(mode="json"),
        traceparent=traceparent,
    )
