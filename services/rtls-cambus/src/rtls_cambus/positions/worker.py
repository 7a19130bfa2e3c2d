"""The sweep that marks silent tags unknown: a tag nobody hears sends no message that would move it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from fastapi import FastAPI

from rtls_cambus.positions.service import SWEEP_BATCH, engine_params, expire_silent


async def sweep_silent_tags(app: FastAPI) -> None:
    """Every `RTLS_CAMBUS_POSITION_SWEEP_SECONDS`; each replica runs it, rows locked by another are skipped."""
    settings = app.state.settings
    params = engine_params(settings)
    while True:
        while True:
            async with app.state.sessionmaker() as session, session.begin():
                expired = await expire_silent(session, datetime.now(UTC), params)
            if expired < SWEEP_BATCH:
                break
        await asyncio.sleep(settings.position_sweep_seconds)
