"""The notifications HTTP routes: thin adapters over the service layer."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, status
from kkmp_shared.app import ReadSessionDep, UowDep
from kkmp_shared.auth import AdminPrincipal, CurrentPrincipal, Principal, StaffPrincipal, require_roles
from kkmp_shared.bootstrap import Platform
from kkmp_shared.errors import forbidden
from kkmp_shared.http import ERRORS, IdPath
from kkmp_shared.pagination import PageDep
from kkmp_shared.timeutil import as_utc as utc

from notifications.domain.events import MUTABLE_EVENT_TYPES, ROUTABLE_EVENT_TYPES
from notifications.domain.templates import LABELS
from notifications.entrypoints import schemas
from notifications.service_layer import (
    announcements,
    delivery_log,
    digests,
    escalation,
    routing_rules,
)
from notifications.service_layer import (
    inbox as inbox_service,
)
from notifications.service_layer import subscriptions as subscription_service
from notifications.service_layer.commands import (
    AddRoutingRule,
    Announce,
    ChangePreferences,
    DeliveryFilter,
    Subscribe,
)
from notifications.service_layer.common import now
from notifications.service_layer.deliveries import DeliveryWorker
from notifications.service_layer.fanout import Notifier
from notifications.settings import NotificationsSettings

# Every route documents the error format with the statuses it may answer (the contract's list).
inbox = APIRouter(tags=["inbox"], responses=ERRORS)
rules = APIRouter(tags=["routing rules"], responses=ERRORS)
subscriptions = APIRouter(tags=["subscriptions"], responses=ERRORS)
deliveries = APIRouter(tags=["deliveries"], responses=ERRORS)
jobs = APIRouter(tags=["jobs"], responses=ERRORS)

# Ids in the path: a control character (NUL above all, which PostgreSQL cannot even compare) is bad
# input (422); any other unknown id is a 404.
JobPrincipal = Annotated[Principal, require_roles("admin", "service")]
EscalationPrincipal = Annotated[Principal, require_roles("admin", "officer", "service")]


def _built(name: str) -> Any:
    """What bootstrap built once (`create_service_app(state=...)`), for the routes that need it."""

    def read(request: Request) -> Any:
        return getattr(request.app.state, name)

    return Depends(read)


SettingsDep = Annotated[NotificationsSettings, _built("settings")]
PlatformDep = Annotated[Platform, _built("platform")]
NotifierDep = Annotated[Notifier, _built("notifier")]
WorkerDep = Annotated[DeliveryWorker, _built("delivery_worker")]


def _person(principal: Principal) -> Principal:
    if principal.role == "service":
        raise forbidden("A service client has no inbox.")
    return principal


# --- inbox and preferences ---------------------------------------------------------------------------------


@inbox.get(
    "/me/notifications",
    response_model=list[schemas.NotificationOut],
    summary="The caller's in-app inbox, newest first",
    description="Headers: `X-Total-Count` (matching the filter) and `X-Unread-Count` (whole inbox).",
)
async def my_notifications(
    response: Response,
    uow: UowDep,
    principal: CurrentPrincipal,
    page: PageDep,
    unread: Annotated[bool | None, Query(description="true: unread only; false: read only")] = None,
    event_type: Annotated[str | None, Query(max_length=100, pattern=schemas.NO_CONTROL)] = None,
) -> Any:
    rows, total, unread_count = await inbox_service.inbox_page(
        uow, _person(principal), unread, event_type, page.limit, page.offset
    )
    response.headers["X-Total-Count"] = str(total)
    response.headers["X-Unread-Count"] = str(unread_count)
    return rows


@inbox.get("/me/notifications/summary", response_model=schemas.InboxSummary, summary="Counts for a badge")
async def my_summary(session: ReadSessionDep, principal: CurrentPrincipal) -> Any:
    return await inbox_service.inbox_summary(session, _person(principal).sub)


@inbox.post(
    "/me/notifications/read-all", response_model=schemas.MarkedOut, summary="Mark the whole inbox as read"
)
async def read_all(uow: UowDep, principal: CurrentPrincipal) -> Any:
    return {"marked": await inbox_service.mark_all_read(uow, _person(principal).sub)}


@inbox.post(
    "/me/notifications/{notification_id}/read",
    response_model=schemas.NotificationOut,
    summary="Mark one notification as read (idempotent)",
    responses={404: {"model": schemas.ErrorOut, "description": "Unknown, or not the caller's"}},
)
async def read_one(notification_id: IdPath, uow: UowDep, principal: CurrentPrincipal) -> Any:
    return await inbox_service.mark_read(uow, _person(principal).sub, notification_id[:64])


@inbox.get("/me/preferences", response_model=schemas.PreferencesOut, summary="The caller's preferences")
async def my_preferences(session: ReadSessionDep, settings: SettingsDep, principal: CurrentPrincipal) -> Any:
    return await inbox_service.get_preferences(session, _person(principal).sub, settings.digest_hour_wib)


@inbox.put(
    "/me/preferences",
    response_model=schemas.PreferencesOut,
    summary="Mute event types, choose email, or (officers) a daily digest instead of one message per event",
)
async def set_my_preferences(
    data: schemas.PreferencesIn, uow: UowDep, settings: SettingsDep, principal: CurrentPrincipal
) -> Any:
    change = ChangePreferences(data.muted_event_types, data.digest, data.email)
    return await inbox_service.put_preferences(uow, _person(principal), change, settings.digest_hour_wib)


@inbox.get("/event-types", response_model=list[schemas.EventTypeOut], summary="Types that can reach an inbox")
async def event_types(_: CurrentPrincipal) -> Any:
    return [
        {"event_type": t, "label": LABELS.get(t, t), "routable": t in ROUTABLE_EVENT_TYPES}
        for t in MUTABLE_EVENT_TYPES
    ]


# --- routing rules -----------------------------------------------------------------------------------------


@rules.get("/routing-rules", response_model=list[schemas.RoutingRuleOut], summary="The routing table")
async def list_rules(
    session: ReadSessionDep,
    _: StaffPrincipal,
    event_type: Annotated[str | None, Query(max_length=100, pattern=schemas.NO_CONTROL)] = None,
) -> Any:
    return await routing_rules.list_rules(session, event_type)


@rules.post(
    "/routing-rules",
    response_model=schemas.RoutingRuleOut,
    status_code=status.HTTP_201_CREATED,
    summary="Add a routing rule (admin)",
    responses={409: {"model": schemas.ErrorOut, "description": "An identical rule exists"}},
)
async def add_rule(data: schemas.RoutingRuleIn, uow: UowDep, principal: AdminPrincipal) -> Any:
    command = AddRoutingRule(data.event_type, data.audience, data.match_field, data.when, data.enabled)
    return await routing_rules.create_rule(uow, principal, command)


@rules.patch(
    "/routing-rules/{rule_id}", response_model=schemas.RoutingRuleOut, summary="Enable or disable (admin)"
)
async def patch_rule(rule_id: IdPath, data: schemas.RoutingRulePatch, uow: UowDep, _: AdminPrincipal) -> Any:
    return await routing_rules.set_rule_enabled(uow, rule_id[:36], data.enabled)


@rules.delete(
    "/routing-rules/{rule_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an added rule (admin); contract rules can only be disabled",
)
async def remove_rule(rule_id: IdPath, uow: UowDep, _: AdminPrincipal) -> Response:
    await routing_rules.delete_rule(uow, rule_id[:36])
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- subscriptions -----------------------------------------------------------------------------------------


@subscriptions.post(
    "/subscriptions",
    response_model=schemas.SubscriptionCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Subscribe a webhook or an email address to event types (admin, officer)",
)
async def subscribe(
    data: schemas.SubscriptionIn, uow: UowDep, settings: SettingsDep, principal: CurrentPrincipal
) -> Any:
    command = Subscribe(data.channel, data.target, data.event_types, data.kecamatan_codes, data.description)
    return await subscription_service.create_subscription(
        uow, principal, command, allow_internal_webhooks=settings.allow_internal_webhooks
    )


@subscriptions.get("/subscriptions", response_model=list[schemas.SubscriptionOut])
async def list_subscriptions(
    session: ReadSessionDep, principal: CurrentPrincipal, page: PageDep, active: bool | None = None
) -> Any:
    return await subscription_service.list_subscriptions(session, principal, active, page.limit, page.offset)


@subscriptions.get("/subscriptions/{subscription_id}", response_model=schemas.SubscriptionOut)
async def get_subscription(
    subscription_id: IdPath, session: ReadSessionDep, principal: CurrentPrincipal
) -> Any:
    return await subscription_service.get_subscription(session, principal, subscription_id[:36])


@subscriptions.delete(
    "/subscriptions/{subscription_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Switch a subscription off (its deliveries stay on record)",
)
async def unsubscribe(subscription_id: IdPath, uow: UowDep, principal: CurrentPrincipal) -> Response:
    await subscription_service.deactivate_subscription(uow, principal, subscription_id[:36])
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- deliveries --------------------------------------------------------------------------------------------


@deliveries.get(
    "/deliveries",
    response_model=schemas.DeliveryList,
    summary="Push deliveries with every attempt (admin; officers see their subscriptions')",
)
async def list_deliveries(
    session: ReadSessionDep,
    principal: CurrentPrincipal,
    page: PageDep,
    status_: Annotated[
        Literal["pending", "delivering", "delivered", "failed"] | None, Query(alias="status")
    ] = None,
    channel: Literal["email", "webhook"] | None = None,
    subscription_id: Annotated[str | None, Query(max_length=36, pattern=schemas.NO_CONTROL)] = None,
    event_id: Annotated[str | None, Query(max_length=64, pattern=schemas.NO_CONTROL)] = None,
) -> Any:
    wanted = DeliveryFilter(status_, channel, subscription_id, event_id)
    return await delivery_log.list_deliveries(session, principal, wanted, page.limit, page.offset)


@deliveries.get("/deliveries/{delivery_id}", response_model=schemas.DeliveryOut)
async def get_delivery(delivery_id: IdPath, session: ReadSessionDep, principal: CurrentPrincipal) -> Any:
    return await delivery_log.get_delivery(session, principal, delivery_id[:36])


@deliveries.post(
    "/deliveries/{delivery_id}/retry",
    response_model=schemas.DeliveryOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a failed delivery again (admin)",
    responses={409: {"model": schemas.ErrorOut, "description": "The delivery has not failed"}},
)
async def retry_delivery(
    delivery_id: IdPath, uow: UowDep, settings: SettingsDep, worker: WorkerDep, principal: AdminPrincipal
) -> Any:
    return await delivery_log.retry(
        uow, principal, delivery_id[:36], settings.delivery_max_attempts, worker.wake
    )


# --- jobs and announcements ---------------------------------------------------------------------------------


@jobs.post(
    "/escalations/run",
    response_model=schemas.EscalationRunOut,
    summary="Escalate needs unacknowledged past the configured time (also runs on a schedule)",
)
async def run_escalations(
    platform: PlatformDep, notifier: NotifierDep, _: EscalationPrincipal, data: schemas.RunIn | None = None
) -> Any:
    as_of = utc(data.as_of) if data and data.as_of else now()
    count = await escalation.escalate_due(platform.unit_of_work, notifier, as_of)
    return {"escalated": count, "as_of": as_of}


@jobs.post(
    "/digests/run",
    response_model=schemas.DigestRunOut,
    summary="Send the daily digests that are due at `as_of` (also runs on a schedule)",
)
async def run_digests(
    platform: PlatformDep, notifier: NotifierDep, _: JobPrincipal, data: schemas.RunIn | None = None
) -> Any:
    as_of = utc(data.as_of) if data and data.as_of else now()
    result = await digests.send_due(platform.unit_of_work, notifier, as_of)
    return {**result, "as_of": as_of}


@jobs.post(
    "/announcements",
    response_model=schemas.AnnouncementOut,
    status_code=status.HTTP_201_CREATED,
    summary="Write to users' inboxes by role and place (admin; officers within their scope)",
)
async def make_announcement(
    data: schemas.AnnouncementIn, uow: UowDep, settings: SettingsDep, principal: StaffPrincipal
) -> Any:
    command = Announce(
        data.title,
        data.body,
        data.roles,
        data.kecamatan_codes,
        data.cooperative_ids,
        data.link,
        data.created_at,
    )
    return await announcements.announce(uow, principal, command, settings.portal_url)


ROUTERS = [inbox, rules, subscriptions, deliveries, jobs]
