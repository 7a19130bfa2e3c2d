"""Every installed service follows "How a service is laid out" (docs/architecture.md) where a test can tell:

- no dependency or endpoint of a route is a plain `def`, which FastAPI would run in a worker thread (a thread
  hop on every request);
- a service declares the errors its API answers (subclasses of `ApiError`) in `errors.py` modules only;
- its request dependencies shared by every feature, settings among them, are in `<package>/deps.py`;
- its entry point is named as the service and it publishes events, so the suite's streams can be listed from the
  entry points without importing any service (`mirante.service.installed_streams`).

A service added later is checked as soon as it is installed.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from mirante.service import ServiceSpec, configured_or_installed_streams, discover_services, installed_streams
from mirante.web.errors import ApiError

SERVICES = sorted(discover_services(), key=lambda spec: spec.name)


@pytest.fixture(params=SERVICES, ids=lambda spec: spec.name)
def service(request: pytest.FixtureRequest) -> tuple[ServiceSpec, FastAPI]:
    spec: ServiceSpec = request.param
    return spec, spec.app_factory(None)


def _runs_on_the_event_loop(call: Callable[..., Any]) -> bool:
    for candidate in (call, getattr(call, "__call__", None)):  # noqa: B004 - an instance with an async __call__
        if candidate is None:
            continue
        unwrapped = inspect.unwrap(candidate)
        if inspect.iscoroutinefunction(unwrapped) or inspect.isasyncgenfunction(unwrapped):
            return True
    return False


def _dependencies(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _dependencies(sub)


def _name(call: Callable[..., Any]) -> str:
    return f"{getattr(call, '__module__', '?')}.{getattr(call, '__qualname__', repr(call))}"


def test_no_route_runs_in_a_worker_thread(service: tuple[ServiceSpec, FastAPI]) -> None:
    _spec, app = service
    threaded: set[str] = set()
    routes = [route for route in iter_route_contexts(app.routes) if isinstance(route.original_route, APIRoute)]
    assert routes
    for route in routes:
        if not _runs_on_the_event_loop(route.endpoint):
            threaded.add(f"endpoint {_name(route.endpoint)} ({route.path})")
        threaded.update(
            f"dependency {_name(call)}" for call in _dependencies(route.dependant) if not _runs_on_the_event_loop(call)
        )
    assert not threaded, f"plain def, run in a worker thread on every request: {sorted(threaded)}"


def _modules(package: str) -> Iterator[str]:
    root = importlib.import_module(package)
    yield package
    for module in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        if ".migrations" not in module.name:
            yield module.name


@pytest.mark.parametrize("spec", SERVICES, ids=lambda spec: spec.name)
def test_api_errors_are_declared_in_errors_modules(spec: ServiceSpec) -> None:
    elsewhere = []
    for name in _modules(spec.package):
        module = importlib.import_module(name)
        for value in vars(module).values():
            declared_here = inspect.isclass(value) and value.__module__ == name
            if declared_here and issubclass(value, ApiError) and not name.endswith(".errors"):
                elsewhere.append(f"{name}.{value.__name__}")
    assert not elsewhere, f"API errors declared outside an errors.py: {elsewhere}"


@pytest.mark.parametrize("spec", SERVICES, ids=lambda spec: spec.name)
def test_settings_are_a_dependency_of_the_package_deps(spec: ServiceSpec) -> None:
    deps = importlib.import_module(f"{spec.package}.deps")
    config = importlib.import_module(f"{spec.package}.config")
    assert inspect.iscoroutinefunction(deps.get_settings)
    assert inspect.signature(deps.get_settings).return_annotation in (config.Settings, "Settings")


def test_the_streams_listed_from_the_entry_points_are_those_the_services_publish_to() -> None:
    assert all(spec.publishes_events for spec in SERVICES)
    assert installed_streams() == sorted(spec.stream for spec in SERVICES)


@pytest.mark.parametrize("configured", [None, []])
def test_a_suite_consumer_reads_every_installed_stream_unless_told_otherwise(configured: list[str] | None) -> None:
    assert configured_or_installed_streams(configured) == installed_streams()


def test_configured_streams_are_read_each_once_in_their_order() -> None:
    assert configured_or_installed_streams(["events:b", "events:a", "events:b"]) == ["events:b", "events:a"]
