"""The service description of cvat-sync, without the app: commands that never serve do not import it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cvat_sync.config import Settings
from mirante.service import ServiceSpec

if TYPE_CHECKING:
    from fastapi import FastAPI

    from mirante.settings import ServiceSettings


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """`cvat_sync.main.create_app`, imported when an app is first built."""
    from cvat_sync.main import create_app as build_app

    return build_app(settings)


SERVICE = ServiceSpec(
    name="cvat-sync",
    package="cvat_sync",
    title="Mirante CVAT Sync",
    description="Mirrors CVAT jobs into Postgres: pull sync, HMAC-verified webhooks, audit log, web pages.",
    default_port=8001,
    settings_factory=Settings,
    app_factory=create_app,
)
