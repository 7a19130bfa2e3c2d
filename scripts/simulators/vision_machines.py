"""Simulated machine-vision machines for vision-orchestrator: real HTTP servers on 127.0.0.1, one per machine.

Each machine speaks the machine-side contract of `docs/vision-machines.md`: it registers with the orchestrator
(`POST /api/v1/machines/` with a user's token or an API key, keeping the credential the answer carries),
heartbeats every few seconds with the seed's system info and performance metrics, accepts inspections on
`POST /api/v1/inspections/` up to its capacity (503 `at_capacity` beyond it; a re-sent inspection is accepted
once), works on each for a while (a configurable distribution of processing times), and posts the result to
the callback the inspection named, with `Authorization: Bearer <credential>` and, when it holds a secret, a
Standard Webhooks signature. Some results fail (`failure_rate`), some machines are slow (`slow_factor`,
`answer_delay`), and a machine can die: its port refuses connections, its heartbeats stop, what it held is
lost; `revive()` brings it back on the same port.

Everything random comes from the seed: what happens to an inspection (`SimulatedMachine.plan`) depends only
on the seed, the machine's index, the inspection id and its attempt, so a test knows which ones fail.

Everything runs on the caller's asyncio loop (tests use `MachineFleet` as an async context manager). A user
can run a fleet on its own:

    .venv/bin/python scripts/simulators/vision_machines.py --orchestrator http://127.0.0.1:8003 \\
        --token "$TOKEN" --machines 5 --capacity 2 --failure-rate 0.05 --slow-machines 1 --dying-machine
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import re
import signal
import socket
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mirante.backoff import Backoff
from mirante.webhooks.signatures import SignatureError, sign_standard, verify_standard

API = "/api/v1"
SEED_INSPECTION_TYPES = ("blob_detection", "edge_detection", "color_filter")
DEFAULT_HEARTBEAT_INTERVAL = 5.0
DEFAULT_RESULT_ATTEMPTS = 5
FINISHED_KEPT = 10_000
"""Finished inspections a machine remembers, so a re-sent one is recognised rather than run twice."""
REQUEST_TIMEOUT = 10.0
Distribution = Literal["fixed", "uniform", "exponential", "lognormal"]
DISTRIBUTIONS: tuple[Distribution, ...] = ("fixed", "uniform", "exponential", "lognormal")
InspectionState = Literal["processing", "completed", "failed", "cancelled"]
Answer = Literal["delivered", "refused", "lost"]

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_JSON = "application/json"


class SimulatorError(RuntimeError):
    """The fleet could not do what it was asked (a port in use, a registration the orchestrator refused)."""


def utc_now() -> str:
    """Now as the seed writes timestamps: RFC 3339 in UTC with `Z`."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class ProcessingTime:
    """How long an inspection takes, in seconds: `mean`, drawn from `distribution` with a relative `spread`.

    `uniform` draws within `mean * (1 +- spread)`, `lognormal` has `mean` as its mean and `spread` as the sigma
    of its logarithm (a long right tail, like real pipelines), `exponential` ignores `spread`.
    """

    mean: float = 2.0
    distribution: Distribution = "lognormal"
    spread: float = 0.25

    def __post_init__(self) -> None:
        if not math.isfinite(self.mean) or self.mean < 0:
            raise ValueError("the mean processing time must be a finite number of seconds, 0 or more")
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution must be one of {DISTRIBUTIONS}")
        if not 0 <= self.spread <= (1 if self.distribution == "uniform" else 3):
            raise ValueError("spread must be within [0, 1] for uniform and [0, 3] for lognormal")

    def sample(self, rng: random.Random) -> float:
        if self.mean == 0 or self.distribution == "fixed":
            return self.mean
        if self.distribution == "uniform":
            return rng.uniform(self.mean * (1 - self.spread), self.mean * (1 + self.spread))
        if self.distribution == "exponential":
            return rng.expovariate(1 / self.mean)
        return rng.lognormvariate(math.log(self.mean) - self.spread**2 / 2, self.spread)


@dataclass(frozen=True)
class MachineProfile:
    """What one machine is: its registration fields and how it behaves."""

    name: str
    capacity: int = 2
    inspection_types: tuple[str, ...] = SEED_INSPECTION_TYPES[:2]
    location: str = "Linha de Produção A"
    hardware_specs: dict[str, str] = field(
        default_factory=lambda: {"gpu": "RTX 3080", "cpu": "Intel i7-10700K", "memory": "32GB"}
    )
    processing: ProcessingTime = ProcessingTime()
    failure_rate: float = 0.0
    slow_factor: float = 1.0
    """Processing times are multiplied by it: a slow machine."""
    answer_delay: float = 0.0
    """Seconds the machine waits before answering each call of the orchestrator: a slow HTTP peer."""

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise ValueError("capacity must be at least 1")
        if not self.inspection_types:
            raise ValueError("a machine supports at least one inspection type")
        if not 0 <= self.failure_rate <= 1:
            raise ValueError("failure_rate must be within [0, 1]")
        if not self.slow_factor > 0 or self.answer_delay < 0:
            raise ValueError("slow_factor must be positive and answer_delay not negative")


@dataclass(frozen=True)
class Plan:
    """What will happen to one attempt of an inspection on one machine."""

    processing_time: float
    fails: bool


@dataclass(frozen=True)
class Callbacks:
    results: str
    status: str | None
    heartbeat: str | None


@dataclass
class Held:
    """An inspection a machine received, while it runs and for a while after."""

    inspection_id: str
    inspection_type: str
    attempt: int
    priority: int
    callbacks: Callbacks
    plan: Plan
    state: InspectionState = "processing"
    started: float = field(default_factory=time.monotonic)
    result: dict[str, Any] | None = None
    answer: Answer | None = None
    task: asyncio.Task[None] | None = None

    def view(self) -> dict[str, Any]:
        return {
            "inspection_id": self.inspection_id,
            "inspection_type": self.inspection_type,
            "attempt": self.attempt,
            "status": self.state,
            "result_delivery": self.answer,
        }


@dataclass(frozen=True)
class Delivery:
    """One call a machine made to the orchestrator, and how it was answered (None: no answer)."""

    kind: Literal["results", "heartbeat", "status"]
    url: str
    status_code: int | None
    payload: dict[str, Any]


class HttpServer:
    """A Starlette app served by uvicorn on a socket of this process, in the running asyncio loop."""

    def __init__(self, app: Starlette, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._task is not None

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # The same port again after a "death": connections of the previous life may linger in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise SimulatorError(f"cannot listen on {self.host}:{self.port}: {exc}") from exc
        sock.listen(1024)
        sock.setblocking(False)
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(self.app, log_config=None, log_level="warning", access_log=False, lifespan="off")
        server = _QuietServer(config)
        self._server = server
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name=f"http-{self.port}")
        while not server.started:
            if self._task.done():
                self._task.result()
                raise SimulatorError(f"the server on port {self.port} did not start")
            await asyncio.sleep(0.005)

    async def stop(self, *, abrupt: bool = False) -> None:
        """Stop listening (new connections are refused at once) and close the open ones."""
        server, task = self._server, self._task
        self._server = self._task = None
        if server is None or task is None:
            return
        server.should_exit = True
        server.force_exit = abrupt
        await task


class _QuietServer(uvicorn.Server):
    # Many servers share one process and its signals belong to the program that runs them, not to uvicorn.
    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


def _error(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return Response(orjson.dumps({"error": error}), status, headers=headers, media_type=_JSON)


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, media_type=_JSON)


class _InvalidError(ValueError):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


class SimulatedMachine:
    """One machine of the fleet (see the module documentation); `index` and `seed` fix its randomness."""

    def __init__(
        self,
        profile: MachineProfile,
        *,
        index: int = 0,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        orchestrator_url: str | None = None,
        machine_id: str | None = None,
        credential: str | None = None,
        webhook_secret: str | None = None,
        require_signature: bool = False,
        heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
        status_updates: bool = True,
        result_attempts: int = DEFAULT_RESULT_ATTEMPTS,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if heartbeat_interval <= 0 or result_attempts < 1:
            raise ValueError("heartbeat_interval must be positive and result_attempts at least 1")
        self.profile = profile
        self.index = index
        self.seed = seed
        self.orchestrator_url = orchestrator_url.rstrip("/") if orchestrator_url else None
        self.machine_id = machine_id
        self.credential = credential
        self.webhook_secret = webhook_secret
        self.require_signature = require_signature
        self.heartbeat_interval = heartbeat_interval
        self.status_updates = status_updates
        self.result_attempts = result_attempts
        self.alive = False
        self.deaths = 0
        self.counts: Counter[str] = Counter()
        """accepted, duplicate, refused_busy, refused_invalid, refused_unsigned, cancelled, completed, failed,
        results_delivered, results_refused, results_lost, heartbeats, heartbeats_failed, status_updates."""
        self.deliveries: deque[Delivery] = deque(maxlen=1000)
        self.inspections: dict[str, Held] = {}
        self._finished_order: deque[str] = deque()
        self._durations: deque[float] = deque(maxlen=100)
        self._finish_times: deque[float] = deque()
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(timeout=REQUEST_TIMEOUT)
        self._http = HttpServer(self._build_app(), host, port)
        self._heartbeat: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._rng = random.Random(f"{seed}:{index}:machine")

    # -- lifecycle -------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The machine's base URL, `http://ip:port`, what the orchestrator stores and calls."""
        return self._http.url

    @property
    def port(self) -> int:
        return self._http.port

    @property
    def current_inspections(self) -> int:
        return sum(1 for held in self.inspections.values() if held.state == "processing")

    async def start(self) -> None:
        """Listen on the machine's port and, once it knows its orchestrator and credential, heartbeat."""
        await self._http.start()
        self.alive = True
        self._start_heartbeats()

    async def stop(self) -> None:
        """A clean shutdown: tell the orchestrator it goes offline, stop working and listening."""
        if self.alive and self._can_call():
            await self._post_status("offline")
        await self._halt(abrupt=False)
        if self._own_client:
            await self._client.aclose()

    async def die(self) -> None:
        """Stop answering (connections refused) and heartbeating at once; what the machine held is lost."""
        self.deaths += 1
        await self._halt(abrupt=True)
        self.inspections.clear()
        self._finished_order.clear()

    async def revive(self) -> None:
        """Come back on the same port, empty-handed, and heartbeat again."""
        if self.alive:
            return
        await self.start()

    async def _halt(self, *, abrupt: bool) -> None:
        self.alive = False
        tasks = [task for task in (self._heartbeat, *self._background) if task is not None]
        tasks += [held.task for held in self.inspections.values() if held.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._heartbeat = None
        self._background.clear()
        await self._http.stop(abrupt=abrupt)

    def _start_heartbeats(self) -> None:
        if self.alive and self._heartbeat is None and self._can_call():
            self._heartbeat = asyncio.create_task(self._heartbeats(), name=f"heartbeat-{self.machine_id}")

    def _can_call(self) -> bool:
        return self.orchestrator_url is not None and self.machine_id is not None and self.credential is not None

    # -- registration ----------------------------------------------------------------------------------------

    def registration(self) -> dict[str, Any]:
        """The `POST /machines/` payload of the seed for this machine."""
        return {
            "name": self.profile.name,
            "location": self.profile.location,
            "ip_address": self._http.host,
            "port": self.port,
            "max_concurrent_inspections": self.profile.capacity,
            "supported_inspection_types": list(self.profile.inspection_types),
            "hardware_specs": dict(self.profile.hardware_specs),
        }

    async def register(self, orchestrator_url: str, headers: dict[str, str]) -> dict[str, Any]:
        """Register with the orchestrator as a user (`headers` carry a token or an API key); keeps the machine
        id, its credential and its webhook secret from the answer, then starts heartbeating."""
        self.orchestrator_url = orchestrator_url.rstrip("/")
        try:
            response = await self._client.post(
                f"{self.orchestrator_url}{API}/machines/", json=self.registration(), headers=headers
            )
        except httpx.HTTPError as exc:
            raise SimulatorError(f"cannot reach the orchestrator at {self.orchestrator_url}: {exc}") from exc
        if response.status_code != 201:
            raise SimulatorError(
                f"registering {self.profile.name} was refused: {response.status_code} {response.text[:300]}"
            )
        body = response.json()
        if not isinstance(body.get("id"), str) or not isinstance(body.get("credential"), str):
            raise SimulatorError(f"the registration answer lacks 'id' or 'credential': {response.text[:300]}")
        self.machine_id = body["id"]
        self.credential = body["credential"]
        secret = body.get("webhook_secret")
        self.webhook_secret = secret if isinstance(secret, str) else None
        self._start_heartbeats()
        return dict(body)

    # -- what happens to an inspection -----------------------------------------------------------------------

    def plan(self, inspection_id: str, attempt: int = 1) -> Plan:
        """Processing time and outcome of this attempt of an inspection here: the same for the same seed."""
        rng = random.Random(f"{self.seed}:{self.index}:{inspection_id}:{attempt}")
        duration = self.profile.processing.sample(rng) * self.profile.slow_factor
        return Plan(processing_time=duration, fails=rng.random() < self.profile.failure_rate)

    def _result(self, held: Held, elapsed: float) -> dict[str, Any]:
        rng = random.Random(f"{self.seed}:{self.index}:{held.inspection_id}:{held.attempt}:result")
        failed = held.plan.fails
        results: dict[str, Any] = {"processing_time": round(elapsed, 3)}
        if not failed:
            results.update(_findings(held.inspection_type, rng))
            results["confidence_score"] = round(rng.uniform(0.80, 0.99), 3)
        return {
            "machine_id": self.machine_id,
            "inspection_id": held.inspection_id,
            "status": "failed" if failed else "completed",
            "results": results,
            "error_message": f"{held.inspection_type}: the image source could not be read" if failed else None,
            "timestamp": utc_now(),
            "attempt": held.attempt,
        }

    # -- the machine's HTTP API ------------------------------------------------------------------------------

    def _build_app(self) -> Starlette:
        routes = []
        for path, endpoint, methods in (
            (f"{API}/inspections", self._accept, ["POST"]),
            (f"{API}/inspections/{{inspection_id}}", self._show, ["GET"]),
            (f"{API}/inspections/{{inspection_id}}/cancel", self._cancel, ["POST"]),
            (f"{API}/status", self._status, ["GET"]),
            ("/health", self._health, ["GET"]),
        ):
            # Both spellings, as Django clients add the slash and others do not; never a redirect.
            routes += [Route(path, endpoint, methods=methods), Route(path + "/", endpoint, methods=methods)]
        return Starlette(routes=routes)

    async def _guard(self, request: Request) -> tuple[bytes, Response | None]:
        if self.profile.answer_delay:
            await asyncio.sleep(self.profile.answer_delay)
        body = await request.body()
        signed = "webhook-signature" in request.headers
        if self.require_signature and self.webhook_secret is None:
            return body, _error(401, "unauthorized", "this machine holds no secret to check signatures with")
        # Without its secret (not registered yet, or set up by hand) a machine cannot check a signature.
        if self.webhook_secret is not None and (signed or self.require_signature):
            try:
                verify_standard(self.webhook_secret, request.headers, body)
            except SignatureError as exc:
                self.counts["refused_unsigned"] += 1
                return body, _error(401, "unauthorized", str(exc))
        return body, None

    async def _accept(self, request: Request) -> Response:
        body, refusal = await self._guard(request)
        if refusal is not None:
            return refusal
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            self.counts["refused_invalid"] += 1
            return _error(400, "bad_request", "the body is not JSON")
        try:
            order = self._read_order(document)
        except _InvalidError as exc:
            self.counts["refused_invalid"] += 1
            return _error(422, "validation_error", str(exc), [{"field": exc.field, "message": str(exc)}])
        inspection_id, inspection_type, attempt, priority, callbacks = order
        if inspection_type not in self.profile.inspection_types:
            self.counts["refused_invalid"] += 1
            return _error(
                422,
                "unsupported_inspection_type",
                f"this machine runs {', '.join(self.profile.inspection_types)}, not {inspection_type}",
            )
        held = self.inspections.get(inspection_id)
        if held is not None and (attempt <= held.attempt or held.state == "processing"):
            self.counts["duplicate"] += 1
            if attempt > held.attempt:
                held.attempt = attempt
            if held.state in ("completed", "failed") and held.answer == "lost":
                self._spawn(self._deliver(held))
            return _json({**held.view(), **self._load(), "duplicate": True})
        if self.current_inspections >= self.profile.capacity:
            self.counts["refused_busy"] += 1
            return _error(
                503,
                "at_capacity",
                f"this machine runs {self.profile.capacity} inspections at most and has as many",
                {"current_inspections": self.current_inspections, "max_concurrent_inspections": self.profile.capacity},
                headers={"Retry-After": str(self._seconds_until_free())},
            )
        held = Held(inspection_id, inspection_type, attempt, priority, callbacks, self.plan(inspection_id, attempt))
        self.inspections[inspection_id] = held
        held.task = asyncio.create_task(self._process(held), name=f"inspection-{inspection_id}")
        self.counts["accepted"] += 1
        self._status_changed()
        return _json(
            {**held.view(), **self._load(), "duplicate": False, "estimated_processing_time": held.plan.processing_time},
            202,
        )

    def _read_order(self, document: Any) -> tuple[str, str, int, int, Callbacks]:
        if not isinstance(document, dict):
            raise _InvalidError("body", "the body must be a JSON object")
        inspection_id = document.get("inspection_id")
        if not isinstance(inspection_id, str) or _ID.fullmatch(inspection_id) is None:
            raise _InvalidError("inspection_id", "inspection_id must be 1 to 64 letters, digits, _ or -")
        machine_id = document.get("machine_id")
        if machine_id is not None and machine_id != self.machine_id:
            raise _InvalidError("machine_id", f"this is machine {self.machine_id}, not {machine_id}")
        inspection_type = document.get("inspection_type")
        if not isinstance(inspection_type, str) or not inspection_type:
            raise _InvalidError("inspection_type", "inspection_type must be a non-empty string")
        pipeline = document.get("pipeline_config")
        if not isinstance(pipeline, dict) or not isinstance(pipeline.get("tools"), list):
            raise _InvalidError("pipeline_config", "pipeline_config must be an object with a list of tools")
        attempt = document.get("attempt", 1)
        priority = document.get("priority", 1)
        for name, value in (("attempt", attempt), ("priority", priority)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise _InvalidError(name, f"{name} must be a positive integer")
        given = document.get("callbacks")
        if not isinstance(given, dict):
            raise _InvalidError("callbacks", "callbacks must be an object with at least a results URL")
        urls: dict[str, str | None] = {}
        for name in ("results", "status", "heartbeat"):
            url = given.get(name)
            if url is None and name != "results":
                urls[name] = None
                continue
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise _InvalidError(f"callbacks.{name}", f"callbacks.{name} must be an http(s) URL")
            urls[name] = url
        results_url = urls["results"]
        assert results_url is not None
        return (
            inspection_id,
            inspection_type,
            attempt,
            priority,
            Callbacks(results_url, urls["status"], urls["heartbeat"]),
        )

    async def _show(self, request: Request) -> Response:
        _, refusal = await self._guard(request)
        if refusal is not None:
            return refusal
        held = self.inspections.get(request.path_params["inspection_id"])
        if held is None:
            return _error(404, "unknown_inspection", "this machine does not hold that inspection")
        return _json(held.view())

    async def _cancel(self, request: Request) -> Response:
        _, refusal = await self._guard(request)
        if refusal is not None:
            return refusal
        held = self.inspections.get(request.path_params["inspection_id"])
        if held is None:
            return _error(404, "unknown_inspection", "this machine does not hold that inspection")
        if held.state == "processing":
            held.state = "cancelled"
            if held.task is not None:
                held.task.cancel()
            self.counts["cancelled"] += 1
            self._remember_finished(held.inspection_id)
            self._status_changed()
        return _json({**held.view(), **self._load()})

    async def _status(self, request: Request) -> Response:
        _, refusal = await self._guard(request)
        if refusal is not None:
            return refusal
        return _json(
            {
                "machine_id": self.machine_id,
                "status": self._machine_status(),
                **self._load(),
                "supported_inspection_types": list(self.profile.inspection_types),
                "inspections": [held.view() for held in self.inspections.values() if held.state == "processing"],
            }
        )

    async def _health(self, request: Request) -> Response:
        return _json({"status": "ok"})

    def _load(self) -> dict[str, int]:
        return {"current_inspections": self.current_inspections, "max_concurrent_inspections": self.profile.capacity}

    def _machine_status(self) -> str:
        return "busy" if self.current_inspections >= self.profile.capacity else "online"

    def _seconds_until_free(self) -> int:
        now = time.monotonic()
        left = [
            held.started + held.plan.processing_time - now
            for held in self.inspections.values()
            if held.state == "processing"
        ]
        return max(1, math.ceil(min(left, default=1.0)))

    # -- work and the calls it makes -------------------------------------------------------------------------

    async def _process(self, held: Held) -> None:
        await asyncio.sleep(held.plan.processing_time)
        elapsed = time.monotonic() - held.started
        held.state = "failed" if held.plan.fails else "completed"
        held.result = self._result(held, elapsed)
        self.counts[held.state] += 1
        self._durations.append(elapsed)
        self._finish_times.append(time.monotonic())
        self._remember_finished(held.inspection_id)
        self._status_changed()
        await self._deliver(held)

    async def _deliver(self, held: Held) -> None:
        assert held.result is not None
        backoff = Backoff(0.2, 5.0)
        for attempt in range(self.result_attempts):
            response = await self._call("results", held.callbacks.results, held.result, held.inspection_id)
            status_code = None if response is None else response.status_code
            if status_code is not None and 200 <= status_code < 300:
                held.answer = "delivered"
                self.counts["results_delivered"] += 1
                return
            if status_code is not None and status_code not in (408, 425, 429) and status_code < 500:
                # The orchestrator will never take it (unknown, cancelled, reassigned): retrying changes nothing.
                held.answer = "refused"
                self.counts["results_refused"] += 1
                return
            if attempt + 1 < self.result_attempts:
                await asyncio.sleep(
                    backoff.next_delay(None if response is None else response.headers.get("retry-after"))
                )
        held.answer = "lost"
        self.counts["results_lost"] += 1

    async def _heartbeats(self) -> None:
        # A first beat at a random point of the interval, so a fleet started at once does not beat in lockstep.
        await asyncio.sleep(self._rng.uniform(0, self.heartbeat_interval))
        while True:
            response = await self._call("heartbeat", self._callback_url("heartbeat"), self.heartbeat_payload())
            delivered = response is not None and response.status_code < 300
            self.counts["heartbeats" if delivered else "heartbeats_failed"] += 1
            await asyncio.sleep(self.heartbeat_interval)

    def heartbeat_payload(self) -> dict[str, Any]:
        """The seed's heartbeat: system figures that follow the load, performance over the last hour."""
        load = self.current_inspections / self.profile.capacity
        noise = self._rng.uniform(-3, 3)
        horizon = time.monotonic() - 3600
        while self._finish_times and self._finish_times[0] < horizon:
            self._finish_times.popleft()
        done, failed = self.counts["completed"], self.counts["failed"]
        durations = self._durations
        return {
            "machine_id": self.machine_id,
            "status": "online",
            "system_info": {
                "cpu_usage": round(min(100.0, max(0.0, 8 + 80 * load + noise)), 1),
                "memory_usage": round(min(100.0, 30 + 40 * load + noise / 2), 1),
                "gpu_usage": round(min(100.0, max(0.0, 5 + 85 * load + noise)), 1),
                "temperature": round(38 + 30 * load + noise / 3, 1),
            },
            "performance_metrics": {
                "inspections_per_hour": len(self._finish_times),
                "average_processing_time": round(sum(durations) / len(durations), 3) if durations else 0.0,
                "success_rate": round(100 * done / (done + failed), 1) if done + failed else 100.0,
            },
            "timestamp": utc_now(),
        }

    def _status_changed(self) -> None:
        if self.status_updates and self._can_call():
            self._spawn(self._post_status(self._machine_status()))

    async def _post_status(self, status: str) -> None:
        payload = {
            "machine_id": self.machine_id,
            "status": status,
            "current_inspections": self.current_inspections,
            "timestamp": utc_now(),
        }
        response = await self._call("status", self._callback_url("status"), payload)
        if response is not None and response.status_code < 300:
            self.counts["status_updates"] += 1

    def _callback_url(self, kind: Literal["heartbeat", "status"]) -> str:
        for held in reversed(self.inspections.values()):
            url = held.callbacks.heartbeat if kind == "heartbeat" else held.callbacks.status
            if url is not None:
                return url
        return f"{self.orchestrator_url}{API}/webhooks/{kind}/"

    async def _call(
        self, kind: Literal["results", "heartbeat", "status"], url: str, payload: dict[str, Any], key: str = ""
    ) -> httpx.Response | None:
        body = orjson.dumps(payload)
        headers = {"Content-Type": _JSON}
        if self.credential is not None:
            headers["Authorization"] = f"Bearer {self.credential}"
        if self.webhook_secret is not None:
            # A result keeps its message id across retries, so the orchestrator can tell a retry from news.
            msg_id = f"msg_{self.machine_id}_{key}_{payload.get('attempt', 0)}" if key else None
            headers.update(sign_standard(self.webhook_secret, body, msg_id=msg_id))
        response: httpx.Response | None
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError:
            response = None
        self.deliveries.append(Delivery(kind, url, None if response is None else response.status_code, payload))
        return response

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _remember_finished(self, inspection_id: str) -> None:
        self._finished_order.append(inspection_id)
        while len(self._finished_order) > FINISHED_KEPT:
            forgotten = self.inspections.get(self._finished_order.popleft())
            if forgotten is not None and forgotten.state != "processing":
                del self.inspections[forgotten.inspection_id]


def _findings(inspection_type: str, rng: random.Random) -> dict[str, Any]:
    if inspection_type == "blob_detection":
        blobs = [
            {
                "x": rng.randrange(0, 1920),
                "y": rng.randrange(0, 1080),
                "width": rng.randrange(10, 80),
                "height": rng.randrange(10, 80),
            }
            for _ in range(rng.randrange(0, 8))
        ]
        return {"blob_count": len(blobs), "blob_locations": blobs}
    if inspection_type == "edge_detection":
        return {"edge_count": rng.randrange(0, 400), "longest_edge_px": rng.randrange(10, 1900)}
    if inspection_type == "color_filter":
        return {"matched_pixel_ratio": round(rng.uniform(0, 0.4), 4), "regions": rng.randrange(0, 6)}
    return {"defects_found": rng.randrange(0, 4)}


class MachineFleet:
    """`machines` simulated machines (or one per profile given), indices 0..n-1, all seeded from `seed`.

    Machine names read `<name_prefix>-<nn>`; the last `slow_machines` ones are slow (`slow_factor`,
    `slow_answer_delay`). Use as `async with MachineFleet(...) as fleet:`; `await fleet.register(url,
    token=...)` registers each with the orchestrator and starts their heartbeats.
    """

    def __init__(
        self,
        machines: int | Sequence[MachineProfile],
        *,
        seed: int = 0,
        capacity: int = 2,
        inspection_types: Sequence[str] = SEED_INSPECTION_TYPES[:2],
        location: str = "Linha de Produção A",
        processing: ProcessingTime = ProcessingTime(),
        failure_rate: float = 0.0,
        slow_machines: int = 0,
        slow_factor: float = 4.0,
        slow_answer_delay: float = 0.0,
        name_prefix: str = "MV-Sim",
        host: str = "127.0.0.1",
        base_port: int = 0,
        heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
        status_updates: bool = True,
        require_signature: bool = False,
    ) -> None:
        if isinstance(machines, int):
            if machines < 1:
                raise ValueError("a fleet has at least one machine")
            if not 0 <= slow_machines <= machines:
                raise ValueError("slow_machines must be between 0 and the number of machines")
            base = MachineProfile(
                name="",
                capacity=capacity,
                inspection_types=tuple(inspection_types),
                location=location,
                processing=processing,
                failure_rate=failure_rate,
            )
            profiles = []
            for index in range(machines):
                slow = index >= machines - slow_machines
                profiles.append(
                    replace(
                        base,
                        name=f"{name_prefix}-{index + 1:02d}",
                        slow_factor=slow_factor if slow else 1.0,
                        answer_delay=slow_answer_delay if slow else 0.0,
                    )
                )
        else:
            profiles = list(machines)
        self._client = httpx.AsyncClient(
            timeout=REQUEST_TIMEOUT, limits=httpx.Limits(max_connections=200, max_keepalive_connections=200)
        )
        self.machines = [
            SimulatedMachine(
                profile,
                index=index,
                seed=seed,
                host=host,
                port=base_port + index if base_port else 0,
                heartbeat_interval=heartbeat_interval,
                status_updates=status_updates,
                require_signature=require_signature,
                client=self._client,
            )
            for index, profile in enumerate(profiles)
        ]
        self._chores: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> MachineFleet:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def start(self) -> None:
        try:
            for machine in self.machines:
                await machine.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        for task in self._chores:
            task.cancel()
        await asyncio.gather(*self._chores, return_exceptions=True)
        await asyncio.gather(*(machine.stop() for machine in self.machines), return_exceptions=True)
        await self._client.aclose()

    async def register(self, orchestrator_url: str, *, token: str | None = None, api_key: str | None = None) -> None:
        """Register every machine as the user of `token` (or with `api_key`); raises `SimulatorError` on a refusal."""
        if (token is None) == (api_key is None):
            raise ValueError("register with either a token or an API key")
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {"X-API-Key": str(api_key)}
        for machine in self.machines:
            await machine.register(orchestrator_url, headers)

    def die_for(self, machine: SimulatedMachine, after: float, dead_for: float) -> None:
        """Let `machine` die `after` seconds from now and come back `dead_for` seconds later."""

        async def chore() -> None:
            await asyncio.sleep(after)
            await machine.die()
            await asyncio.sleep(dead_for)
            await machine.revive()

        task = asyncio.create_task(chore(), name=f"death-of-{machine.profile.name}")
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    def totals(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for machine in self.machines:
            total.update(machine.counts)
        return total

    def summary(self) -> dict[str, Any]:
        totals = self.totals()
        return {
            "machines": len(self.machines),
            "alive": sum(machine.alive for machine in self.machines),
            "running": sum(machine.current_inspections for machine in self.machines),
            "capacity": sum(machine.profile.capacity for machine in self.machines),
            **{key: totals[key] for key in sorted(totals)},
        }


def progress_line(fleet: MachineFleet, elapsed: float) -> str:
    s = fleet.summary()
    return (
        f"[{elapsed:6.1f}s] machines {s['alive']}/{s['machines']} up, running {s['running']}/{s['capacity']}; "
        f"accepted {s.get('accepted', 0)}, busy {s.get('refused_busy', 0)}, dup {s.get('duplicate', 0)}, "
        f"cancelled {s.get('cancelled', 0)}; completed {s.get('completed', 0)}, failed {s.get('failed', 0)}; "
        f"results delivered {s.get('results_delivered', 0)}, refused {s.get('results_refused', 0)}, "
        f"lost {s.get('results_lost', 0)}; heartbeats {s.get('heartbeats', 0)} "
        f"({s.get('heartbeats_failed', 0)} failed)"
    )


@contextlib.asynccontextmanager
async def _stop_on_signals(stop: asyncio.Event) -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    installed = threading.current_thread() is threading.main_thread()
    if installed:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
    try:
        yield
    finally:
        if installed:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Simulated vision machines for vision-orchestrator (see docs/vision-machines.md)."
    )
    parser.add_argument("--orchestrator", help="orchestrator base URL, e.g. http://127.0.0.1:8003 (none: only serve)")
    parser.add_argument(
        "--token", default=os.environ.get("VISION_SIM_TOKEN"), help="user JWT that registers (env VISION_SIM_TOKEN)"
    )
    parser.add_argument(
        "--api-key", default=os.environ.get("VISION_SIM_API_KEY"), help="or an API key (env VISION_SIM_API_KEY)"
    )
    parser.add_argument("--machines", type=int, default=3, help="number of machines (default 3)")
    parser.add_argument("--capacity", type=int, default=2, help="concurrent inspections per machine (default 2)")
    parser.add_argument("--types", default=",".join(SEED_INSPECTION_TYPES[:2]), help="supported inspection types")
    parser.add_argument("--location", default="Linha de Produção A")
    parser.add_argument("--name-prefix", default="MV-Sim", help="machine names are <prefix>-01, -02, …")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--base-port", type=int, default=0, help="first port, one per machine (default: any free)")
    parser.add_argument("--processing-time", type=float, default=2.0, help="mean seconds per inspection")
    parser.add_argument("--processing-distribution", choices=DISTRIBUTIONS, default="lognormal")
    parser.add_argument("--processing-spread", type=float, default=0.25, help="relative spread (sigma for lognormal)")
    parser.add_argument("--failure-rate", type=float, default=0.0, help="share of inspections that fail, 0 to 1")
    parser.add_argument("--slow-machines", type=int, default=0, help="how many machines are slow")
    parser.add_argument("--slow-factor", type=float, default=4.0, help="processing-time multiplier of slow machines")
    parser.add_argument("--slow-answer-delay", type=float, default=0.0, help="seconds slow machines take to answer")
    parser.add_argument("--dying-machine", action="store_true", help="machine 1 dies, then comes back")
    parser.add_argument("--die-after", type=float, default=30.0, help="seconds before it dies (default 30)")
    parser.add_argument("--dead-for", type=float, default=30.0, help="seconds it stays dead (default 30)")
    parser.add_argument("--heartbeat-interval", type=float, default=DEFAULT_HEARTBEAT_INTERVAL)
    parser.add_argument("--no-status-updates", action="store_true", help="do not post /webhooks/status/ on changes")
    parser.add_argument("--require-signature", action="store_true", help="refuse unsigned calls of the orchestrator")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--duration", type=float, help="seconds to run (default: until Ctrl-C)")
    parser.add_argument("--progress-interval", type=float, default=5.0, help="seconds between progress lines")
    parser.add_argument("--json", action="store_true", help="print the final summary as one JSON object")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.orchestrator and not (args.token or args.api_key):
        parser.error("registering needs --token or --api-key")
    if args.token and args.api_key:
        parser.error("give --token or --api-key, not both")
    if (args.duration is not None and args.duration <= 0) or args.progress_interval <= 0:
        parser.error("--duration and --progress-interval must be positive")
    try:
        fleet = MachineFleet(
            args.machines,
            seed=args.seed,
            capacity=args.capacity,
            inspection_types=_csv(args.types),
            location=args.location,
            processing=ProcessingTime(args.processing_time, args.processing_distribution, args.processing_spread),
            failure_rate=args.failure_rate,
            slow_machines=args.slow_machines,
            slow_factor=args.slow_factor,
            slow_answer_delay=args.slow_answer_delay,
            name_prefix=args.name_prefix,
            host=args.host,
            base_port=args.base_port,
            heartbeat_interval=args.heartbeat_interval,
            status_updates=not args.no_status_updates,
            require_signature=args.require_signature,
        )
    except ValueError as exc:
        parser.error(str(exc))

    def say(text: str) -> None:
        if not args.json:
            print(text, flush=True)

    async def run() -> None:
        stop = asyncio.Event()
        async with _stop_on_signals(stop), fleet:
            if args.orchestrator:
                await fleet.register(args.orchestrator, token=args.token, api_key=args.api_key)
            for machine in fleet.machines:
                say(f"{machine.profile.name} {machine.machine_id or '(not registered)'} at {machine.url}")
            if args.dying_machine:
                fleet.die_for(fleet.machines[0], args.die_after, args.dead_for)
            started = time.monotonic()
            deadline = None if args.duration is None else started + args.duration
            while not stop.is_set():
                wait = args.progress_interval
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
                say(progress_line(fleet, time.monotonic() - started))

    try:
        asyncio.run(run())
    except SimulatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(orjson.dumps(fleet.summary()).decode())
    else:
        print("final: " + progress_line(fleet, 0.0).split("] ", 1)[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
