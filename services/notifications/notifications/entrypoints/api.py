"""The notifications HTTP routes: thin adapters over the service layer."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, status
from kkmp_shared.app import SessionDep
from kkmp_shared.auth import AdminPrincipal, CurrentPrincipal, Principal, StaffPrincipal, require_roles
from kkmp_shared.errors import forbidden
from kkmp_shared.http import ERRORS, IdPath
from kkmp_shared.pagination import PageDep

from notifications.domain.events import MUTABLE_EVENT_TYPES, ROUTABLE_EVENT_TYPES
from notifications.domain.templates import LABELS
from notifications.entrypoints import schemas
from notifications.service_layer import deliveries as delivery_service
from notifications.service_layer import digests, escalation, handlers
from notifications.service_layer.common import now, utc
from notifications.service_layer.recipients import learn_from_token

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
    session: SessionDep,
    principal: CurrentPrincipal,
    page: PageDep,
    unread: Annotated[bool | None, Query(description="true: unread only; false: read only")] = None,
    event_type: Annotated[str | None, Query(max_length=100, pattern=schemas.NO_CONTROL)] = None,
) -> Any:
    person = _person(principal)
    if await learn_from_token(session, person):
        await session.commit()
    rows, total = await handlers.inbox(session, person.sub, unread, event_type, page.limit, page.offset)
    summary = await handlers.inbox_summary(session, person.sub)
    response.headers["X-Total-Count"] = str(total)
    response.headers["X-Unread-Count"] = str(summary["unread"])
    return rows


@inbox.get("/me/notifications/summary", response_model=schemas.InboxSummary, summary="Counts for a badge")
async def my_summary(session: SessionDep, principal: CurrentPrincipal) -> Any:
    return await handlers.inbox_summary(session, _person(principal).sub)


@inbox.post(
    "/me/notifications/read-all", response_model=schemas.MarkedOut, summary="Mark the whole inbox as read"
)
async def read_all(session: SessionDep, principal: CurrentPrincipal) -> Any:
    return {"marked": await handlers.mark_all_read(session, _person(principal).sub)}


@inbox.post(
    "/me/notifications/{notification_id}/read",
    response_model=schemas.NotificationOut,
    summary="Mark one notification as read (idempotent)",
    responses={404: {"model": schemas.ErrorOut, "description": "Unknown, or not the caller's"}},
)
async def read_one(notification_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> Any:
    return await handlers.mark_read(session, _person(principal).sub, notification_id[:64])


@inbox.get("/me/preferences", response_model=schemas.PreferencesOut, summary="The caller's preferences")
async def my_preferences(request: Request, session: SessionDep, principal: CurrentPrincipal) -> Any:
    return await handlers.get_preferences(session, request.app.state.settings, _person(principal).sub)


@inbox.put(
    "/me/preferences",
    response_model=schemas.PreferencesOut,
    summary="Mute event types, choose email, or (officers) a daily digest instead of one message per event",
)
async def set_my_preferences(
    data: schemas.PreferencesIn, request: Request, session: SessionDep, principal: CurrentPrincipal
) -> Any:
    return await handlers.put_preferences(session, request.app.state.settings, _person(principal), data)


@inbox.get("/event-types", response_model=list[schemas.EventTypeOut], summary="Types that can reach an inbox")
async def event_types(_: CurrentPrincipal) -> Any:
    return [
        {"event_type": t, "label": LABELS.get(t, t), "routable": t in ROUTABLE_EVENT_TYPES}
        for t in MUTABLE_EVENT_TYPES
    ]


# --- routing rules -----------------------------------------------------------------------------------------


@rules.get("/routing-rules", response_model=list[schemas.RoutingRuleOut], summary="The routing table")
async def list_rules(
    session: SessionDep,
    _: StaffPrincipal,
    event_type: Annotated[str | None, Query(max_length=100, pattern=schemas.NO_CONTROL)] = None,
) -> Any:
    return await handlers.list_rules(session, event_type)


@rules.post(
    "/routing-rules",
    response_model=schemas.RoutingRuleOut,
    status_code=status.HTTP_201_CREATED,
    summary="Add a routing rule (admin)",
    responses={409: {"model": schemas.ErrorOut, "description": "An identical rule exists"}},
)
async def add_rule(data: schemas.RoutingRuleIn, session: SessionDep, principal: AdminPrincipal) -> Any:
    return await handlers.create_rule(session, principal, data)


@rules.patch(
    "/routing-rules/{rule_id}", response_model=schemas.RoutingRuleOut, summary="Enable or disable (admin)"
)
async def patch_rule(
    rule_id: IdPath, data: schemas.RoutingRulePatch, session: SessionDep, _: AdminPrincipal
) -> Any:
    return await handlers.set_rule_enabled(session, rule_id[:36], data.enabled)


@rules.delete(
    "/routing-rules/{rule_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an added rule (admin); contract rules can only be disabled",
)
async def remove_rule(rule_id: IdPath, session: SessionDep, _: AdminPrincipal) -> Response:
    await handlers.delete_rule(session, rule_id[:36])
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- subscriptions -----------------------------------------------------------------------------------------


@subscriptions.post(
    "/subscriptions",
    response_model=schemas.SubscriptionCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Subscribe a webhook or an email address to event types (admin, officer)",
)
async def subscribe(
    data: schemas.SubscriptionIn, request: Request, session: SessionDep, principal: CurrentPrincipal
) -> Any:
    return await handlers.create_subscription(session, request.app.state.settings, principal, data)


@subscriptions.get("/subscriptions", response_model=list[schemas.SubscriptionOut])
async def list_subscriptions(
    session: SessionDep, principal: CurrentPrincipal, page: PageDep, active: bool | None = None
) -> Any:
    return await handlers.list_subscriptions(session, principal, active, page.limit, page.offset)


@subscriptions.get("/subscriptions/{subscription_id}", response_model=schemas.SubscriptionOut)
async def get_subscription(subscription_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> Any:
    return await handlers.get_subscription(session, principal, subscription_id[:36])


@subscriptions.delete(
    "/subscriptions/{subscription_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Switch a subscription off (its deliveries stay on record)",
)
async def unsubscribe(subscription_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> Response:
    await handlers.deactivate_subscription(session, principal, subscription_id[:36])
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- deliveries --------------------------------------------------------------------------------------------


@deliveries.get(
    "/deliveries",
    response_model=schemas.DeliveryList,
    summary="Push deliveries with every attempt (admin; officers see their subscriptions')",
)
async def list_deliveries(
    session: SessionDep,
    principal: CurrentPrincipal,
    page: PageDep,
    status_: Annotated[
        Literal["pending", "delivering", "delivered", "failed"] | None, Query(alias="status")
    ] = None,
    channel: Literal["email", "webhook"] | None = None,
    subscription_id: Annotated[str | None, Query(max_length=36, pattern=schemas.NO_CONTROL)] = None,
    event_id: Annotated[str | None, Query(max_length=64, pattern=schemas.NO_CONTROL)] = None,
) -> Any:
    return await handlers.list_deliveries(
        session,
        principal,
        status=status_,
        channel=channel,
        subscription_id=subscription_id,
        event_id=event_id,
        limit=page.limit,
        offset=page.offset,
    )


@deliveries.get("/deliveries/{delivery_id}", response_model=schemas.DeliveryOut)
async def get_delivery(delivery_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> Any:
    return await handlers.get_delivery(session, principal, delivery_id[:36])


@deliveries.post(
    "/deliveries/{delivery_id}/retry",
    response_model=schemas.DeliveryOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a failed delivery again (admin)",
    responses={409: {"model": schemas.ErrorOut, "description": "The delivery has not failed"}},
)
async def retry_delivery(
    delivery_id: IdPath, request: Request, session: SessionDep, principal: AdminPrincipal
) -> Any:
    await delivery_service.retry(session, delivery_id[:36], request.app.state.settings.delivery_max_attempts)
    await session.commit()
    worker = getattr(request.app.state, "delivery_worker", None)
    if worker is not None:
        worker.wake()
    return await handlers.get_delivery(session, principal, delivery_id[:36])


# --- jobs and announcements ---------------------------------------------------------------------------------


@jobs.post(
    "/escalations/run",
    response_model=schemas.EscalationRunOut,
    summary="Escalate needs unacknowledged past the configured time (also runs on a schedule)",
)
async def run_escalations(request: Request, _: EscalationPrincipal, data: schemas.RunIn | None = None) -> Any:
    as_of = utc(data.as_of) if data and data.as_of else now()
    count = await escalation.escalate_due(request.app.state.db, request.app.state.notifier, as_of)
    return {"escalated": count, "as_of": as_of}


@jobs.post(
    "/digests/run",
    response_model=schemas.DigestRunOut,
    summary="Send the daily digests that are due at `as_of` (also runs on a schedule)",
)
async def run_digests(request: Request, _: JobPrincipal, data: schemas.RunIn | None = None) -> Any:
    as_of = utc(data.as_of) if data and data.as_of else now()
    result = await digests.send_due(request.app.state.db, request.app.state.notifier, as_of)
    return {**result, "as_of": as_of}


@jobs.post(
    "/announcements",
    response_model=schemas.AnnouncementOut,
    status_code=status.HTTP_201_CREATED,
    summary="Write to users' inboxes by role and place (admin; officers within their scope)",
)
async def make_announcement(
    data: schemas.AnnouncementIn, request: Request, session: SessionDep, principal: StaffPrincipal
) -> Any:
    return await handlers.announce(session, request.app.state.settings, principal, data)


ROUTERS = [inbox, rules, subscriptions, deliveries, jobs]
