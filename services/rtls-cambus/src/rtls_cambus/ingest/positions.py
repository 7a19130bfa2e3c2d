"""Where the ingest hands beacon readings to the position engine.

The sink runs in the batch's transaction, after the readings and the gateways' presence are written, once per
batch, with each gateway that reported readings and its readings of the batch in arrival order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from rtls_cambus.ingest.payloads import Reading
from rtls_cambus.ingest.repository import GatewaySeen
from rtls_cambus.positions.engine import EngineParams
from rtls_cambus.positions.service import apply_batch

GatewayReadings = tuple[GatewaySeen, Sequence[Reading]]
ReadingsSink = Callable[[AsyncSession, Sequence[GatewayReadings], datetime], Awaitable[int]]
"""Called with the batch's readings per gateway; answers how many tags moved (each move emits events)."""


def positions_sink(params: EngineParams) -> ReadingsSink:
    """The sink that moves tags with the engine's `params` (from `engine_params(settings)`)."""

    async def forward(session: AsyncSession, heard: Sequence[GatewayReadings], received_at: datetime) -> int:
        # A `Reading` is the `(tag_mac, rssi)` pair the engine takes.
        return len(await apply_batch(session, heard, received_at, params=params))

    return forward
