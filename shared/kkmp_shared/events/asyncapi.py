"""AsyncAPI 2.6 document generated from the event contracts, for `GET /asyncapi.json`."""

from __future__ import annotations

from typing import Any

from kkmp_shared.events.contracts import EVENT_MODELS, EventData
from kkmp_shared.events.envelope import CloudEvent


def asyncapi_document(
    service: str,
    publishes: list[type[EventData]],
    consumes: list[type[EventData]],
    exchange: str = "kkmp.events",
    queues: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """Channels are routing keys of the `kkmp.events` topic exchange; the service's role on each is
    `subscribe` (it publishes, so others can subscribe) or `publish` (it consumes)."""
    channels: dict[str, Any] = {}
    envelope_schema = CloudEvent.model_json_schema()
    queue_of = {t: q for q, types in (queues or {}).items() for t in types}

    def message(model: type[EventData]) -> dict[str, Any]:
        return {
            "name": model.event_type,
            "title": model.__name__,
            "summary": model.summary,
            "contentType": "application/cloudevents+json",
            "headers": {"type": "object", "properties": {"traceparent": {"type": "string"}}},
            "payload": {
                "allOf": [
                    {"$ref": "#/components/schemas/CloudEvent"},
                    {
                        "type": "object",
                        "properties": {
                            "type": {"const": model.event_type},
                            "data": model.model_json_schema(),
                        },
                    },
                ]
            },
        }

    for model in publishes:
        channels.setdefault(model.event_type, {})["subscribe"] = {
            "operationId": f"{service}_publishes_{model.event_type}",
            "message": message(model),
        }
    for model in consumes:
        entry = channels.setdefault(model.event_type, {})
        entry["publish"] = {
            "operationId": f"{service}_consumes_{model.event_type}",
            "message": message(model),
        }
        if model.event_type in queue_of:
            entry["x-queue"] = queue_of[model.event_type]
    for entry in channels.values():
        entry["bindings"] = {
            "amqp": {
                "is": "routingKey",
                "exchange": {"name": exchange, "type": "topic", "durable": True, "autoDelete": False},
            }
        }
    return {
        "asyncapi": "2.6.0",
        "info": {
            "title": f"KKMP {service} events",
            "version": "1.0.0",
            "description": "Events are CloudEvents 1.0 in structured JSON on the topic exchange "
            f"`{exchange}`; the routing key is the event type.",
        },
        "defaultContentType": "application/cloudevents+json",
        "channels": channels,
        "components": {"schemas": {"CloudEvent": envelope_schema}},
    }


def full_catalogue() -> dict[str, Any]:
    """Every event of the platform (for the README and operators)."""
    models = list(EVENT_MODELS.values())
    return asyncapi_document("platform", publishes=models, consumes=[])
