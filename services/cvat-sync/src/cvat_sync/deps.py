"""Request dependencies shared by the features of cvat-sync."""

from typing import Annotated

from fastapi import Depends, Request

from cvat_sync.config import Settings


async def get_settings(request: Request) -> Settings:
    """The app's settings (a coroutine: FastAPI would run a plain function in a worker thread)."""
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(get_settings)]
