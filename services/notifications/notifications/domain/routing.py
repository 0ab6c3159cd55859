"""The routing table: which event types reach which people (penerima), decided by data.

A rule says: for events of `event_type` (optionally only when some data fields have given values),
notify an *audience*, matched on one field of the event's data:

- `cooperative_managers`: the pengurus of the cooperative named by `match_field` (default `cooperative_id`);
- `officers_in_scope`: Dinkopdag officers whose kecamatan scope covers `match_field` (default
  `kecamatan_code`; an officer with no kecamatan covers the whole city);
- `supervisors_in_scope`: the same, limited to officers flagged as supervisors;
- `admins`: every administrator;
- `supplier`: the supplier's users named by `match_field` (default `supplier_id`).

The contract's table is seeded as built-in rules; administrators add more through the API. Nothing in
the code branches on an event type to decide who is told.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

Audience = Literal["cooperative_managers", "officers_in_scope", "supervisors_in_scope", "admins", "supplier"]
AUDIENCES: tuple[str, ...] = get_args(Audience)

DEFAULT_MATCH_FIELD: dict[str, str | None] = {
    "cooperative_managers": "cooperative_id",
    "officers_in_scope": "kecamatan_code",
    "supervisors_in_scope": "kecamatan_code",
    "admins": None,
    "supplier": "supplier_id",
}


@dataclass(frozen=True)
class RoutingRule:
    event_type: str
    audience: str
    match_field: str | None = None
    when: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    enabled: bool = True
    id: str | None = None

    @property
    def field_name(self) -> str | None:
        return self.match_field if self.match_field is not None else DEFAULT_MATCH_FIELD.get(self.audience)


@dataclass(frozen=True)
class Target:
    """One audience to resolve: e.g. (`officers_in_scope`, "35.78.09")."""

    audience: str
    value: str | None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def rule_applies(rule: RoutingRule, data: Mapping[str, Any]) -> bool:
    """Enabled, and every `when` condition holds (each field's value is one of those listed)."""
    if not rule.enabled:
        return False
    return all(_text(data.get(name)) in allowed for name, allowed in rule.when.items())


def targets(rules: Iterable[RoutingRule], data: Mapping[str, Any]) -> list[Target]:
    """The audiences an event reaches, without repeats; a rule whose field is empty reaches nobody."""
    found: list[Target] = []
    for rule in rules:
        if not rule_applies(rule, data):
            continue
        name = rule.field_name
        value = _text(data.get(name)) if name else None
        if name and not value:
            continue
        target = Target(rule.audience, value)
        if target not in found:
            found.append(target)
    return found


def _rule(
    event_type: str, audience: str, match_field: str | None = None, **when: tuple[str, ...]
) -> RoutingRule:
    return RoutingRule(event_type, audience, match_field, when)


#: The contract's "who gets what", seeded as built-in rules (the admin may disable, never delete them).
CONTRACT_RULES: tuple[RoutingRule, ...] = (
    *(
        rule
        for event_type in (
            "stock.stalled.v1",
            "stock.low.v1",
            "stock.stockout.v1",
            "price.ceiling_exceeded.v1",
        )
        for rule in (_rule(event_type, "cooperative_managers"), _rule(event_type, "officers_in_scope"))
    ),
    _rule("need.submitted.v1", "officers_in_scope"),
    _rule("need.status_changed.v1", "cooperative_managers"),
    # Both sides of a proposal: the cooperative whose stock stalled and the one that would take it.
    _rule("redistribution.proposed.v1", "cooperative_managers", "cooperative_id"),
    _rule("redistribution.proposed.v1", "cooperative_managers", "to_cooperative_id"),
    _rule("cooperative.health_changed.v1", "officers_in_scope", new_level=("tidak_aktif",)),
    _rule("report.overdue.v1", "cooperative_managers"),
    _rule("report.overdue.v1", "officers_in_scope"),
    _rule("order.delivered.v1", "cooperative_managers"),
    # Escalation of a need nobody acknowledged: the supervisors whose scope covers the cooperative.
    _rule("need.escalated", "supervisors_in_scope"),
)

#: What identifies "the same condition" per event type, for the repeat window (no alert storms).
CONDITION_FIELDS: dict[str, tuple[str, ...]] = {
    "stock.stalled.v1": ("cooperative_id", "commodity"),
    "stock.low.v1": ("cooperative_id", "commodity"),
    "stock.stockout.v1": ("cooperative_id", "commodity"),
    "stock.recovered.v1": ("cooperative_id", "commodity", "condition"),
    "price.ceiling_exceeded.v1": ("cooperative_id", "commodity"),
    "cooperative.health_changed.v1": ("cooperative_id", "new_level"),
    "report.overdue.v1": ("cooperative_id", "period"),
}


def condition_key(event_type: str, data: Mapping[str, Any]) -> str | None:
    """A key naming the condition an event announces, or None for events that are each news."""
    fields = CONDITION_FIELDS.get(event_type)
    if not fields or any(data.get(f) in (None, "") for f in fields):
        return None
    return "|".join([event_type, *(str(data[f]) for f in fields)])[:300]


def event_kecamatans(data: Mapping[str, Any]) -> list[str]:
    """The kecamatan an event concerns (both sides for a redistribution), for subscription filters."""
    codes = [data.get("kecamatan_code"), data.get("to_kecamatan_code")]
    return sorted({str(c) for c in codes if c})
