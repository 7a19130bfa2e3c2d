"""Request ids, JSON log lines, Prometheus metrics, and the /health and /ready endpoints."""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter
from prometheus_client.parser import text_string_to_metric_families

from mirante.devstack import StackUrls
from mirante.settings import CoreSettings, DatabaseSettings, InfraSettings, JwtSettings, RedisSettings
from mirante.testing.apps import library_app
from mirante.testing.plugin import ClientFactory
from mirante.web.health import tcp_check
from mirante.web.logs import JsonFormatter, RequestIdFilter, configure_logging
from mirante.web.request_id import bind_request_id, current_request_id

GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")
SERVICE = "mirante-test"
TEST_LOGGER = "mirante.tests.observability"

observed = APIRouter(prefix="/obs")


@observed.get("/request-id")
async def request_id_seen_by_the_endpoint() -> dict[str, str | None]:
    return {"request_id": current_request_id()}


@observed.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, int]:
    logging.getLogger(TEST_LOGGER).info("item %s read", item_id, extra={"item_id": item_id})
    return {"item_id": item_id}


@observed.get("/boom")
async def boom() -> None:
    raise RuntimeError("unexpected")


@pytest.fixture
async def client(infra_settings: InfraSettings, make_client: ClientFactory) -> httpx.AsyncClient:
    return await make_client(library_app(infra_settings, routers=[observed]))


@pytest.fixture
def json_log_lines() -> Iterator[io.StringIO]:
    """JSON lines of the test logger, through the same filter and formatter the services use."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(TEST_LOGGER)
    logger.addHandler(handler)
    previous_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Samples of the metric sample `name`, keyed by their sorted labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def labels(**values: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(values.items()))


# --- request ids ---


async def test_a_sane_incoming_request_id_is_kept_and_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/obs/request-id", headers={"X-Request-ID": "edge-proxy:42.a_b-c"})

    assert response.headers["x-request-id"] == "edge-proxy:42.a_b-c"
    assert response.json() == {"request_id": "edge-proxy:42.a_b-c"}


async def test_a_missing_request_id_is_generated_per_request(client: httpx.AsyncClient) -> None:
    first = await client.get("/obs/request-id")
    second = await client.get("/obs/request-id")

    assert GENERATED_ID.fullmatch(first.headers["x-request-id"])
    assert first.json()["request_id"] == first.headers["x-request-id"]
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


@pytest.mark.parametrize("unsafe", ["two words", "x" * 129, "<script>", "id;drop", "", "ação"])
async def test_an_unsafe_request_id_is_replaced(client: httpx.AsyncClient, unsafe: str) -> None:
    response = await client.get("/obs/request-id", headers=[(b"X-Request-ID", unsafe.encode())])

    assert GENERATED_ID.fullmatch(response.headers["x-request-id"])
    assert response.json()["request_id"] == response.headers["x-request-id"]


async def test_error_responses_carry_the_request_id(client: httpx.AsyncClient) -> None:
    missing = await client.get("/obs/nothing-here", headers={"X-Request-ID": "req-404"})
    crashed = await client.get("/obs/boom", headers={"X-Request-ID": "req-500"})

    assert (missing.headers["x-request-id"], missing.json()["request_id"]) == ("req-404", "req-404")
    assert (crashed.headers["x-request-id"], crashed.json()["request_id"]) == ("req-500", "req-500")


async def test_the_request_id_does_not_outlive_the_request(client: httpx.AsyncClient) -> None:
    await client.get("/obs/request-id", headers={"X-Request-ID": "short-lived"})

    assert current_request_id() is None


# --- logs ---


async def test_log_lines_inside_a_request_carry_its_id(client: httpx.AsyncClient, json_log_lines: io.StringIO) -> None:
    await client.get("/obs/items/7", headers={"X-Request-ID": "log-line-1"})

    entries = [json.loads(line) for line in json_log_lines.getvalue().splitlines()]
    assert len(entries) == 1
    entry = entries[0]
    assert entry["request_id"] == "log-line-1"
    assert entry["message"] == "item 7 read"
    assert entry["item_id"] == 7
    assert (entry["level"], entry["logger"]) == ("info", TEST_LOGGER)


def test_json_formatter_writes_one_object_with_extras_and_exception() -> None:
    logger = logging.getLogger(TEST_LOGGER)
    try:
        raise ValueError("broken input")
    except ValueError:
        record = logger.makeRecord(
            TEST_LOGGER,
            logging.ERROR,
            __file__,
            1,
            "failed on %s",
            ("job-1",),
            sys.exc_info(),
            extra={"job": "job-1", "where": Path("/srv/data"), "attempt": 3},
        )
    bind_request_id("consumer-step-9")
    try:
        RequestIdFilter().filter(record)
    finally:
        bind_request_id(None)

    line = JsonFormatter().format(record)

    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "failed on job-1"
    assert entry["level"] == "error"
    assert entry["request_id"] == "consumer-step-9"
    assert (entry["job"], entry["where"], entry["attempt"]) == ("job-1", "/srv/data", 3)
    assert "ValueError: broken input" in entry["exception"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00", entry["time"])
    for internal in ("args", "msg", "pathname", "exc_info", "levelno", "created"):
        assert internal not in entry


def test_json_formatter_without_a_request_id() -> None:
    record = logging.makeLogRecord({"name": TEST_LOGGER, "msg": "outside", "levelname": "WARNING"})
    RequestIdFilter().filter(record)

    entry = json.loads(JsonFormatter().format(record))

    assert entry["request_id"] == "-"
    assert entry["level"] == "warning"


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    saved_uvicorn = {name: logging.getLogger(name).handlers[:] for name in ("uvicorn", "uvicorn.access")}
    try:
        yield
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        for name, handlers in saved_uvicorn.items():
            logging.getLogger(name).handlers[:] = handlers


@pytest.mark.usefixtures("restored_logging")
def test_configure_logging_json_lines_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("warning", json_lines=True)
    logging.getLogger("uvicorn.error").warning("from uvicorn")
    logging.getLogger(TEST_LOGGER).info("below the level")

    lines = capsys.readouterr().err.splitlines()

    assert [json.loads(line)["message"] for line in lines] == ["from uvicorn"]
    assert json.loads(lines[0])["logger"] == "uvicorn.error"
    assert logging.getLogger().level == logging.WARNING


@pytest.mark.usefixtures("restored_logging")
def test_configure_logging_text_lines_name_the_request(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json_lines=False)
    bind_request_id("text-req-1")
    try:
        logging.getLogger(TEST_LOGGER).info("readable")
    finally:
        bind_request_id(None)

    line = capsys.readouterr().err.strip()

    assert line.endswith(f"INFO    {TEST_LOGGER} [text-req-1] readable")


@pytest.mark.usefixtures("restored_logging")
def test_logging_writes_to_stderr_as_it_is_when_a_line_is_written(monkeypatch: pytest.MonkeyPatch) -> None:
    configure_logging("INFO")
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    logging.getLogger(TEST_LOGGER).info("one")
    first.close()  # as pytest closes the capture of a test that has ended
    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger(TEST_LOGGER).info("two")

    assert second.getvalue().rstrip().endswith("two")


# --- metrics ---


async def test_metrics_count_requests_by_route_template_and_status(client: httpx.AsyncClient) -> None:
    for path in ("/obs/items/1", "/obs/items/2", "/obs/items/1", "/obs/nowhere", "/obs/boom"):
        await client.get(path)

    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    counts = samples(response.text, "http_requests_total")
    item_route = "/obs/items/{item_id}"
    assert counts[labels(service=SERVICE, method="GET", route=item_route, status="200")] == 3
    assert counts[labels(service=SERVICE, method="GET", route="unmatched", status="404")] == 1
    assert counts[labels(service=SERVICE, method="GET", route="/obs/boom", status="500")] == 1
    assert not [
        key for key in counts if dict(key)["route"].startswith("/obs/items/") and dict(key)["route"] != item_route
    ]
    durations = samples(response.text, "http_request_duration_seconds_count")
    assert durations[labels(service=SERVICE, method="GET", route=item_route)] == 3


async def test_each_app_has_its_own_registry(
    client: httpx.AsyncClient, infra_settings: InfraSettings, make_client: ClientFactory
) -> None:
    other = await make_client(library_app(infra_settings, routers=[observed]))
    await client.get("/obs/items/5")
    await client.get("/obs/items/5")
    await other.get("/obs/items/5")

    mine = samples((await client.get("/metrics")).text, "http_requests_total")
    theirs = samples((await other.get("/metrics")).text, "http_requests_total")

    key = labels(service=SERVICE, method="GET", route="/obs/items/{item_id}", status="200")
    assert (mine[key], theirs[key]) == (2, 1)


METRICS_TOKEN = "metrics-token-for-the-test-0123456789"


def with_core(infra: InfraSettings, **core: object) -> InfraSettings:
    """`infra` with its core settings replaced (and a JWT secret production accepts)."""
    return infra.model_copy(
        update={"core": CoreSettings(**core), "jwt": JwtSettings(secret="a-production-grade-secret-" + "x" * 32)}
    )


async def test_metrics_with_a_token_need_it(infra_settings: InfraSettings, make_client: ClientFactory) -> None:
    client = await make_client(library_app(with_core(infra_settings, env="production", metrics_token=METRICS_TOKEN)))

    missing = await client.get("/metrics")
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
    other_scheme = await client.get("/metrics", headers={"Authorization": f"Basic {METRICS_TOKEN}"})
    right = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})

    for refused in (missing, wrong, other_scheme):
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"]["code"] == "unauthorized"
        assert refused.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert right.status_code == 200
    assert "http_requests_total" in right.text


@pytest.mark.parametrize("token", [None, ""])
async def test_metrics_without_a_token_are_not_served_in_production(
    infra_settings: InfraSettings, make_client: ClientFactory, token: str | None
) -> None:
    client = await make_client(library_app(with_core(infra_settings, env="production", metrics_token=token)))

    response = await client.get("/metrics", headers={"Authorization": "Bearer "})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert (await client.get("/health")).status_code == 200
    assert (await client.get("/ready")).status_code == 200


# --- health and readiness ---


async def test_health_names_the_service(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "service": SERVICE}


async def test_ready_when_every_dependency_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "redis"}
    for check in body["checks"].values():
        assert check["ok"] is True
        assert check["latency_ms"] >= 0


async def test_not_ready_names_the_unreachable_redis(infra_settings: InfraSettings, make_client: ClientFactory) -> None:
    infra = infra_settings.model_copy(update={"redis": RedisSettings(url=f"redis://127.0.0.1:{closed_port()}/0")})
    client = await make_client(library_app(infra))  # the lifespan starts although Redis is down

    started = time.monotonic()
    response = await client.get("/ready")
    elapsed = time.monotonic() - started

    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["redis"]["error"]
    assert elapsed < 5
    assert (await client.get("/health")).status_code == 200


async def test_not_ready_names_the_unreachable_database(
    infra_settings: InfraSettings, make_client: ClientFactory
) -> None:
    url = f"postgresql://postgres@127.0.0.1:{closed_port()}/nothing"
    infra = infra_settings.model_copy(update={"database": DatabaseSettings(url=url)})
    client = await make_client(library_app(infra))

    response = await client.get("/ready")

    assert response.status_code == 503, response.text
    checks = response.json()["checks"]
    assert (checks["database"]["ok"], checks["redis"]["ok"]) == (False, True)
    assert checks["database"]["error"]


async def test_tcp_check_reaches_the_broker(mirante_urls: StackUrls) -> None:
    await tcp_check(mirante_urls.mqtt_url, 1883)()

    with pytest.raises(OSError):
        await tcp_check(f"mqtt://127.0.0.1:{closed_port()}", 1883)()
