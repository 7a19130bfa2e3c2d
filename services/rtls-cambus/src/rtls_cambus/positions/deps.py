"""Dependencies of positions: the engine's parameters from the app's settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from rtls_cambus.deps import AppSettings
from rtls_cambus.positions.engine import EngineParams
from rtls_cambus.positions.service import engine_params


async def get_engine_params(settings: AppSettings) -> EngineParams:
    return engine_params(settings)


Params = Annotated[EngineParams, Depends(get_engine_params)]
