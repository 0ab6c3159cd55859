"""The routing table as the administrator keeps it: the contract's rules seeded, rules added,
enabled, disabled and deleted."""

from __future__ import annotations

import json
from typing import Any

from kkmp_shared.auth import Principal
from kkmp_shared.errors import conflict, not_found, unprocessable
from kkmp_shared.unit_of_work import UnitOfWork
from sqlalchemy.ext.asyncio import AsyncSession

from notifications.adapters import rules
from notifications.domain.events import routable_model
from notifications.domain.routing import CONTRACT_RULES, DEFAULT_MATCH_FIELD, RoutingRule
from notifications.service_layer.commands import AddRoutingRule
from notifications.service_layer.common import new_id, now


def _conditions_key(when: dict[str, list[str]]) -> str:
    return json.dumps({k: sorted(v) for k, v in sorted(when.items())}, separators=(",", ":"))[:500]


def _rule_values(rule: RoutingRule, *, builtin: bool, created_by: str | None) -> dict[str, Any]:
    moment = now()
    when = {k: list(v) for k, v in rule.when.items()}
    return {
        "id": new_id(),
        "event_type": rule.event_type,
        "audience": rule.audience,
        "match_field": rule.match_field or "",
        "conditions": when,
        "conditions_key": _conditions_key(when),
        "enabled": rule.enabled,
        "builtin": builtin,
        "created_by": created_by,
        "created_at": moment,
        "updated_at": moment,
    }


async def seed_contract_rules(uow: UnitOfWork) -> int:
    """Insert the contract's rules that are missing; existing ones (maybe disabled) stay as they are."""
    return await rules.add_missing(
        uow.session, [_rule_values(rule, builtin=True, created_by=None) for rule in CONTRACT_RULES]
    )


async def list_rules(session: AsyncSession, event_type: str | None) -> list[dict[str, Any]]:
    return await rules.listed(session, event_type)


async def create_rule(uow: UnitOfWork, principal: Principal, command: AddRoutingRule) -> dict[str, Any]:
    model = routable_model(command.event_type)
    assert model is not None  # the request model checked it
    fields = set(model.model_fields)
    effective = command.match_field or DEFAULT_MATCH_FIELD.get(command.audience)
    if command.audience == "admins" and command.match_field:
        raise unprocessable("match_field", "The admins audience is not matched on a field.")
    if effective and effective not in fields:
        raise unprocessable(
            "match_field",
            f"{command.event_type} carries no field {effective!r} (it has: {', '.join(sorted(fields))}).",
        )
    for name in command.when:
        if name not in fields:
            raise unprocessable(f"when.{name}", f"{command.event_type} carries no field {name!r}.")
    match_field = (
        ""
        if command.match_field == DEFAULT_MATCH_FIELD.get(command.audience)
        else (command.match_field or "")
    )
    rule = RoutingRule(
        command.event_type,
        command.audience,
        match_field or None,
        {k: tuple(v) for k, v in command.when.items()},
        command.enabled,
    )
    try:
        return await rules.add(uow.session, _rule_values(rule, builtin=False, created_by=principal.sub))
    except rules.DuplicateRule as exc:
        raise conflict("duplicate_rule", "An identical routing rule exists already.") from exc


async def set_rule_enabled(uow: UnitOfWork, rule_id: str, enabled: bool) -> dict[str, Any]:
    if not await rules.set_enabled(uow.session, rule_id, enabled, now()):
        raise not_found("routing rule")
    return await rules.one(uow.session, rule_id)


async def delete_rule(uow: UnitOfWork, rule_id: str) -> None:
    builtin = await rules.is_builtin(uow.session, rule_id)
    if builtin is None:
        raise not_found("routing rule")
    if builtin:
        raise conflict("builtin_rule", "A rule of the contract cannot be deleted; disable it instead.")
    await rules.remove(uow.session, rule_id)
