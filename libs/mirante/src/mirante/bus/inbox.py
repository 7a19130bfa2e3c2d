"""The inbox of a consumer group: the ids of the events it has handled, so a redelivery is skipped.

Rows are written in the consumer's batch transaction, so an event counts as handled exactly when its
effects are committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import ARRAY, CursorResult, Delete, String, Table, bindparam, column, delete, func, select
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.dml import ReturningInsert

from mirante.bus.envelope import Event
from mirante.bus.tables import inbox_table
from mirante.db_driver import DriverStatement, session_driver


class Inbox:
    """The inbox rows of consumer group `group` in `schema`, with its statements built once."""

    def __init__(self, schema: str, group: str) -> None:
        self.table = inbox_table(schema)
        self.group = group
        self._record = DriverStatement.of(_insert_new(self.table))
        self._forget = _delete_one(self.table)

    async def record(self, session: AsyncSession, events: Sequence[Event]) -> set[uuid.UUID]:
        """Insert the rows of `events` in one statement; returns the ids that were not there yet."""
        types = {event.event_uuid: event.type for event in events}
        # Sorted, so concurrent batches lock overlapping inbox keys in the same order and cannot deadlock.
        ids = sorted(types)
        inserted = await self._record.fetch(
            await session_driver(session), {"group": self.group, "ids": ids, "types": [types[key] for key in ids]}
        )
        return {row[0] for row in inserted}

    async def forget(self, session: AsyncSession, event_id: uuid.UUID) -> None:
        """Take back the row of an event whose handler failed, so a later delivery runs it again."""
        await session.execute(self._forget, {"group": self.group, "event_id": event_id})

    async def contains(self, sessionmaker: async_sessionmaker[AsyncSession], event: Event) -> bool:
        """Whether the group has committed `event` already (read in a session of its own)."""
        inbox = self.table
        async with sessionmaker() as session:
            found = await session.execute(
                select(inbox.c.event_id).where(inbox.c.consumer == self.group, inbox.c.event_id == event.event_uuid)
            )
            return found.first() is not None


async def delete_old_inbox_rows(
    sessionmaker: async_sessionmaker[AsyncSession], schema: str, older_than: timedelta
) -> int:
    """Forget events handled more than `older_than` ago; returns how many inbox rows were deleted.

    The inbox only needs to outlive redeliveries: keep `older_than` well above the longest a message can
    stay pending (consumer outages included), since an event redelivered after its row is gone runs again.
    """
    if older_than <= timedelta(0):
        raise ValueError("older_than must be positive")
    inbox = inbox_table(schema)
    async with sessionmaker() as session, session.begin():
        result = await session.execute(delete(inbox).where(inbox.c.processed_at < func.now() - older_than))
    return cast("CursorResult[Any]", result).rowcount


def _insert_new(inbox: Table) -> ReturningInsert[uuid.UUID]:
    """`INSERT ... SELECT FROM unnest(ids, types) ON CONFLICT DO NOTHING RETURNING event_id`: one statement
    for a whole batch whatever its size, answering which events are new."""
    rows = (
        func.unnest(bindparam("ids", type_=ARRAY(UUID(as_uuid=True))), bindparam("types", type_=ARRAY(String)))
        .table_valued(column("event_id", UUID(as_uuid=True)), column("event_type", String))
        .render_derived()
    )
    return (
        insert(inbox)
        .from_select(
            ["consumer", "event_id", "event_type"],
            select(bindparam("group", type_=String), rows.c.event_id, rows.c.event_type),
        )
        .on_conflict_do_nothing(index_elements=[inbox.c.consumer, inbox.c.event_id])
        .returning(inbox.c.event_id)
    )


def _delete_one(inbox: Table) -> Delete:
    return delete(inbox).where(inbox.c.consumer == bindparam("group"), inbox.c.event_id == bindparam("event_id"))
