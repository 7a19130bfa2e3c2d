"""Telling every orchestrator replica that a machine may have a free slot.

Whatever frees a slot or brings a machine back (a result, a heartbeat, a status report, a cancel, the end of
maintenance) calls `announce_capacity` inside the transaction that made the change. PostgreSQL delivers the
notification only when that transaction commits, so a dispatcher never wakes up to a change it cannot see yet,
and every replica listening on `CAPACITY_CHANNEL` hears it, not only the one that took the request.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

CAPACITY_CHANNEL: Final = "vision_orchestrator_capacity"


async def announce_capacity(session: AsyncSession, machine_id: str) -> None:
    """Queue a notification naming `machine_id`, sent when the session's transaction commits."""
    await session.execute(
        text("SELECT pg_notify(:channel, :machine_id)"), {"channel": CAPACITY_CHANNEL, "machine_id": machine_id}
    )
