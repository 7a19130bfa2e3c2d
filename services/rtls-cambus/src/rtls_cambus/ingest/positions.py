"""Where the ingest hands beacon readings to the position engine.

`forward_readings` is the one call site: the positions feature provides
`rtls_cambus.positions.service.apply_readings(session, gateway, readings, received_at)`, and wiring it in is a
change to this function alone. Until then it does nothing. It runs in the batch's transaction, after the readings
and the gateway's presence are written, once per gateway with readings, with that gateway's readings of the
batch in arrival order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from rtls_cambus.ingest.payloads import Reading
from rtls_cambus.ingest.repository import GatewaySeen

ReadingsSink = Callable[[AsyncSession, GatewaySeen, Sequence[Reading], datetime], Awaitable[None]]


async def forward_readings(
    session: AsyncSession, gateway: GatewaySeen, readings: Sequence[Reading], received_at: datetime
) -> None:
    """Hand a gateway's readings to the position engine (not wired yet: positions come in their own change)."""
    return None
