"""A minimal app built the way services build theirs, for testing the library on its own."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fastapi import APIRouter, FastAPI

from mirante.app import build_service_app
from mirante.service import ServiceSpec
from mirante.settings import InfraSettings, ServiceSettings


def library_app(
    infra: InfraSettings, routers: Sequence[APIRouter] = (), body_limits: Mapping[str, int] | None = None
) -> FastAPI:
    """An app with the identity router and the whole web kit, but no schema or outbox of its own."""
    settings = ServiceSettings(infra=infra)
    spec = ServiceSpec(
        name="mirante-test",
        package="mirante_test",
        title="Mirante library test app",
        description="The library's web kit on its own.",
        default_port=8000,
        settings_factory=ServiceSettings,
        app_factory=lambda given: library_app(infra),
        publishes_events=False,
    )
    return build_service_app(spec, settings, routers=routers, body_limits=body_limits)
