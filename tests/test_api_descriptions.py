"""Every service's OpenAPI document matches what it serves: methods, operation ids and nullable fields."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, ValidationError

from mirante.service import ServiceSpec, discover_services
from mirante.web.openapi import (
    HTTP_METHODS,
    documented_operations,
    served_operations,
    shadowed_paths,
    undocumented_operations,
)

SERVICES = sorted(discover_services(), key=lambda spec: spec.name)

# Served on purpose without a description: the API docs page and its files, the Prometheus endpoint, pages and
# their assets, and the webhook path CVAT users configured before the API moved under /api/v1.
_DOCS_AND_METRICS = {
    ("/openapi.json", "GET"),
    ("/openapi.json", "HEAD"),
    ("/docs", "GET"),
    ("/docs/assets/{name}", "GET"),
    ("/metrics", "GET"),
}
UNDOCUMENTED: dict[str, set[tuple[str, str]]] = {
    "cvat-sync": _DOCS_AND_METRICS
    | {
        ("/cvat/webhook", "POST"),
        ("/cvat/webhook/", "POST"),
        ("/static/{name}", "GET"),
        ("/login", "GET"),
        ("/", "GET"),
        ("/webhook-logs", "GET"),
        ("/sync-runs", "GET"),
        ("/jobs/{job_id}", "GET"),
    },
    "telemetry-ingest": _DOCS_AND_METRICS
    | {
        ("/static/{name}", "GET"),
        ("/login", "GET"),
        ("/ops/", "GET"),
        ("/ops/telemetry", "GET"),
        ("/ops/telemetry/drilldown", "GET"),
    },
    "vision-orchestrator": _DOCS_AND_METRICS
    | {
        ("/static/{name}", "GET"),
        ("/login", "GET"),
        ("/", "GET"),
        ("/machines", "GET"),
        ("/queue", "GET"),
        ("/inspections/{inspection_id}", "GET"),
    },
    "rtls-cambus": _DOCS_AND_METRICS
    | {
        ("/static/{name}", "GET"),
        ("/login", "GET"),
        ("/", "GET"),
        ("/dashboard", "GET"),
        ("/incidents", "GET"),
        ("/incidents/{incident_id}", "GET"),
        ("/webhooks", "GET"),
        ("/alerts", "GET"),
    },
    "recording-storage": _DOCS_AND_METRICS
    | {
        ("/static/{name}", "GET"),
        ("/login", "GET"),
        ("/", "GET"),
        ("/recordings/{recording_id}", "GET"),
        ("/statistics", "GET"),
    },
}


@pytest.fixture(params=SERVICES, ids=lambda spec: spec.name)
def service(request: pytest.FixtureRequest) -> tuple[ServiceSpec, FastAPI]:
    spec: ServiceSpec = request.param
    return spec, spec.app_factory(None)


def test_every_installed_service_is_covered() -> None:
    assert {spec.name for spec in SERVICES} == set(UNDOCUMENTED)


def test_documented_methods_are_the_served_ones(service: tuple[ServiceSpec, FastAPI]) -> None:
    spec, app = service

    assert undocumented_operations(app) == UNDOCUMENTED[spec.name]
    assert served_operations(app) - UNDOCUMENTED[spec.name] == documented_operations(app.openapi())


def test_no_route_template_also_matches_another_routes_path(service: tuple[ServiceSpec, FastAPI]) -> None:
    _, app = service

    assert shadowed_paths(app) == set()


def test_integer_bounds_are_written_as_integers(service: tuple[ServiceSpec, FastAPI]) -> None:
    _, app = service
    found: list[object] = []

    def collect(node: object) -> None:
        if isinstance(node, dict):
            if node.get("type") == "integer":
                found.extend(node[key] for key in ("minimum", "maximum") if key in node)
            for child in node.values():
                collect(child)
        elif isinstance(node, list):
            for child in node:
                collect(child)

    collect(app.openapi())
    assert found
    assert all(type(bound) is int and -(2**63) <= bound < 2**63 for bound in found)


def test_operation_ids_are_unique_and_readable(service: tuple[ServiceSpec, FastAPI]) -> None:
    _, app = service
    ids = [
        operation["operationId"]
        for item in app.openapi()["paths"].values()
        for method, operation in item.items()
        if method.upper() in HTTP_METHODS
    ]

    assert len(ids) == len(set(ids))
    assert all("api_v1" not in operation_id for operation_id in ids)


def test_the_broker_endpoints_document_every_method_they_answer() -> None:
    app = next(spec for spec in SERVICES if spec.name == "telemetry-ingest").app_factory(None)
    paths = app.openapi()["paths"]

    assert set(paths["/api/v1/mqtt/emqx/authn"]) == {"post", "get"}
    assert {parameter["name"] for parameter in paths["/api/v1/mqtt/emqx/authn"]["get"]["parameters"]} >= {
        "username",
        "password",
        "clientid",
    }
    assert set(paths["/api/v1/mqtt/go-auth/acl"]) == {"post", "get", "put"}
    assert "requestBody" in paths["/api/v1/mqtt/go-auth/acl"]["put"]


def _request_models(app: FastAPI) -> set[type[BaseModel]]:
    models = set()
    for route in iter_route_contexts(app.routes):
        original = route.original_route
        if isinstance(original, APIRoute) and original.body_field is not None:
            annotation = original.body_field.field_info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                models.add(annotation)
    return models


def _nullable(field_schema: dict[str, Any]) -> bool:
    return field_schema.get("type") == "null" or any(_nullable(option) for option in field_schema.get("anyOf", ()))


def test_fields_documented_as_nullable_accept_null(service: tuple[ServiceSpec, FastAPI]) -> None:
    _, app = service
    checked = 0
    for model in _request_models(app):
        if any(field.is_required() for field in model.model_fields.values()):
            continue  # a partial update is where null means something; required fields need a whole request
        for name, field_schema in model.model_json_schema()["properties"].items():
            if _nullable(field_schema):
                model.model_validate({name: None})
                checked += 1
    assert checked > 0  # every service mounts the identity router, whose user update has nullable fields


def _paths(name: str) -> dict[str, Any]:
    app = next(spec for spec in SERVICES if spec.name == name).app_factory(None)
    paths: dict[str, Any] = app.openapi()["paths"]
    return paths


def test_conflicts_and_unconfigured_answers_are_declared() -> None:
    telemetry, cvat = _paths("telemetry-ingest"), _paths("cvat-sync")

    assert "409" in telemetry["/api/v1/tenants"]["post"]["responses"]
    assert "409" in telemetry["/api/v1/tenants/{tenant}/devices"]["post"]["responses"]
    assert {"409", "503"} <= set(cvat["/api/v1/sync-runs"]["post"]["responses"])


def test_the_cvat_webhook_documents_its_required_json_body() -> None:
    receiver = _paths("cvat-sync")["/api/v1/webhooks/cvat"]["post"]

    assert receiver["requestBody"]["required"] is True
    assert "application/json" in receiver["requestBody"]["content"]


def test_the_device_label_filter_documents_its_shape() -> None:
    parameters = _paths("telemetry-ingest")["/api/v1/tenants/{tenant}/devices"]["get"]["parameters"]
    label = next(parameter for parameter in parameters if parameter["name"] == "label")
    pattern = label["schema"]["anyOf"][0]["items"]["pattern"]

    assert re.fullmatch(pattern, "floor:3")
    assert re.fullmatch(pattern, "floor")
    assert re.fullmatch(pattern, "floor:two\nlines")
    assert not re.fullmatch(pattern, "")
    assert not re.fullmatch(pattern, ":3")
    assert label["schema"]["anyOf"][0]["maxItems"] == 10


def test_booleans_of_request_bodies_refuse_numbers(service: tuple[ServiceSpec, FastAPI]) -> None:
    _, app = service
    checked = 0
    for model in _request_models(app):
        for name, field_schema in model.model_json_schema()["properties"].items():
            if field_schema.get("type") != "boolean":
                continue
            try:
                model.model_validate({name: 0})
            except ValidationError as error:
                assert name in [detail["loc"][0] for detail in error.errors()], (model.__name__, name)
            else:
                pytest.fail(f"{model.__name__}.{name} accepted 0 as a boolean")
            checked += 1
    assert checked > 0
