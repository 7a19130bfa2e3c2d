"""Waking every orchestrator replica's dispatcher: a machine may have a free slot, or new work is queued.

Whatever frees a slot or brings a machine back (a result, a heartbeat, a status report, a cancel, the end of
maintenance) calls `announce_capacity`, and whatever queues an inspection (created, changed, back from a
machine) calls `announce_work`, inside the transaction that made the change. PostgreSQL delivers the
notification only when that transaction commits, so a dispatcher never wakes up to a change it cannot see yet,
and every replica listening on the channels hears it, not only the one that took the request. The module sits
outside `dispatch` so the features that make the changes need not import the dispatcher.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

CAPACITY_CHANNEL: Final = "vision_orchestrator_capacity"
QUEUE_CHANNEL: Final = "vision_orchestrator_queue"


async def announce_capacity(session: AsyncSession, machine_id: str) -> None:
    """Queue a notification naming `machine_id`, sent when the session's transaction commits."""
    await session.execute(
        text("SELECT pg_notify(:channel, :machine_id)"), {"channel": CAPACITY_CHANNEL, "machine_id": machine_id}
    )


async def announce_work(session: AsyncSession, inspection_id: str) -> None:
    """Queue a notification naming a pending inspection, sent when the session's transaction commits."""
    await session.execute(
        text("SELECT pg_notify(:channel, :inspection_id)"), {"channel": QUEUE_CHANNEL, "inspection_id": inspection_id}
    )
