"""Producers' side of the bus: write events to the schema's outbox inside the caller's transaction."""

from __future__ import annotations

from sqlalchemy import func, insert
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.bus.envelope import Event
from mirante.bus.tables import outbox_table


async def emit(session: AsyncSession, schema: str, event: Event) -> None:
    """Queue `event` for publishing: it becomes visible to the relay only when the caller commits.

    Never commits. Raises `ValueError` for a schema name that is not a safe identifier.
    """
    if not isinstance(event, Event):
        raise TypeError(f"emit() expects an Event, got {type(event).__name__}")
    outbox = outbox_table(schema)
    await session.execute(
        insert(outbox).values(
            id=event.event_uuid,
            type=event.type,
            subject=event.subject,
            tenant=event.tenant,
            envelope=event.envelope(),
            # now() is the transaction start, the same for every row of a transaction; the wall clock keeps
            # the order of several events emitted by one transaction.
            created_at=func.clock_timestamp(),
        )
    )
