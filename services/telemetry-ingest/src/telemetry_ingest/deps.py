"""Request dependencies every feature of telemetry-ingest may use.

This module imports only `config`, so any feature can import it without an import loop; a dependency on a
feature's own objects lives in that feature's `deps.py` (`tenancy.deps.TenantScope`, `thresholds.deps.RuleCacheDep`).
"""

from typing import Annotated

from fastapi import Depends, Request

from telemetry_ingest.config import Settings


async def get_settings(request: Request) -> Settings:
    """The app's settings (a coroutine: FastAPI would run a plain function in a worker thread)."""
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(get_settings)]
