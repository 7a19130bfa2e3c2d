"""Webhook subscriptions: create (the secret shown once), change, rotate the secret, test, and the delivery log."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mirante.bus import Event, TypeInterest
from mirante.webhooks.signatures import generate_standard_secret
from rtls_cambus.outgoing import repository
from rtls_cambus.outgoing.dispatcher import payload_for
from rtls_cambus.outgoing.errors import (
    DeliveryNotFoundError,
    SubscriptionNotFoundError,
    TargetNotAllowedError,
)
from rtls_cambus.outgoing.event_types import TEST_EVENT_TYPE
from rtls_cambus.outgoing.models import PENDING, WebhookDelivery, WebhookSubscription
from rtls_cambus.outgoing.schemas import SubscriptionCreate
from rtls_cambus.outgoing.ssrf import TargetPolicy, TargetRefusedError


def stored_event_types(event_types: list[str]) -> list[str]:
    """The types as stored: each once, sorted (the schema let only known ones through)."""
    return sorted(set(event_types))


async def check_url(policy: TargetPolicy, url: str) -> None:
    """Refuse a target the policy refuses now; the dispatcher checks again before every attempt."""
    try:
        await policy.resolve(url)
    except TargetRefusedError as error:
        raise TargetNotAllowedError(str(error), details={"field": "url"}) from None


async def create_subscription(
    session: AsyncSession, policy: TargetPolicy, body: SubscriptionCreate, interest: TypeInterest
) -> WebhookSubscription:
    """A new subscription; it applies to every event this replica's dispatcher reads once it is committed."""
    await check_url(policy, body.url)
    subscription = WebhookSubscription(
        url=body.url,
        description=body.description,
        event_types=stored_event_types(body.event_types),
        secret=generate_standard_secret(),
        enabled=body.enabled,
    )
    session.add(subscription)
    await session.flush()
    interest.bump_after_commit(session)
    await session.refresh(subscription)
    return subscription


async def list_subscriptions(
    session: AsyncSession, *, offset: int, limit: int
) -> tuple[list[WebhookSubscription], int]:
    return await repository.list_subscriptions(session, offset=offset, limit=limit)


async def get_subscription(session: AsyncSession, subscription_id: int) -> WebhookSubscription:
    subscription = await session.get(WebhookSubscription, subscription_id)
    if subscription is None:
        raise SubscriptionNotFoundError(subscription_id)
    return subscription


async def update_subscription(
    session: AsyncSession,
    policy: TargetPolicy,
    subscription_id: int,
    changes: dict[str, Any],
    interest: TypeInterest,
) -> WebhookSubscription:
    subscription = await get_subscription(session, subscription_id)
    for required in ("url", "event_types", "enabled"):
        if required in changes and changes[required] is None:
            changes.pop(required)
    if "url" in changes:
        await check_url(policy, changes["url"])
    if "event_types" in changes:
        changes["event_types"] = stored_event_types(changes["event_types"])
    if changes.get("enabled"):
        changes["disabled_reason"] = None
    for name, value in changes.items():
        setattr(subscription, name, value)
    await session.flush()
    if "event_types" in changes or "enabled" in changes:
        interest.bump_after_commit(session)
    await session.refresh(subscription)
    return subscription


async def delete_subscription(session: AsyncSession, subscription_id: int) -> None:
    await session.delete(await get_subscription(session, subscription_id))
    await session.flush()


async def rotate_secret(session: AsyncSession, subscription_id: int, overlap_seconds: int) -> WebhookSubscription:
    """A new secret; the old one keeps signing (a second signature) for `overlap_seconds`."""
    subscription = await get_subscription(session, subscription_id)
    if overlap_seconds > 0:
        subscription.previous_secret = subscription.secret
        subscription.previous_secret_expires_at = datetime.now(UTC) + timedelta(seconds=overlap_seconds)
    else:
        subscription.previous_secret = None
        subscription.previous_secret_expires_at = None
    subscription.secret = generate_standard_secret()
    await session.flush()
    await session.refresh(subscription)
    return subscription


async def send_test(session: AsyncSession, subscription_id: int) -> WebhookDelivery:
    """A `rtls.webhook.test` delivery to this subscription only, sent by the dispatcher like any other."""
    subscription = await get_subscription(session, subscription_id)
    event = Event(
        source="mirante/rtls-cambus",
        type=TEST_EVENT_TYPE,
        subject=f"webhook/{subscription.id}",
        data={"subscription_id": subscription.id},
    )
    payload = payload_for(event)
    made = await repository.enqueue(session, event.event_uuid, event.type, payload, subscription_id=subscription.id)
    if not made:
        made = [await _insert_for_disabled(session, subscription.id, event.event_uuid, payload)]
    delivery = await session.get(WebhookDelivery, made[0])
    assert delivery is not None
    await session.refresh(delivery)
    return delivery


async def _insert_for_disabled(session: AsyncSession, subscription_id: int, event_id: uuid.UUID, payload: bytes) -> int:
    # A disabled subscription may still be tested: that is how one checks a receiver before enabling it again.
    delivery = WebhookDelivery(
        subscription_id=subscription_id,
        msg_id=repository.new_msg_id(),
        event_id=event_id,
        event_type=TEST_EVENT_TYPE,
        payload=payload,
    )
    session.add(delivery)
    await session.flush()
    return delivery.id


async def list_deliveries(
    session: AsyncSession, subscription_id: int, status: str | None, *, offset: int, limit: int
) -> tuple[list[tuple[WebhookDelivery, list[Any]]], int]:
    await get_subscription(session, subscription_id)
    deliveries, count = await repository.list_deliveries(session, subscription_id, status, offset=offset, limit=limit)
    attempts = await repository.attempts_of(session, [delivery.id for delivery in deliveries])
    by_delivery: dict[int, list[Any]] = {}
    for attempt in attempts:
        by_delivery.setdefault(attempt.delivery_id, []).append(attempt)
    return [(delivery, by_delivery.get(delivery.id, [])) for delivery in deliveries], count


async def redeliver(session: AsyncSession, subscription_id: int, delivery_id: int) -> WebhookDelivery:
    """Send a delivery again now, with the same `webhook-id`, whatever became of it."""
    delivery = await repository.get_delivery(session, subscription_id, delivery_id)
    if delivery is None:
        raise DeliveryNotFoundError(subscription_id, delivery_id)
    delivery.status = PENDING
    delivery.next_attempt_at = datetime.now(UTC)
    delivery.locked_until = None
    await session.flush()
    await session.refresh(delivery)
    return delivery
