"""The backend the settings name, built once per app, and the worker that closes its connections at shutdown."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from recording_storage.config import Settings
from recording_storage.storage.base import Storage
from recording_storage.storage.local import LocalStorage
from recording_storage.storage.s3 import S3Storage


def s3_client_factory(settings: Settings) -> AbstractAsyncContextManager[Any]:
    """An S3 client of the settings' endpoint and region; credentials from botocore's standard chain."""
    config = AioConfig(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=32)
    client: AbstractAsyncContextManager[Any] = get_session().create_client(
        "s3", endpoint_url=settings.s3_endpoint_url, region_name=settings.s3_region, config=config
    )
    return client


def build_storage(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> Storage:
    if settings.backend == "s3":
        assert settings.s3_bucket is not None
        return S3Storage(
            bucket=settings.s3_bucket,
            part_size=settings.s3_part_size_bytes,
            sessionmaker=sessionmaker,
            client_factory=lambda: s3_client_factory(settings),
        )
    return LocalStorage(settings.resolved_storage_dir())


async def storage_closer(app: FastAPI) -> None:
    """Waits for the app to stop, then closes the backend's connections (the S3 client's HTTP pool)."""
    try:
        await asyncio.Event().wait()
    finally:
        storage = app.state.storage
        if isinstance(storage, S3Storage):
            await storage.aclose()
