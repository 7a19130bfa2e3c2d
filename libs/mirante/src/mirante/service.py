"""What the suite knows about a service, and how installed services are found.

Each service publishes a `ServiceSpec` under the `mirante.services` entry-point group, so `mirante up`,
`mirante migrate` and the test plugin work with whatever services are installed, without importing them by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from mirante.settings import ServiceSettings

ENTRY_POINT_GROUP = "mirante.services"


@dataclass(frozen=True)
class ServiceSpec:
    """Identity of one service: its names, its default port, its settings and app factory."""

    name: str
    package: str
    title: str
    description: str
    default_port: int
    settings_factory: Callable[[], ServiceSettings]
    app_factory: Callable[[ServiceSettings | None], FastAPI]
    uses_mqtt: bool = False
    publishes_events: bool = True

    @property
    def schema(self) -> str:
        """The Postgres schema the service owns."""
        return self.package

    @property
    def history(self) -> str:
        """The Alembic history (an `alembic.ini` section) that creates the schema."""
        return self.package

    @property
    def env_prefix(self) -> str:
        return f"{self.package.upper()}_"

    @property
    def stream(self) -> str:
        """The Redis stream the service publishes its events to."""
        return stream_of(self.name)

    @property
    def factory_path(self) -> str:
        """`module:function` of the app factory, for uvicorn's `--factory`."""
        return f"{self.package}.main:create_app"


class UnknownServiceError(LookupError):
    pass


def discover_services() -> list[ServiceSpec]:
    """Every installed service, ordered by default port."""
    specs = []
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        spec = entry.load()
        if not isinstance(spec, ServiceSpec):
            raise TypeError(f"entry point {entry.name!r} does not point at a ServiceSpec")
        specs.append(spec)
    return sorted(specs, key=lambda spec: spec.default_port)


def stream_of(service_name: str) -> str:
    """The Redis stream of the service named `service_name`."""
    return f"events:{service_name}"


def installed_streams() -> list[str]:
    """The stream of every installed service, from the names of their entry points (a service's name), sorted.

    The entry points are not loaded: loading a spec imports its whole service, and a consumer of the suite's
    streams would carry every other service's app, storage client and migrations in its process (in rtls-cambus,
    some 90,000 objects that each full collection of the garbage collector walked again, 70 ms a collection).
    Every installed service publishes events; a test holds these names to the loaded specs.
    """
    return sorted(stream_of(entry.name) for entry in entry_points(group=ENTRY_POINT_GROUP))


def configured_or_installed_streams(configured: Sequence[str] | None) -> list[str]:
    """The streams a consumer of the whole suite reads: those `configured` (each once, in order) when there are
    any, else every installed service's."""
    if configured:
        return list(dict.fromkeys(configured))
    return installed_streams()


def get_service(name: str) -> ServiceSpec:
    for spec in discover_services():
        if name in (spec.name, spec.package):
            return spec
    known = ", ".join(spec.name for spec in discover_services()) or "none"
    raise UnknownServiceError(f"unknown service {name!r} (installed: {known})")
