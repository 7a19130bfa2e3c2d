"""Request dependencies every feature of rtls-cambus may use.

This module imports only `config`, so any feature can import it without an import loop.
"""

from typing import Annotated

from fastapi import Depends, Request

from rtls_cambus.config import Settings


async def get_settings(request: Request) -> Settings:
    """The app's settings (a coroutine: FastAPI would run a plain function in a worker thread)."""
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(get_settings)]
