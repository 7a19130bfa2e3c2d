"""Inspections over HTTP: the contract's payload, pipeline validation, filters, updates while pending, the
status flow with its history, and the cancelled event in the outbox."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.testing.plugin import HeadersFactory
from vision_orchestrator.inspections import service
from vision_orchestrator.lifecycle import InspectionStatus
from vision_orchestrator.tables import Inspection, Machine

INSPECTIONS = "/api/v1/inspections/"


def pipeline(**changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "tools": [
            {"name": "image_source", "parameters": {"source_type": "file", "file_path": "/path/to/image.jpg"}},
            {"name": "blob_detection", "parameters": {"min_area": 100, "max_area": 10000, "threshold": 128}},
        ],
        "connections": [{"from": "image_source", "to": "blob_detection"}],
    }
    return {**config, **changes}


def inspection_body(**fields: Any) -> dict[str, Any]:
    return {
        "name": "Inspeção de Qualidade A",
        "description": "Verificação de defeitos na linha A",
        "inspection_type": "blob_detection",
        "pipeline_config": pipeline(),
        "priority": 2,
        **fields,
    }


async def create(client: httpx.AsyncClient, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    response = await client.post(INSPECTIONS, json=inspection_body(**fields), headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def machine(client: httpx.AsyncClient, headers: dict[str, str], types: list[str]) -> str:
    response = await client.post(
        "/api/v1/machines/",
        json={
            "name": f"MV-{uuid.uuid4().hex[:8]}",
            "ip_address": "10.0.0.5",
            "port": 5000,
            "max_concurrent_inspections": 2,
            "supported_inspection_types": types,
        },
        headers=headers,
    )
    assert response.status_code == 201, response.text
    machine_id: str = response.json()["id"]
    return machine_id


async def test_create_answers_the_contract_payload_with_its_history(
    client: httpx.AsyncClient, auth_headers: HeadersFactory
) -> None:
    operator = await auth_headers("operator")
    machine_id = await machine(client, await auth_headers("admin"), ["blob_detection"])

    response = await client.post(INSPECTIONS, json=inspection_body(target_machine_id=machine_id), headers=operator)

    assert response.status_code == 201, response.text
    body = response.json()
    assert re.fullmatch(r"ins_[0-9a-f]{12}", body["id"])
    assert response.headers["location"] == f"/api/v1/inspections/{body['id']}/"
    assert body["status"] == "pending"
    assert body["priority"] == 2
    assert body["target_machine_id"] == machine_id
    assert body["assigned_machine_id"] is None
    assert body["pipeline_config"]["tools"][1] == {
        "name": "blob_detection",
        "type": "blob_detection",
        "parameters": {"min_area": 100, "max_area": 10000, "threshold": 128},
    }
    assert body["pipeline_config"]["connections"] == [{"from": "image_source", "to": "blob_detection"}]
    assert [(change["from_status"], change["to_status"]) for change in body["history"]] == [(None, "pending")]
    assert body["history"][0]["actor"].startswith("user:operator-")
    assert body["results"] == []


@pytest.mark.parametrize(
    ("config", "field", "message"),
    [
        (
            pipeline(
                tools=[{"name": "image_source"}, {"name": "image_source", "type": "blob_detection"}], connections=[]
            ),
            "body.pipeline_config.tools[1].name",
            "tool name 'image_source' is used by tools[0] already",
        ),
        (
            pipeline(tools=[{"name": "image_source"}, {"name": "blob_detection"}, {"name": "x_ray"}]),
            "body.pipeline_config.tools[2].name",
            "tool 'x_ray' has the unknown type 'x_ray'",
        ),
        (
            pipeline(tools=[{"name": "image_source"}, {"name": "blobs", "type": "sonar"}], connections=[]),
            "body.pipeline_config.tools[1].type",
            "tool 'blobs' has the unknown type 'sonar'",
        ),
        (
            pipeline(connections=[{"from": "image_source", "to": "edges"}]),
            "body.pipeline_config.connections[0].to",
            "connection 'image_source' -> 'edges' names no tool 'edges'",
        ),
        (
            pipeline(
                tools=[
                    {"name": "image_source"},
                    {"name": "a", "type": "blob_detection"},
                    {"name": "b", "type": "color_filter"},
                ],
                connections=[{"from": "image_source", "to": "a"}, {"from": "a", "to": "b"}, {"from": "b", "to": "a"}],
            ),
            "body.pipeline_config.connections",
            "the connections form a cycle: a -> b -> a",
        ),
    ],
)
async def test_an_invalid_pipeline_is_422_naming_the_tool_or_connection(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, config: dict[str, Any], field: str, message: str
) -> None:
    response = await client.post(
        INSPECTIONS, json=inspection_body(pipeline_config=config), headers=await auth_headers("operator")
    )

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_pipeline"
    assert error["details"] == [{"field": field, "message": message}]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"priority": 0}, "body.priority"),
        ({"priority": 2**40}, "body.priority"),
        ({"name": "a\x00"}, "body.name"),
        ({"inspection_type": "X ray"}, "body.inspection_type"),
        ({"target_machine_id": "machine-1"}, "body.target_machine_id"),
        ({"pipeline_config": {"tools": []}}, "body.pipeline_config.tools"),
        ({"pipeline_config": pipeline(tools=[{"name": "image_source", "parameters": {"k": "\x00"}}])},
         "body.pipeline_config.tools.0.parameters"),
    ],
)  # fmt: skip
async def test_invalid_fields_are_422_naming_them(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, fields: dict[str, Any], field: str
) -> None:
    response = await client.post(INSPECTIONS, json=inspection_body(**fields), headers=await auth_headers("operator"))

    assert response.status_code == 422, response.text
    assert [detail["field"] for detail in response.json()["error"]["details"]] == [field]


@pytest.mark.parametrize(
    ("fields", "code", "details"),
    [
        (
            {"inspection_type": "x_ray"},
            "inspection_type_not_found",
            {"field": "inspection_type", "names": ["x_ray"]},
        ),
        ({"target_machine_id": "mv_000000000000"}, "machine_not_found", {"field": "target_machine_id"}),
    ],
)
async def test_a_body_naming_a_type_or_machine_that_does_not_exist_is_404_naming_the_field(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, fields: dict[str, Any], code: str, details: Any
) -> None:
    operator = await auth_headers("operator")
    created = await client.post(INSPECTIONS, json=inspection_body(**fields), headers=operator)
    existing = await create(client, operator)
    changed = await client.patch(f"{INSPECTIONS}{existing['id']}/", json=fields, headers=operator)
    replaced = await client.put(f"{INSPECTIONS}{existing['id']}/", json=inspection_body(**fields), headers=operator)

    for response in (created, changed, replaced):
        assert response.status_code == 404, response.text
        error = response.json()["error"]
        assert (error["code"], error["details"]) == (code, details)
    assert (await client.get(f"{INSPECTIONS}{existing['id']}/", headers=operator)).json()["name"] == existing["name"]


async def test_a_target_machine_that_does_not_declare_the_type_is_409(
    client: httpx.AsyncClient, auth_headers: HeadersFactory
) -> None:
    machine_id = await machine(client, await auth_headers("admin"), ["color_filter"])

    response = await client.post(
        INSPECTIONS, json=inspection_body(target_machine_id=machine_id), headers=await auth_headers("operator")
    )

    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert (error["code"], error["details"]) == (
        "machine_lacks_type",
        {"field": "target_machine_id", "inspection_type": "blob_detection"},
    )
    assert "does not declare the inspection type 'blob_detection'" in error["message"]


async def test_filters_and_absolute_page_links(client: httpx.AsyncClient, auth_headers: HeadersFactory) -> None:
    operator = await auth_headers("operator")
    machine_id = await machine(client, await auth_headers("admin"), ["blob_detection", "color_filter"])
    before = (await create(client, operator))["created_at"]
    ours = [await create(client, operator, target_machine_id=machine_id) for _ in range(3)]
    other_type = await create(client, operator, inspection_type="color_filter", target_machine_id=machine_id)
    cancelled = await client.post(f"{INSPECTIONS}{ours[0]['id']}/cancel/", headers=operator)
    assert cancelled.status_code == 200

    by_machine = await client.get(INSPECTIONS, params={"machine_id": machine_id}, headers=operator)
    pending_blobs = await client.get(
        INSPECTIONS,
        params={"machine_id": machine_id, "status": "pending", "inspection_type": "blob_detection", "page_size": 1},
        headers=operator,
    )
    after = await client.get(INSPECTIONS, params={"created_after": before, "machine_id": machine_id}, headers=operator)
    second = await client.get(pending_blobs.json()["next"], headers=operator)

    assert {item["id"] for item in by_machine.json()["results"]} == {item["id"] for item in [*ours, other_type]}
    assert pending_blobs.json()["count"] == 2
    assert pending_blobs.json()["next"].startswith("http://testserver/api/v1/inspections/?")
    assert second.json()["previous"].startswith("http://testserver/api/v1/inspections/?")
    assert {pending_blobs.json()["results"][0]["id"], second.json()["results"][0]["id"]} == {
        ours[1]["id"],
        ours[2]["id"],
    }
    assert after.json()["count"] == 4
    for bad in ({"created_after": "0001-01-01T00:00:00+01:00"}, {"status": "lost"}, {"created_after": "yesterday"}):
        assert (await client.get(INSPECTIONS, params=bad, headers=operator)).status_code == 422


async def test_sorted_by_priority_the_list_is_in_queue_order(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession
) -> None:
    operator = await auth_headers("operator")
    machine_id = await machine(client, await auth_headers("admin"), ["blob_detection"])
    low, high_first, high_second = [
        await create(client, operator, priority=priority, target_machine_id=machine_id) for priority in (7, 1, 1)
    ]
    for item, minutes_ago in ((low, 30), (high_first, 20), (high_second, 10)):
        await db_session.execute(
            text(
                "UPDATE vision_orchestrator.inspections SET queued_at = now() - make_interval(mins => :m) WHERE id = :i"
            ),
            {"m": minutes_ago, "i": item["id"]},
        )

    queue = await client.get(
        INSPECTIONS, params={"machine_id": machine_id, "status": "pending", "sort": "priority"}, headers=operator
    )

    assert [item["id"] for item in queue.json()["results"]] == [high_first["id"], high_second["id"], low["id"]]
    assert (await client.get(INSPECTIONS, params={"sort": "name"}, headers=operator)).status_code == 422


async def test_updates_only_while_pending(client: httpx.AsyncClient, auth_headers: HeadersFactory) -> None:
    operator = await auth_headers("operator")
    inspection = await create(client, operator)
    path = f"{INSPECTIONS}{inspection['id']}/"

    patched = await client.patch(path, json={"priority": 1, "description": "urgent"}, headers=operator)
    put = await client.put(path.rstrip("/"), json=inspection_body(name="Renamed", priority=9), headers=operator)
    bad_pipeline = await client.patch(
        path,
        json={"pipeline_config": pipeline(connections=[{"from": "nowhere", "to": "image_source"}])},
        headers=operator,
    )
    await client.post(f"{path}cancel/", json={"reason": "wrong line"}, headers=operator)
    refused = await client.patch(path, json={"priority": 3}, headers=operator)

    assert patched.status_code == 200
    assert (patched.json()["priority"], patched.json()["description"]) == (1, "urgent")
    assert put.status_code == 200
    assert (put.json()["name"], put.json()["priority"], put.json()["description"]) == (
        "Renamed",
        9,
        "Verificação de defeitos na linha A",
    )
    assert bad_pipeline.status_code == 422
    assert bad_pipeline.json()["error"]["details"][0]["field"] == "body.pipeline_config.connections[0].from"
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "inspection_not_pending"


async def test_the_status_flow_keeps_history_slots_and_refuses_impossible_moves(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession
) -> None:
    operator = await auth_headers("operator")
    machine_id = await machine(client, await auth_headers("admin"), ["blob_detection"])
    inspection_id = (await create(client, operator))["id"]

    async def move(target: InspectionStatus, **extra: Any) -> None:
        row = await db_session.get(Inspection, inspection_id, with_for_update=True, populate_existing=True)
        assert row is not None
        await service.transition(db_session, row, target, actor="system", **extra)

    async def slots() -> int:
        return int(await db_session.scalar(select(Machine.current_inspections).where(Machine.id == machine_id)) or 0)

    await move(InspectionStatus.assigned, machine_id=machine_id, reason="load_balanced")
    assert await slots() == 1
    await move(InspectionStatus.pending, reason="machine went offline")
    assert await slots() == 0
    await move(InspectionStatus.assigned, machine_id=machine_id)
    await move(InspectionStatus.processing)
    assert await slots() == 1
    await move(InspectionStatus.completed)
    assert await slots() == 0

    detail = (await client.get(f"{INSPECTIONS}{inspection_id}/", headers=operator)).json()
    assert detail["status"] == "completed"
    assert detail["assigned_machine_id"] == machine_id
    assert detail["finished_at"] is not None
    assert [(change["from_status"], change["to_status"]) for change in detail["history"]] == [
        (None, "pending"),
        ("pending", "assigned"),
        ("assigned", "pending"),
        ("pending", "assigned"),
        ("assigned", "processing"),
        ("processing", "completed"),
    ]
    assert detail["history"][1]["reason"] == "load_balanced"
    assert detail["history"][1]["machine_id"] == machine_id
    lease = await db_session.scalar(select(Inspection.lease).where(Inspection.id == inspection_id))
    assert lease == 2

    again = await client.post(f"{INSPECTIONS}{inspection_id}/cancel/", headers=operator)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "invalid_transition"


async def test_cancel_frees_the_slot_and_queues_the_event(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, db_session: AsyncSession
) -> None:
    operator = await auth_headers("operator")
    machine_id = await machine(client, await auth_headers("admin"), ["blob_detection"])
    inspection_id = (await create(client, operator))["id"]
    row = await db_session.get(Inspection, inspection_id, with_for_update=True)
    assert row is not None
    await service.transition(db_session, row, InspectionStatus.assigned, actor="system", machine_id=machine_id)

    response = await client.post(
        f"{INSPECTIONS.rstrip('/')}/{inspection_id}/cancel", json={"reason": "line stopped"}, headers=operator
    )

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert response.json()["history"][-1]["reason"] == "line stopped"
    slots = await db_session.scalar(select(Machine.current_inspections).where(Machine.id == machine_id))
    assert slots == 0
    events = (
        await db_session.execute(
            text("SELECT type, subject, envelope FROM vision_orchestrator.outbox WHERE subject = :subject"),
            {"subject": f"inspection/{inspection_id}"},
        )
    ).all()
    assert [event.type for event in events] == ["vision.inspection.cancelled"]
    assert events[0].envelope["data"] == {
        "inspection_id": inspection_id,
        "previous_status": "assigned",
        "machine_id": machine_id,
        "reason": "line stopped",
        "cancelled_by": events[0].envelope["data"]["cancelled_by"],
    }
    assert events[0].envelope["data"]["cancelled_by"].startswith("user:operator-")


async def test_the_catalogue_adds_describes_and_removes_only_unused_types(
    client: httpx.AsyncClient, auth_headers: HeadersFactory
) -> None:
    admin = await auth_headers("admin")
    name = f"t_{uuid.uuid4().hex[:8]}"
    types = "/api/v1/inspection-types/"

    added = await client.post(types, json={"name": name, "description": "scratches"}, headers=admin)
    again = await client.post(types, json={"name": name}, headers=admin)
    described = await client.patch(f"{types}{name}/", json={"description": "deep scratches"}, headers=admin)
    nulled = await client.patch(f"{types}{name}", json={"description": None}, headers=admin)
    machine_id = await machine(client, admin, [name])
    in_use = await client.delete(f"{types}{name}/", headers=admin)
    seeded = await client.get(types, params={"page_size": 200}, headers=admin)

    assert added.status_code == 201
    assert again.status_code == 409
    assert described.json()["description"] == "deep scratches"
    assert nulled.status_code == 422
    assert in_use.status_code == 409
    assert in_use.json()["error"]["details"] == {"machines": 1, "inspections": 0}
    assert {"blob_detection", "edge_detection", "color_filter"} <= {item["name"] for item in seeded.json()["results"]}
    assert (await client.delete(f"/api/v1/machines/{machine_id}/", headers=admin)).status_code == 204
    assert (await client.delete(f"{types}{name}/", headers=admin)).status_code == 204
    assert (await client.get(f"{types}{name}/", headers=admin)).status_code == 404
