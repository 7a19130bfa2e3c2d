"""The vision machine simulator against a small fake orchestrator (a real HTTP server on 127.0.0.1).

The fake records what the machines send (registrations, heartbeats, status updates, results) with the
credential and signature each call carried, and answers results as told, so the machine-side contract of
docs/vision-machines.md is checked from the orchestrator's side of the wire.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mirante.testing.streams import wait_until
from mirante.webhooks.signatures import SignatureError, generate_standard_secret, sign_standard, verify_standard

REPO_ROOT = Path(__file__).resolve().parents[3]
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))

from scripts.simulators.vision_machines import (  # noqa: E402
    HttpServer,
    MachineFleet,
    ProcessingTime,
    SimulatedMachine,
    main,
)

USER_TOKEN = "user-jwt-of-an-operator"
HEARTBEAT_KEYS = {"machine_id", "status", "system_info", "performance_metrics", "timestamp"}
SYSTEM_INFO_KEYS = {"cpu_usage", "memory_usage", "gpu_usage", "temperature"}
PERFORMANCE_KEYS = {"inspections_per_hour", "average_processing_time", "success_rate"}
RESULT_KEYS = {"machine_id", "inspection_id", "status", "results", "error_message", "timestamp", "attempt"}
STATUS_KEYS = {"machine_id", "status", "current_inspections", "timestamp"}
LONG = ProcessingTime(600.0, "fixed")
QUICK = ProcessingTime(0.01, "fixed")


@dataclass
class Received:
    kind: str
    machine_id: str | None
    """The machine the credential belongs to (None: no or an unknown credential)."""
    signed: bool
    """A Standard Webhooks signature valid with that machine's secret."""
    payload: dict[str, Any]
    message_id: str | None = None


@dataclass
class FakeOrchestrator:
    url: str = ""
    registrations: list[tuple[str | None, dict[str, Any]]] = field(default_factory=list)
    credentials: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    result_answers: dict[str, list[int]] = field(default_factory=dict)
    """Statuses to answer, in turn, to results of an inspection (then 200)."""

    def of(self, kind: str, machine_id: str | None = None) -> list[Received]:
        return [item for item in self.received if item.kind == kind and machine_id in (None, item.machine_id)]

    def results_for(self, inspection_id: str) -> list[Received]:
        return [item for item in self.of("results") if item.payload["inspection_id"] == inspection_id]

    async def register(self, request: Request) -> Response:
        body = await request.json()
        self.registrations.append((request.headers.get("authorization"), body))
        machine_id = f"mv_{uuid.uuid4().hex[:12]}"
        credential = secrets.token_urlsafe(32)
        self.credentials[credential] = machine_id
        self.secrets[machine_id] = generate_standard_secret()
        answer = {"id": machine_id, **body, "credential": credential, "webhook_secret": self.secrets[machine_id]}
        return Response(orjson.dumps(answer), 201, media_type="application/json")

    def webhook(self, kind: str) -> Any:
        async def receive(request: Request) -> Response:
            body = await request.body()
            scheme, _, credential = request.headers.get("authorization", "").partition(" ")
            machine_id = self.credentials.get(credential) if scheme == "Bearer" else None
            signed = False
            if machine_id is not None:
                try:
                    verify_standard(self.secrets[machine_id], request.headers, body)
                    signed = True
                except SignatureError:
                    signed = False
            payload = orjson.loads(body)
            self.received.append(Received(kind, machine_id, signed, payload, request.headers.get("webhook-id")))
            if machine_id is None:
                return Response(status_code=401)
            answers = self.result_answers.get(payload.get("inspection_id", ""), []) if kind == "results" else []
            status = answers.pop(0) if answers else 200
            return Response(b"{}", status, headers={"Retry-After": "0"}, media_type="application/json")

        return receive

    def app(self) -> Starlette:
        routes = [Route("/api/v1/machines/", self.register, methods=["POST"])]
        for kind in ("results", "heartbeat", "status"):
            routes.append(Route(f"/api/v1/webhooks/{kind}/", self.webhook(kind), methods=["POST"]))
        return Starlette(routes=routes)


@pytest.fixture
async def orchestrator() -> AsyncIterator[FakeOrchestrator]:
    fake = FakeOrchestrator()
    server = HttpServer(fake.app())
    await server.start()
    fake.url = server.url
    try:
        yield fake
    finally:
        await server.stop()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as http:
        yield http


def order(fake: FakeOrchestrator, inspection_id: str, **changes: Any) -> dict[str, Any]:
    """An inspection as the orchestrator sends it to a machine."""
    document: dict[str, Any] = {
        "inspection_id": inspection_id,
        "inspection_type": "blob_detection",
        "name": "Inspeção de Qualidade A",
        "pipeline_config": {
            "tools": [
                {"name": "image_source", "parameters": {"source_type": "file", "file_path": "/path/to/image.jpg"}},
                {"name": "blob_detection", "parameters": {"min_area": 100, "max_area": 10000, "threshold": 128}},
            ],
            "connections": [{"from": "image_source", "to": "blob_detection"}],
        },
        "priority": 2,
        "attempt": 1,
        "callbacks": {
            "results": f"{fake.url}/api/v1/webhooks/results/",
            "status": f"{fake.url}/api/v1/webhooks/status/",
            "heartbeat": f"{fake.url}/api/v1/webhooks/heartbeat/",
        },
    }
    document.update(changes)
    return document


async def send(client: httpx.AsyncClient, machine: SimulatedMachine, document: dict[str, Any]) -> httpx.Response:
    body = orjson.dumps(document)
    headers = {"Content-Type": "application/json"}
    if machine.webhook_secret is not None:
        headers.update(sign_standard(machine.webhook_secret, body))
    return await client.post(f"{machine.url}/api/v1/inspections/", content=body, headers=headers)


async def cancel(client: httpx.AsyncClient, machine: SimulatedMachine, inspection_id: str) -> httpx.Response:
    return await client.post(f"{machine.url}/api/v1/inspections/{inspection_id}/cancel/")


def ids(count: int) -> list[str]:
    return [f"ins_{uuid.uuid4().hex[:12]}" for _ in range(count)]


async def test_machines_register_as_the_user_and_heartbeat_with_their_own_credential(
    orchestrator: FakeOrchestrator,
) -> None:
    async with MachineFleet(2, capacity=3, heartbeat_interval=0.05, status_updates=False) as fleet:
        await fleet.register(orchestrator.url, token=USER_TOKEN)
        machine_ids = [machine.machine_id for machine in fleet.machines]

        async def two_beats_each() -> bool:
            return all(len(orchestrator.of("heartbeat", machine_id)) >= 2 for machine_id in machine_ids)

        await wait_until(two_beats_each, what="two heartbeats from each machine")

    assert [auth for auth, _ in orchestrator.registrations] == [f"Bearer {USER_TOKEN}"] * 2
    for machine, (_, registration) in zip(fleet.machines, orchestrator.registrations, strict=True):
        assert registration == {
            "name": machine.profile.name,
            "location": "Linha de Produção A",
            "ip_address": "127.0.0.1",
            "port": machine.port,
            "max_concurrent_inspections": 3,
            "supported_inspection_types": ["blob_detection", "edge_detection"],
            "hardware_specs": {"gpu": "RTX 3080", "cpu": "Intel i7-10700K", "memory": "32GB"},
        }
    assert all(item.machine_id is not None for item in orchestrator.received)
    beats = orchestrator.of("heartbeat")
    assert all(beat.signed for beat in beats)
    for beat in beats:
        assert set(beat.payload) == HEARTBEAT_KEYS
        assert beat.payload["machine_id"] == beat.machine_id
        assert set(beat.payload["system_info"]) == SYSTEM_INFO_KEYS
        assert set(beat.payload["performance_metrics"]) == PERFORMANCE_KEYS
        assert beat.payload["timestamp"].endswith("Z")
    # A clean stop says goodbye.
    assert {item.payload["status"] for item in orchestrator.of("status")} == {"offline"}


async def test_inspections_are_accepted_up_to_capacity_then_refused(
    orchestrator: FakeOrchestrator, client: httpx.AsyncClient
) -> None:
    first, second, third = ids(3)
    async with MachineFleet(1, capacity=2, processing=LONG) as fleet:
        machine = fleet.machines[0]

        accepted = [await send(client, machine, order(orchestrator, one)) for one in (first, second)]
        refused = await send(client, machine, order(orchestrator, third))
        again = await send(client, machine, order(orchestrator, first))
        status = await client.get(f"{machine.url}/api/v1/status")

    assert [response.status_code for response in accepted] == [202, 202]
    assert accepted[1].json() | {"estimated_processing_time": None} == {
        "inspection_id": second,
        "inspection_type": "blob_detection",
        "attempt": 1,
        "status": "processing",
        "result_delivery": None,
        "current_inspections": 2,
        "max_concurrent_inspections": 2,
        "duplicate": False,
        "estimated_processing_time": None,
    }
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "at_capacity"
    assert refused.json()["error"]["details"] == {"current_inspections": 2, "max_concurrent_inspections": 2}
    assert int(refused.headers["retry-after"]) >= 1
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["current_inspections"] == 2
    assert status.json()["status"] == "busy"
    assert sorted(item["inspection_id"] for item in status.json()["inspections"]) == sorted([first, second])
    assert machine.counts["accepted"] == 2
    assert machine.counts["refused_busy"] == 1
    assert machine.counts["duplicate"] == 1


async def test_bad_orders_are_refused_with_the_field_at_fault(
    orchestrator: FakeOrchestrator, client: httpx.AsyncClient
) -> None:
    (one,) = ids(1)
    async with MachineFleet(1, processing=LONG) as fleet:
        machine = fleet.machines[0]
        unsupported = await send(client, machine, order(orchestrator, one, inspection_type="ocr"))
        no_callback = await send(client, machine, order(orchestrator, one, callbacks={"results": "ftp://x"}))
        bad_priority = await send(client, machine, order(orchestrator, one, priority=0))
        not_json = await client.post(f"{machine.url}/api/v1/inspections", content=b"{")
        unknown = await client.get(f"{machine.url}/api/v1/inspections/{one}/")

    assert unsupported.status_code == 422
    assert unsupported.json()["error"]["code"] == "unsupported_inspection_type"
    assert no_callback.status_code == 422
    assert no_callback.json()["error"]["details"][0]["field"] == "callbacks.results"
    assert bad_priority.json()["error"]["details"][0]["field"] == "priority"
    assert not_json.status_code == 400
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_inspection"


async def test_results_reach_the_callback_with_the_credential_and_follow_the_seeded_plan(
    orchestrator: FakeOrchestrator, client: httpx.AsyncClient
) -> None:
    inspections = ids(24)
    async with MachineFleet(
        1, capacity=30, processing=QUICK, failure_rate=0.3, seed=11, heartbeat_interval=60
    ) as fleet:
        await fleet.register(orchestrator.url, token=USER_TOKEN)
        machine = fleet.machines[0]
        for one in inspections:
            assert (await send(client, machine, order(orchestrator, one))).status_code == 202

        async def all_results() -> bool:
            # Counted on both ends: the machine counts a delivery once it has read the answer.
            received = len(orchestrator.of("results"))
            return received == machine.counts["results_delivered"] == len(inspections)

        await wait_until(all_results, what="a result for every inspection")

    results = orchestrator.of("results")
    assert all(item.machine_id == machine.machine_id and item.signed for item in results)
    assert sorted(item.payload["inspection_id"] for item in results) == sorted(inspections)
    failed = {item.payload["inspection_id"] for item in results if item.payload["status"] == "failed"}
    assert failed == {one for one in inspections if machine.plan(one).fails}
    assert 0 < len(failed) < len(inspections)
    for item in results:
        payload = item.payload
        assert set(payload) == RESULT_KEYS
        assert payload["machine_id"] == machine.machine_id
        assert payload["attempt"] == 1
        assert payload["results"]["processing_time"] >= 0
        if payload["status"] == "failed":
            assert payload["error_message"]
        else:
            assert payload["error_message"] is None
            assert payload["results"]["blob_count"] == len(payload["results"]["blob_locations"])
            assert 0 < payload["results"]["confidence_score"] <= 1
    assert machine.counts["results_delivered"] == len(inspections)
    # Each change of load was reported, and the last report says the machine is idle again.
    updates = [item.payload for item in orchestrator.of("status")]
    assert all(set(update) == STATUS_KEYS for update in updates)
    assert any(update["current_inspections"] == 0 for update in updates)


def test_the_failure_rate_is_honoured_and_repeatable_with_a_seed() -> None:
    inspections = [f"ins_{index:012x}" for index in range(2000)]

    def failing(seed: int, rate: float) -> set[str]:
        machine = MachineFleet(1, seed=seed, failure_rate=rate).machines[0]
        return {one for one in inspections if machine.plan(one).fails}

    quarter = failing(5, 0.25)

    assert 400 < len(quarter) < 600
    assert failing(5, 0.25) == quarter
    assert failing(6, 0.25) != quarter
    assert failing(5, 0.0) == set()
    assert len(failing(5, 1.0)) == len(inspections)


def test_slow_machines_take_longer_for_the_same_inspection() -> None:
    fleet = MachineFleet(3, slow_machines=1, slow_factor=4.0, seed=3, processing=ProcessingTime(2.0, "fixed"))

    times = [machine.plan("ins_00000000000a").processing_time for machine in fleet.machines]

    assert times == [2.0, 2.0, 8.0]
    assert [machine.profile.slow_factor for machine in fleet.machines] == [1.0, 1.0, 4.0]


async def test_a_refused_result_is_dropped_and_a_failed_delivery_is_retried(
    orchestrator: FakeOrchestrator, client: httpx.AsyncClient
) -> None:
    refused, retried = ids(2)
    orchestrator.result_answers = {refused: [409], retried: [503, 502]}
    async with MachineFleet(1, capacity=2, processing=QUICK, heartbeat_interval=60) as fleet:
        await fleet.register(orchestrator.url, token=USER_TOKEN)
        machine = fleet.machines[0]
        for one in (refused, retried):
            assert (await send(client, machine, order(orchestrator, one))).status_code == 202

        async def settled() -> bool:
            return machine.counts["results_refused"] + machine.counts["results_delivered"] == 2

        await wait_until(settled, what="both results settled")

    assert len(orchestrator.results_for(refused)) == 1
    assert machine.inspections[refused].answer == "refused"
    deliveries = orchestrator.results_for(retried)
    assert len(deliveries) == 3
    assert machine.inspections[retried].answer == "delivered"
    # A retry is the same message under the same id, so the orchestrator can recognise it.
    assert len({orjson.dumps(item.payload) for item in deliveries}) == 1
    assert {item.message_id for item in deliveries} == {f"msg_{machine.machine_id}_{retried}_1"}
    assert all(item.signed for item in deliveries)


async def test_cancel_stops_an_inspection_and_frees_its_slot(
    orchestrator: FakeOrchestrator, client: httpx.AsyncClient
) -> None:
    dropped, following = ids(2)
    async with MachineFleet(1, capacity=1, processing=LONG, heartbeat_interval=60) as fleet:
        await fleet.register(orchestrator.url, token=USER_TOKEN)
        machine = fleet.machines[0]
        assert (await send(client, machine, order(orchestrator, dropped))).status_code == 202

        cancelled = await cancel(client, machine, dropped)
        cancelled_again = await cancel(client, machine, dropped)
        unknown = await cancel(client, machine, "ins_000000000000")
        after = await send(client, machine, order(orchestrator, following))
        shown = await client.get(f"{machine.url}/api/v1/inspections/{dropped}")
        resent = await send(client, machine, order(orchestrator, dropped))

        async def idle_reported() -> bool:
            return any(item.payload["current_inspections"] == 0 for item in orchestrator.of("status"))

        await wait_until(idle_reported, what="a status update after the cancel")

    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["current_inspections"] == 0
    assert cancelled_again.status_code == 200
    assert unknown.status_code == 404
    assert after.status_code == 202
    assert shown.json()["status"] == "cancelled"
    # The same attempt again is the same order: still cancelled, not run.
    assert resent.status_code == 200
    assert resent.json()["status"] == "cancelled"
    assert machine.counts["cancelled"] == 1
    assert orchestrator.results_for(dropped) == []


async def test_a_later_attempt_of_a_dropped_inspection_runs_again(
    orchestrator: FakeOrchestrator, client: httpx.AsyncClient
) -> None:
    (one,) = ids(1)
    async with MachineFleet(1, capacity=1, processing=QUICK, heartbeat_interval=60) as fleet:
        await fleet.register(orchestrator.url, token=USER_TOKEN)
        machine = fleet.machines[0]
        machine.profile = replace(machine.profile, processing=LONG)
        assert (await send(client, machine, order(orchestrator, one))).status_code == 202
        assert (await cancel(client, machine, one)).status_code == 200
        machine.profile = replace(machine.profile, processing=QUICK)

        rerun = await send(client, machine, order(orchestrator, one, attempt=2))

        async def delivered() -> bool:
            return len(orchestrator.results_for(one)) == 1

        await wait_until(delivered, what="the result of the second attempt")

    assert rerun.status_code == 202
    assert orchestrator.results_for(one)[0].payload["attempt"] == 2


async def test_a_dying_machine_stops_heartbeating_and_refuses_connections_until_it_comes_back(
    orchestrator: FakeOrchestrator, client: httpx.AsyncClient
) -> None:
    held, later = ids(2)
    async with MachineFleet(2, processing=LONG, heartbeat_interval=0.05, status_updates=False) as fleet:
        await fleet.register(orchestrator.url, token=USER_TOKEN)
        dying, steady = fleet.machines
        assert (await send(client, dying, order(orchestrator, held))).status_code == 202

        async def beating() -> bool:
            return len(orchestrator.of("heartbeat", dying.machine_id)) >= 2

        await wait_until(beating, what="heartbeats before the death")

        await dying.die()
        steady_at_death = len(orchestrator.of("heartbeat", steady.machine_id))
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{dying.url}/health")
        with pytest.raises(httpx.ConnectError):
            await send(client, dying, order(orchestrator, later))

        async def steady_beats(count: int) -> None:
            async def enough() -> bool:
                return len(orchestrator.of("heartbeat", steady.machine_id)) >= count

            await wait_until(enough, what=f"{count} heartbeats of the steady machine")

        # Two beats of the other machine let a heartbeat that was on the wire at the death arrive; five more
        # give the dead machine time for several, had it any.
        await steady_beats(steady_at_death + 2)
        beats_at_death = len(orchestrator.of("heartbeat", dying.machine_id))
        await steady_beats(steady_at_death + 7)
        beats_while_dead = len(orchestrator.of("heartbeat", dying.machine_id)) - beats_at_death

        port = dying.port
        await dying.revive()

        async def beating_again() -> bool:
            return len(orchestrator.of("heartbeat", dying.machine_id)) > beats_at_death

        await wait_until(beating_again, what="heartbeats after coming back")
        lost = await client.get(f"{dying.url}/api/v1/inspections/{held}")
        accepted = await send(client, dying, order(orchestrator, later))

    assert beats_while_dead == 0
    assert dying.port == port
    assert lost.status_code == 404
    assert accepted.status_code == 202
    assert dying.deaths == 1


async def test_orchestrator_calls_must_be_signed_when_the_machine_requires_it(
    orchestrator: FakeOrchestrator, client: httpx.AsyncClient
) -> None:
    (one,) = ids(1)
    async with MachineFleet(1, processing=LONG, heartbeat_interval=60, require_signature=True) as fleet:
        await fleet.register(orchestrator.url, token=USER_TOKEN)
        machine = fleet.machines[0]
        unsigned = await client.post(f"{machine.url}/api/v1/inspections/", json=order(orchestrator, one))
        other_secret = order(orchestrator, one)
        body = orjson.dumps(other_secret)
        forged = await client.post(
            f"{machine.url}/api/v1/inspections/",
            content=body,
            headers={"Content-Type": "application/json", **sign_standard(generate_standard_secret(), body)},
        )
        signed = await send(client, machine, order(orchestrator, one))

    assert unsigned.status_code == 401
    assert forged.status_code == 401
    assert signed.status_code == 202


async def test_an_order_for_another_machine_is_refused(
    orchestrator: FakeOrchestrator, client: httpx.AsyncClient
) -> None:
    (one,) = ids(1)
    async with MachineFleet(1, processing=LONG, heartbeat_interval=60) as fleet:
        await fleet.register(orchestrator.url, token=USER_TOKEN)
        misdirected = await send(client, fleet.machines[0], order(orchestrator, one, machine_id="mv_000000000000"))

    assert misdirected.status_code == 422
    assert misdirected.json()["error"]["details"][0]["field"] == "machine_id"


async def test_the_command_line_registers_the_fleet_and_prints_a_summary(
    orchestrator: FakeOrchestrator, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "--orchestrator",
        orchestrator.url,
        "--token",
        USER_TOKEN,
        "--machines",
        "2",
        "--heartbeat-interval",
        "0.05",
        "--duration",
        "0.3",
        "--json",
    ]

    code = await asyncio.to_thread(main, argv)

    assert code == 0
    summary = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["machines"] == 2
    assert summary["capacity"] == 4
    assert len(orchestrator.registrations) == 2


def test_the_command_line_refuses_registering_without_credentials(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VISION_SIM_TOKEN", raising=False)
    monkeypatch.delenv("VISION_SIM_API_KEY", raising=False)
    with pytest.raises(SystemExit):
        main(["--orchestrator", "http://127.0.0.1:9", "--machines", "1"])

    assert "--token or --api-key" in capsys.readouterr().err
