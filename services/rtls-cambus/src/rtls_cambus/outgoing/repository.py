"""SQL of webhook subscriptions, deliveries and attempts."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from sqlalchemy import (
    BigInteger,
    DateTime,
    Integer,
    LargeBinary,
    String,
    Text,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.db import paginate_scalars
from mirante.db_driver import DriverStatement, session_driver
from rtls_cambus.outgoing.models import DELIVERED, FAILED, WebhookAttempt, WebhookDelivery, WebhookSubscription


@dataclass(slots=True)  # not frozen: built once per delivery, and a frozen one costs three times as much
class Claimed:
    """What a dispatcher needs to send one delivery, read when it was claimed."""

    id: int
    subscription_id: int
    msg_id: str
    payload: bytes
    attempts: int
    url: str
    secrets: list[str]
    lease_until: datetime


def new_msg_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


async def list_subscriptions(
    session: AsyncSession, *, offset: int, limit: int
) -> tuple[list[WebhookSubscription], int]:
    statement = select(WebhookSubscription).order_by(WebhookSubscription.id)
    return await paginate_scalars(session, statement, offset=offset, limit=limit)


_ENQUEUE = DriverStatement.of(
    text(
        """
    INSERT INTO rtls_cambus.webhook_deliveries (subscription_id, msg_id, event_id, event_type, payload)
    SELECT s.id, 'msg_' || replace(gen_random_uuid()::text, '-', ''), e.event_id, e.event_type, e.payload
    FROM unnest(CAST(:event_ids AS uuid[]), CAST(:event_types AS varchar[]), CAST(:payloads AS bytea[]))
         WITH ORDINALITY AS e(event_id, event_type, payload, position)
    JOIN rtls_cambus.webhook_subscriptions AS s ON s.enabled AND e.event_type = ANY(s.event_types)
    ORDER BY e.position, s.id
    ON CONFLICT (subscription_id, event_id) DO NOTHING
    RETURNING id
    """
    ).bindparams(
        bindparam("event_ids", type_=ARRAY(UUID(as_uuid=True))),
        bindparam("event_types", type_=ARRAY(String)),
        bindparam("payloads", type_=ARRAY(LargeBinary)),
    )
)

_ENQUEUE_TO_ONE = text(
    """
    INSERT INTO rtls_cambus.webhook_deliveries (subscription_id, msg_id, event_id, event_type, payload)
    SELECT id, 'msg_' || replace(gen_random_uuid()::text, '-', ''), :event_id, :event_type, :payload
    FROM rtls_cambus.webhook_subscriptions
    WHERE enabled AND id = :subscription_id
    ON CONFLICT (subscription_id, event_id) DO NOTHING
    RETURNING id
    """
).bindparams(
    bindparam("event_id", type_=UUID(as_uuid=True)),
    bindparam("event_type", type_=String),
    bindparam("payload", type_=LargeBinary),
    bindparam("subscription_id", type_=BigInteger),
)


@dataclass(slots=True)  # not frozen: built once per delivery, and a frozen one costs three times as much
class Deliverable:
    """An event as its deliveries need it: its id, its type and the body every subscription gets."""

    event_id: uuid.UUID
    event_type: str
    payload: bytes


async def enqueue_many(session: AsyncSession, events: Sequence[Deliverable]) -> list[int]:
    """One pending delivery per enabled subscription to each event's type, in the order of `events`; an event
    seen again makes no second delivery. The ids of the deliveries made. One statement for all the events."""
    if not events:
        return []
    rows = await _ENQUEUE.fetch(
        await session_driver(session),
        {
            "event_ids": [event.event_id for event in events],
            "event_types": [event.event_type for event in events],
            "payloads": [event.payload for event in events],
        },
    )
    return [row["id"] for row in rows]


async def subscribed_event_types(session: AsyncSession) -> list[str]:
    """Every type an enabled subscription names: the dispatcher's consumer skips the others."""
    query = select(func.unnest(WebhookSubscription.event_types)).where(WebhookSubscription.enabled).distinct()
    return list((await session.scalars(query)).all())


async def enqueue(
    session: AsyncSession, event_id: uuid.UUID, event_type: str, payload: bytes, subscription_id: int | None = None
) -> list[int]:
    """`enqueue_many` of one event, or its delivery to subscription `subscription_id` only (when enabled)."""
    if subscription_id is None:
        return await enqueue_many(session, [Deliverable(event_id, event_type, payload)])
    result = await session.execute(
        _ENQUEUE_TO_ONE,
        {"event_id": event_id, "event_type": event_type, "payload": payload, "subscription_id": subscription_id},
    )
    return list(result.scalars().all())


# For each subscription (an index probe each), its oldest due deliveries up to what its bound leaves free, then
# the oldest of those overall: a subscription with a backlog at its bound never hides the others' deliveries.
# Only the chosen rows are locked (SKIP LOCKED: what another replica is claiming at this moment is left to it)
# and checked again under the lock, and the lease is taken in the same statement.
# The check under the lock compares the status with the chosen row's rather than with 'pending': a constant there
# matches the partial index of pending deliveries, and a planner whose statistics predate a burst (or that has none
# yet) reads every pending delivery through it to find the few chosen, on every claim. Joined on the id only, the
# chosen rows are found by the primary key whatever the statistics say. They are locked and leased by
# `id = ANY(array of the chosen)`, and their subscriptions joined once leased: joined by id alone, or leased with
# `id IN (sub-select)` beside the join to subscriptions, a planner with statistics of an emptied table reads the
# whole table (through its primary key or the index by subscription) to find them.
_CLAIM = DriverStatement.of(
    text(
        """
    WITH room AS (
        SELECT * FROM unnest(CAST(:room_ids AS bigint[]), CAST(:room_counts AS integer[])) AS room(id, deliveries)
    ),
    chosen AS (
        SELECT due.id, due.status
        FROM rtls_cambus.webhook_subscriptions AS s
        LEFT JOIN room ON room.id = s.id
        CROSS JOIN LATERAL (
            SELECT d.id, d.status, d.next_attempt_at
            FROM rtls_cambus.webhook_deliveries AS d
            WHERE d.subscription_id = s.id
              AND d.status = 'pending'
              AND d.next_attempt_at <= :now
              AND (d.locked_until IS NULL OR d.locked_until < :now)
              AND d.id <> ALL(CAST(:held_ids AS bigint[]))
            ORDER BY d.next_attempt_at, d.id
            LIMIT greatest(0, coalesce(room.deliveries, :default_room))
        ) AS due
        ORDER BY due.next_attempt_at, due.id
        LIMIT :free
    ),
    locked AS (
        SELECT d.id
        FROM chosen
        JOIN rtls_cambus.webhook_deliveries AS d ON d.id = chosen.id
        WHERE d.id = ANY(ARRAY(SELECT id FROM chosen))
          AND d.status = chosen.status
          AND (d.locked_until IS NULL OR d.locked_until < :now)
        FOR UPDATE OF d SKIP LOCKED
    ),
    leased AS (
        UPDATE rtls_cambus.webhook_deliveries AS d
        SET locked_until = :lease_until
        WHERE d.id = ANY(ARRAY(SELECT id FROM locked))
        RETURNING d.id, d.subscription_id, d.msg_id, d.payload, d.attempts, d.next_attempt_at
    )
    SELECT leased.*, s.url, s.secret, s.previous_secret, s.previous_secret_expires_at
    FROM leased JOIN rtls_cambus.webhook_subscriptions AS s ON s.id = leased.subscription_id
    """
    ).bindparams(
        bindparam("room_ids", type_=ARRAY(BigInteger)),
        bindparam("room_counts", type_=ARRAY(Integer)),
        bindparam("held_ids", type_=ARRAY(BigInteger)),
        bindparam("now", type_=DateTime(timezone=True)),
        bindparam("lease_until", type_=DateTime(timezone=True)),
        bindparam("default_room", type_=Integer),
        bindparam("free", type_=Integer),
    )
)


async def claim_due(
    connection: asyncpg.Connection,
    now: datetime,
    lease_until: datetime,
    *,
    free: int,
    room: dict[int, int],
    default_room: int,
    held_ids: Collection[int],
) -> list[Claimed]:
    """Lease due deliveries, oldest first, up to `free` in all and, per subscription, up to its `room`
    (subscription id → deliveries; `default_room` for the others). `held_ids`, what the dispatcher holds, are
    never claimed again, even when a lease ran out. One statement, committed at once (`connection` outside a
    transaction)."""
    rows = await _CLAIM.fetch(
        connection,
        {
            "room_ids": list(room),
            "room_counts": list(room.values()),
            "held_ids": list(held_ids),
            "now": now,
            "lease_until": lease_until,
            "default_room": default_room,
            "free": free,
        },
    )
    # RETURNING follows no order: sent oldest first, as chosen.
    rows.sort(key=lambda row: (row["next_attempt_at"], row["id"]))
    return [
        Claimed(
            id=row["id"],
            subscription_id=row["subscription_id"],
            msg_id=row["msg_id"],
            payload=row["payload"],
            attempts=row["attempts"],
            url=row["url"],
            secrets=signing_secrets(row["secret"], row["previous_secret"], row["previous_secret_expires_at"], now),
            lease_until=lease_until,
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


@dataclass(slots=True)  # not frozen: built once per delivery, and a frozen one costs three times as much
class Outcome:
    """An attempt to log and what it makes of its delivery (`next_attempt_at` set for a retry)."""

    delivery_id: int
    subscription_id: int
    attempted_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None
    excerpt: str | None
    attempts: int
    status: str
    next_attempt_at: datetime | None = None
    delivered_at: datetime | None = None
    gone: bool = False
    """The receiver answered 410: its subscription is disabled."""


# The attempts logged and their deliveries updated (those still pending: one finished meanwhile, by a manual
# redelivery's attempt, stays as it is), and the subscriptions that answered 410 disabled, in one statement. The
# status is compared with the outcome's `was` rather than with a constant, for the reason given at the claim, and the
# deliveries are found by `id = ANY(:delivery_ids)` (joined by id alone, the whole table is read under statistics of
# an emptied table).
_RECORD = DriverStatement.of(
    text(
        """
    WITH outcome AS (
        SELECT *, CAST('pending' AS varchar) AS was
        FROM unnest(
            CAST(:delivery_ids AS bigint[]), CAST(:attempted_at AS timestamptz[]), CAST(:durations_ms AS integer[]),
            CAST(:status_codes AS integer[]), CAST(:errors AS varchar[]), CAST(:excerpts AS text[]),
            CAST(:attempts AS integer[]), CAST(:statuses AS varchar[]), CAST(:retry_at AS timestamptz[]),
            CAST(:delivered_at AS timestamptz[])
        ) AS o(delivery_id, attempted_at, duration_ms, status_code, error, excerpt, attempts, status, retry_at,
               delivered_at)
    ),
    logged AS (
        INSERT INTO rtls_cambus.webhook_attempts
            (delivery_id, attempted_at, duration_ms, status_code, error, response_excerpt)
        SELECT delivery_id, attempted_at, duration_ms, status_code, error, excerpt FROM outcome
    ),
    disabled AS (
        UPDATE rtls_cambus.webhook_subscriptions
        SET enabled = false, disabled_reason = :gone_reason, updated_at = now()
        WHERE id = ANY(CAST(:gone_subscriptions AS bigint[]))
    )
    UPDATE rtls_cambus.webhook_deliveries AS d
    SET locked_until = NULL,
        attempts = o.attempts,
        status = o.status,
        last_status_code = o.status_code,
        last_error = o.error,
        next_attempt_at = coalesce(o.retry_at, d.next_attempt_at),
        delivered_at = coalesce(o.delivered_at, d.delivered_at)
    FROM outcome AS o
    WHERE d.id = ANY(CAST(:delivery_ids AS bigint[])) AND d.id = o.delivery_id AND d.status = o.was
    """
    ).bindparams(
        bindparam("delivery_ids", type_=ARRAY(BigInteger)),
        bindparam("attempted_at", type_=ARRAY(DateTime(timezone=True))),
        bindparam("durations_ms", type_=ARRAY(Integer)),
        bindparam("status_codes", type_=ARRAY(Integer)),
        bindparam("errors", type_=ARRAY(String)),
        bindparam("excerpts", type_=ARRAY(Text)),
        bindparam("attempts", type_=ARRAY(Integer)),
        bindparam("statuses", type_=ARRAY(String)),
        bindparam("retry_at", type_=ARRAY(DateTime(timezone=True))),
        bindparam("delivered_at", type_=ARRAY(DateTime(timezone=True))),
        bindparam("gone_subscriptions", type_=ARRAY(BigInteger)),
        bindparam("gone_reason", type_=String),
    )
)

GONE_REASON = "the receiver answered 410 Gone"


async def record_outcomes(connection: asyncpg.Connection, outcomes: Sequence[Outcome]) -> None:
    """Log each attempt, update its delivery and disable the subscriptions whose receiver answered 410: one
    statement, committed at once (`connection` outside a transaction), whatever the number of attempts."""
    if not outcomes:
        return
    await _RECORD.execute(
        connection,
        {
            "delivery_ids": [outcome.delivery_id for outcome in outcomes],
            "attempted_at": [outcome.attempted_at for outcome in outcomes],
            "durations_ms": [outcome.duration_ms for outcome in outcomes],
            "status_codes": [outcome.status_code for outcome in outcomes],
            "errors": [outcome.error for outcome in outcomes],
            "excerpts": [outcome.excerpt for outcome in outcomes],
            "attempts": [outcome.attempts for outcome in outcomes],
            "statuses": [outcome.status for outcome in outcomes],
            "retry_at": [outcome.next_attempt_at for outcome in outcomes],
            "delivered_at": [outcome.delivered_at for outcome in outcomes],
            "gone_subscriptions": sorted({outcome.subscription_id for outcome in outcomes if outcome.gone}),
            "gone_reason": GONE_REASON,
        },
    )


async def add_attempt(session: AsyncSession, attempt: WebhookAttempt) -> None:
    session.add(attempt)
    await session.flush()


async def release(session: AsyncSession, delivery_ids: Sequence[int], *, last_error: str | None = None) -> None:
    """End the leases (the deliveries are due again at once); `last_error`, when given, says why."""
    values: dict[str, object] = {"locked_until": None}
    if last_error is not None:
        values["last_error"] = last_error
    await session.execute(update(WebhookDelivery).where(WebhookDelivery.id.in_(delivery_ids)).values(**values))


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


async def delete_finished_before(session: AsyncSession, moment: datetime) -> int:
    """Forget deliveries that finished before `moment`, their attempts with them (the foreign key cascades): a
    delivered one by when it was delivered, a failed one by when its last attempt was due (`next_attempt_at`,
    which a final answer leaves as it was). Pending ones stay whatever their age; a redelivered one is pending
    again. How many deliveries went."""
    gone = (
        delete(WebhookDelivery)
        .where(
            or_(
                and_(WebhookDelivery.status == DELIVERED, WebhookDelivery.delivered_at < moment),
                and_(WebhookDelivery.status == FAILED, WebhookDelivery.next_attempt_at < moment),
            )
        )
        .returning(WebhookDelivery.id)
        .cte("gone")
    )
    return int(await session.scalar(select(func.count()).select_from(gone)) or 0)
