"""Apps for tests: a service's own on this run's servers, and a minimal one for testing the library on its own."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

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


def service_app(spec: ServiceSpec, infra: InfraSettings, **overrides: Any) -> FastAPI:
    """The app of `spec` with its default settings on `infra`, `overrides` applied, and no MQTT subscription.

    A subscriber on its default client id (`<service>-<hostname>`) would share one broker session with every other
    test run and `mirante up` on the host: each connection takes the session over from the last, and whichever
    holds it stores the messages published for other tests. A test about ingest builds its app with a client id of
    its own (`mirante.testing.mqtt.MqttSessions`).
    """
    settings = spec.settings_factory()
    if "mqtt_ingest_enabled" in type(settings).model_fields:
        overrides = {"mqtt_ingest_enabled": False, **overrides}
    return spec.app_factory(settings.model_copy(update={"infra": infra, **overrides}))
