"""Request dependencies every feature of recording-storage may use: settings and the storage backend.

This module imports only `config` and the storage interface, so any feature can import it without an import loop.
"""

from typing import Annotated

from fastapi import Depends, Request

from recording_storage.config import Settings
from recording_storage.storage.base import Storage


async def get_settings(request: Request) -> Settings:
    """The app's settings (a coroutine: FastAPI would run a plain function in a worker thread)."""
    settings: Settings = request.app.state.settings
    return settings


async def get_storage(request: Request) -> Storage:
    """The storage backend the lifespan built."""
    storage: Storage = request.app.state.storage
    return storage


AppSettings = Annotated[Settings, Depends(get_settings)]
StorageDep = Annotated[Storage, Depends(get_storage)]
