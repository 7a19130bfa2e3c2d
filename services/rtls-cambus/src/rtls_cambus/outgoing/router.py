"""HTTP endpoints of outgoing webhooks: `/api/v1/webhooks[...]`, for admins not bound to a tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from mirante.db import Session
from mirante.web.pagination import Page, Pagination
from rtls_cambus.deps import AppSettings, SuiteAdmin
from rtls_cambus.outgoing import service
from rtls_cambus.outgoing.deps import Policy, WebhookInterest
from rtls_cambus.outgoing.event_types import SUITE_EVENT_TYPES
from rtls_cambus.outgoing.models import WebhookDelivery
from rtls_cambus.outgoing.schemas import (
    AttemptRead,
    DeliveryId,
    DeliveryRead,
    DeliveryStatus,
    EventTypeRead,
    SecretRotation,
    SubscriptionCreate,
    SubscriptionId,
    SubscriptionRead,
    SubscriptionUpdate,
    SubscriptionWithSecret,
)

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])
# `{subscription_id:int}` matches digits only: `/event-types` is a sibling of these paths, and a PATCH or DELETE
# there must be a 405, not a subscription route refusing its id.


def _delivery(delivery: WebhookDelivery, attempts: list[AttemptRead] | None = None) -> DeliveryRead:
    read = DeliveryRead.model_validate(
        {
            **{k: getattr(delivery, k) for k in DeliveryRead.model_fields if k != "attempt_log"},
            "event_id": str(delivery.event_id),
        }
    )
    read.attempt_log = attempts or []
    return read


@router.get("/event-types")
async def list_event_types(principal: SuiteAdmin) -> list[EventTypeRead]:
    """Every event type of the suite a subscription may name."""
    return [EventTypeRead(type=name, description=text) for name, text in sorted(SUITE_EVENT_TYPES.items())]


@router.get("")
async def list_subscriptions(session: Session, principal: SuiteAdmin, pagination: Pagination) -> Page[SubscriptionRead]:
    found, count = await service.list_subscriptions(session, offset=pagination.offset, limit=pagination.limit)
    return pagination.build([SubscriptionRead.model_validate(row) for row in found], count)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_subscription(
    session: Session,
    principal: SuiteAdmin,
    policy: Policy,
    interest: WebhookInterest,
    body: SubscriptionCreate,
    response: Response,
) -> SubscriptionWithSecret:
    """Subscribe a URL to event types. The answer holds the secret, which is never shown again. 422 when the URL
    is refused by the target policy or a type is unknown."""
    subscription = await service.create_subscription(session, policy, body, interest)
    response.headers["Location"] = f"/api/v1/webhooks/{subscription.id}"
    return SubscriptionWithSecret.model_validate(subscription)


@router.get("/{subscription_id:int}")
async def get_subscription(
    session: Session, principal: SuiteAdmin, subscription_id: SubscriptionId
) -> SubscriptionRead:
    return SubscriptionRead.model_validate(await service.get_subscription(session, subscription_id))


@router.patch("/{subscription_id:int}")
async def update_subscription(
    session: Session,
    principal: SuiteAdmin,
    policy: Policy,
    interest: WebhookInterest,
    subscription_id: SubscriptionId,
    body: SubscriptionUpdate,
) -> SubscriptionRead:
    """Change a subscription; enabling it again clears why it was disabled."""
    changed = await service.update_subscription(session, policy, subscription_id, body.changes(), interest)
    return SubscriptionRead.model_validate(changed)


@router.delete("/{subscription_id:int}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_subscription(session: Session, principal: SuiteAdmin, subscription_id: SubscriptionId) -> None:
    await service.delete_subscription(session, subscription_id)


@router.post("/{subscription_id:int}/rotate-secret")
async def rotate_secret(
    session: Session,
    principal: SuiteAdmin,
    settings: AppSettings,
    subscription_id: SubscriptionId,
    body: SecretRotation | None = None,
) -> SubscriptionWithSecret:
    """A new secret (shown once); the old one also signs until `previous_secret_expires_at`."""
    overlap = body.overlap_seconds if body is not None and body.overlap_seconds is not None else None
    rotated = await service.rotate_secret(
        session, subscription_id, settings.webhook_rotation_overlap_seconds if overlap is None else overlap
    )
    return SubscriptionWithSecret.model_validate(rotated)


@router.post("/{subscription_id:int}/test", status_code=status.HTTP_202_ACCEPTED)
async def send_test(session: Session, principal: SuiteAdmin, subscription_id: SubscriptionId) -> DeliveryRead:
    """Queue a `rtls.webhook.test` delivery to this subscription (even when disabled); follow it in the log."""
    return _delivery(await service.send_test(session, subscription_id))


@router.get("/{subscription_id:int}/deliveries")
async def list_deliveries(
    session: Session,
    principal: SuiteAdmin,
    pagination: Pagination,
    subscription_id: SubscriptionId,
    status_filter: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
) -> Page[DeliveryRead]:
    """Deliveries, newest first, each with every attempt."""
    found, count = await service.list_deliveries(
        session, subscription_id, status_filter, offset=pagination.offset, limit=pagination.limit
    )
    results = [
        _delivery(delivery, [AttemptRead.model_validate(attempt) for attempt in attempts])
        for delivery, attempts in found
    ]
    return pagination.build(results, count)


@router.post("/{subscription_id:int}/deliveries/{delivery_id}/redeliver", status_code=status.HTTP_202_ACCEPTED)
async def redeliver(
    session: Session, principal: SuiteAdmin, subscription_id: SubscriptionId, delivery_id: DeliveryId
) -> DeliveryRead:
    """Send a delivery again now, with the same `webhook-id`."""
    return _delivery(await service.redeliver(session, subscription_id, delivery_id))
