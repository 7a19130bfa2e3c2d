"""Where the ingest hands beacon readings to the position engine.

The sink runs in the batch's transaction, after the readings and the gateway's presence are written, once per
gateway with readings, with that gateway's readings of the batch in arrival order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from rtls_cambus.ingest.payloads import Reading
from rtls_cambus.ingest.repository import GatewaySeen
from rtls_cambus.positions.engine import EngineParams
from rtls_cambus.positions.service import apply_readings

ReadingsSink = Callable[[AsyncSession, GatewaySeen, Sequence[Reading], datetime], Awaitable[None]]


def positions_sink(params: EngineParams) -> ReadingsSink:
    """The sink that moves tags with the engine's `params` (from `engine_params(settings)`)."""

    async def forward(
        session: AsyncSession, gateway: GatewaySeen, readings: Sequence[Reading], received_at: datetime
    ) -> None:
        pairs = [(reading.tag_mac, reading.rssi) for reading in readings]
        await apply_readings(session, gateway, pairs, received_at, params=params)

    return forward
