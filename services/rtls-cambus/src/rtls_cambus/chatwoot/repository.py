"""Queries of the Chatwoot integration: the webhook log and the incident ↔ conversation ↔ message mapping."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.db import paginate_scalars
from rtls_cambus.chatwoot.models import (
    ACCEPTED_PREDICATE,
    ACCEPTED_STATUSES,
    ChatwootConversation,
    ChatwootDelivery,
    ChatwootMessage,
)
from rtls_cambus.incidents.models import Incident, IncidentMessage


@dataclass(frozen=True)
class DeliveryFilters:
    status: str | None = None
    event: str | None = None


async def insert_delivery(session: AsyncSession, values: dict[str, Any]) -> int:
    statement = insert(ChatwootDelivery).values(**values).returning(ChatwootDelivery.id)
    log_id: int = (await session.execute(statement)).scalar_one()
    return log_id


async def insert_accepted(session: AsyncSession, values: dict[str, Any]) -> int | None:
    """Log an accepted delivery; None when one with the same delivery id was accepted before."""
    statement = (
        insert(ChatwootDelivery)
        .values(**values)
        # The predicate as literals: PostgreSQL infers a partial index only from constants, and a generic plan of
        # the prepared statement would hold parameters instead.
        .on_conflict_do_nothing(index_elements=["delivery_id"], index_where=text(ACCEPTED_PREDICATE))
        .returning(ChatwootDelivery.id)
    )
    log_id: int | None = (await session.execute(statement)).scalar_one_or_none()
    return log_id


async def accepted_delivery(session: AsyncSession, delivery_id: str) -> int | None:
    query = select(ChatwootDelivery.id).where(
        ChatwootDelivery.delivery_id == delivery_id, ChatwootDelivery.status.in_(ACCEPTED_STATUSES)
    )
    found: int | None = (await session.execute(query)).scalar_one_or_none()
    return found


async def get_delivery(session: AsyncSession, log_id: int, *, for_update: bool = False) -> ChatwootDelivery | None:
    query = select(ChatwootDelivery).where(ChatwootDelivery.id == log_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def finish_delivery(
    session: AsyncSession, log_id: int, *, status: str, note: str | None, incident_id: int | None = None
) -> None:
    await session.execute(
        update(ChatwootDelivery)
        .where(ChatwootDelivery.id == log_id)
        .values(status=status, note=note, incident_id=incident_id, processed_at=datetime.now(UTC))
    )


async def list_deliveries(
    session: AsyncSession, filters: DeliveryFilters, *, offset: int, limit: int
) -> tuple[list[ChatwootDelivery], int]:
    query = select(ChatwootDelivery).order_by(ChatwootDelivery.received_at.desc(), ChatwootDelivery.id.desc())
    if filters.status is not None:
        query = query.where(ChatwootDelivery.status == filters.status)
    if filters.event is not None:
        query = query.where(ChatwootDelivery.event == filters.event)
    return await paginate_scalars(session, query, offset=offset, limit=limit)


async def conversation_of(session: AsyncSession, incident_id: int) -> ChatwootConversation | None:
    return await session.get(ChatwootConversation, incident_id)


async def lock_conversation_opening(session: AsyncSession, incident_id: int) -> None:
    """Wait for any other transaction opening this incident's conversation to end (the lock is released with
    this transaction). A hash of the incident id is the key: a collision only makes two incidents wait."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended('rtls_cambus.chatwoot_conversations', :incident_id))"),
        {"incident_id": incident_id},
    )


async def incident_of_conversation(session: AsyncSession, account_id: int, conversation_id: int) -> int | None:
    query = select(ChatwootConversation.incident_id).where(
        ChatwootConversation.account_id == account_id, ChatwootConversation.conversation_id == conversation_id
    )
    found: int | None = (await session.execute(query)).scalar_one_or_none()
    return found


async def chatwoot_message_known(session: AsyncSession, account_id: int, chatwoot_message_id: int) -> bool:
    query = select(ChatwootMessage.id).where(
        ChatwootMessage.account_id == account_id, ChatwootMessage.chatwoot_message_id == chatwoot_message_id
    )
    return (await session.execute(query)).first() is not None


async def incident_message_sent(session: AsyncSession, incident_message_id: int) -> bool:
    query = select(ChatwootMessage.id).where(ChatwootMessage.incident_message_id == incident_message_id)
    return (await session.execute(query)).first() is not None


async def incident(session: AsyncSession, incident_id: int) -> Incident | None:
    return await session.get(Incident, incident_id)


async def incident_message_exists(session: AsyncSession, incident_message_id: int) -> bool:
    query = select(IncidentMessage.id).where(IncidentMessage.id == incident_message_id)
    return (await session.execute(query)).first() is not None


async def delete_deliveries_before(session: AsyncSession, moment: datetime) -> int:
    """Forget requests received before `moment` (a queued one too: its event was long handled or dead-lettered)."""
    statement = delete(ChatwootDelivery).where(ChatwootDelivery.received_at < moment).returning(ChatwootDelivery.id)
    return len((await session.execute(statement)).all())
