"""Waking the dispatchers of every replica when new work is queued (freed capacity has `capacity.py`)."""

from __future__ import annotations

from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

QUEUE_CHANNEL: Final = "vision_orchestrator_queue"


async def announce_work(session: AsyncSession, inspection_id: str) -> None:
    """Queue a notification naming a pending inspection, sent when the session's transaction commits."""
    await session.execute(
        text("SELECT pg_notify(:channel, :inspection_id)"), {"channel": QUEUE_CHANNEL, "inspection_id": inspection_id}
    )
