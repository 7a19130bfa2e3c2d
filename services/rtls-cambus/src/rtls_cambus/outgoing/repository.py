"""SQL of webhook subscriptions, deliveries and attempts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.db import paginate_scalars
from rtls_cambus.outgoing.models import PENDING, WebhookAttempt, WebhookDelivery, WebhookSubscription

# Rows looked at per claim: enough to fill free slots even when a few subscriptions are at their bound.
CLAIM_WINDOW = 500


@dataclass(frozen=True)
class Claimed:
    """What a dispatcher needs to send one delivery, read when it was claimed."""

    id: int
    subscription_id: int
    msg_id: str
    payload: bytes
    attempts: int
    url: str
    secrets: list[str]


def new_msg_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


async def list_subscriptions(
    session: AsyncSession, *, offset: int, limit: int
) -> tuple[list[WebhookSubscription], int]:
    statement = select(WebhookSubscription).order_by(WebhookSubscription.id)
    return await paginate_scalars(session, statement, offset=offset, limit=limit)


async def subscribed_event_types(session: AsyncSession) -> list[str]:
    """Every type an enabled subscription names: the dispatcher's consumer skips the others."""
    query = select(func.unnest(WebhookSubscription.event_types)).where(WebhookSubscription.enabled).distinct()
    return list((await session.scalars(query)).all())


async def enqueue(
    session: AsyncSession, event_id: uuid.UUID, event_type: str, payload: bytes, subscription_id: int | None = None
) -> list[int]:
    """One pending delivery per enabled subscription to `event_type` (or to `subscription_id` only); an event
    seen again makes no second delivery. The ids of the deliveries made."""
    chosen = select(
        WebhookSubscription.id,
        literal(event_id).label("event_id"),
        literal(event_type).label("event_type"),
        literal(payload).label("payload"),
    ).where(WebhookSubscription.enabled)
    if subscription_id is None:
        chosen = chosen.where(WebhookSubscription.event_types.contains([event_type]))
    else:
        chosen = chosen.where(WebhookSubscription.id == subscription_id)
    rows = (await session.execute(chosen)).all()
    if not rows:
        return []
    statement = (
        insert(WebhookDelivery)
        .values(
            [
                {
                    "subscription_id": row[0],
                    "msg_id": new_msg_id(),
                    "event_id": event_id,
                    "event_type": event_type,
                    "payload": payload,
                }
                for row in rows
            ]
        )
        .on_conflict_do_nothing(index_elements=["subscription_id", "event_id"])
        .returning(WebhookDelivery.id)
    )
    return list((await session.scalars(statement)).all())


async def claim_due(
    session: AsyncSession,
    now: datetime,
    lease_until: datetime,
    *,
    free: int,
    per_subscription: int,
    in_flight: dict[int, int],
) -> list[Claimed]:
    """Lease due deliveries (`FOR UPDATE SKIP LOCKED`: replicas never take the same one) up to `free` in all and
    up to `per_subscription` per subscription, counting what this dispatcher is already sending."""
    due = (
        select(WebhookDelivery.id, WebhookDelivery.subscription_id)
        .where(
            WebhookDelivery.status == PENDING,
            WebhookDelivery.next_attempt_at <= now,
            or_(WebhookDelivery.locked_until.is_(None), WebhookDelivery.locked_until < now),
        )
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(CLAIM_WINDOW)
        .with_for_update(skip_locked=True)
    )
    chosen: list[int] = []
    counts = dict(in_flight)
    for delivery_id, subscription_id in (await session.execute(due)).all():
        if len(chosen) >= free:
            break
        if counts.get(subscription_id, 0) >= per_subscription:
            continue
        counts[subscription_id] = counts.get(subscription_id, 0) + 1
        chosen.append(delivery_id)
    if not chosen:
        return []
    await session.execute(
        update(WebhookDelivery).where(WebhookDelivery.id.in_(chosen)).values(locked_until=lease_until)
    )
    rows = (
        await session.execute(
            select(
                WebhookDelivery.id,
                WebhookDelivery.subscription_id,
                WebhookDelivery.msg_id,
                WebhookDelivery.payload,
                WebhookDelivery.attempts,
                WebhookSubscription.url,
                WebhookSubscription.secret,
                WebhookSubscription.previous_secret,
                WebhookSubscription.previous_secret_expires_at,
            )
            .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
            .where(WebhookDelivery.id.in_(chosen))
            .order_by(WebhookDelivery.next_attempt_at)
        )
    ).all()
    return [
        Claimed(
            id=row.id,
            subscription_id=row.subscription_id,
            msg_id=row.msg_id,
            payload=row.payload,
            attempts=row.attempts,
            url=row.url,
            secrets=signing_secrets(row.secret, row.previous_secret, row.previous_secret_expires_at, now),
        )
        for row in rows
    ]


def signing_secrets(
    secret: str, previous: str | None, previous_expires_at: datetime | None, now: datetime
) -> list[str]:
    """The current secret, and the previous one while its overlap lasts (a signature each)."""
    if previous is not None and previous_expires_at is not None and previous_expires_at > now:
        return [secret, previous]
    return [secret]


async def add_attempt(session: AsyncSession, attempt: WebhookAttempt) -> None:
    session.add(attempt)
    await session.flush()


async def finish(session: AsyncSession, delivery_id: int, **values: object) -> None:
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == PENDING)
        .values(locked_until=None, **values)
    )


async def release(session: AsyncSession, delivery_ids: Sequence[int]) -> None:
    await session.execute(update(WebhookDelivery).where(WebhookDelivery.id.in_(delivery_ids)).values(locked_until=None))


async def disable_subscription(session: AsyncSession, subscription_id: int, reason: str) -> None:
    await session.execute(
        update(WebhookSubscription)
        .where(WebhookSubscription.id == subscription_id)
        .values(enabled=False, disabled_reason=reason)
    )


async def get_delivery(session: AsyncSession, subscription_id: int, delivery_id: int) -> WebhookDelivery | None:
    return await session.scalar(
        select(WebhookDelivery).where(
            and_(WebhookDelivery.id == delivery_id, WebhookDelivery.subscription_id == subscription_id)
        )
    )


async def list_deliveries(
    session: AsyncSession, subscription_id: int, status: str | None, *, offset: int, limit: int
) -> tuple[list[WebhookDelivery], int]:
    statement = select(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription_id)
    if status is not None:
        statement = statement.where(WebhookDelivery.status == status)
    return await paginate_scalars(session, statement.order_by(WebhookDelivery.id.desc()), offset=offset, limit=limit)


async def attempts_of(session: AsyncSession, delivery_ids: Sequence[int]) -> list[WebhookAttempt]:
    if not delivery_ids:
        return []
    return list(
        (
            await session.scalars(
                select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(delivery_ids)).order_by(WebhookAttempt.id)
            )
        ).all()
    )
