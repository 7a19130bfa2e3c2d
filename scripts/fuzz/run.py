"""Fuzz every service's HTTP API from its own OpenAPI description with schemathesis.

For each service: a throwaway database is created and migrated, an admin user is created in it, the service is
started with `mirante serve` on a free local port, the admin signs in through `/api/v1/auth/login`, and
`st run` runs every check against `/openapi.json` with the admin's bearer token, bounded in examples per
operation and in time. Any 5xx, any answer the description does not allow, and any refused valid input fail the
run. Reports (JUnit XML and the service's log) go to `build/fuzz/<service>/`.

    python scripts/fuzz/run.py [--services a,b] [--examples N] [--seconds S] [--seed N]

`FUZZ_SERVICES`, `FUZZ_EXAMPLES`, `FUZZ_SECONDS` and `FUZZ_SEED` set the same from the environment (`make fuzz`).
PostgreSQL and Redis come from `MIRANTE_DATABASE_URL` / `MIRANTE_REDIS_URL` (and MQTT from `MIRANTE_MQTT_URL`),
else from a running `mirante up` stack.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from mirante.app import runtime_urls
from mirante.auth.commands import create_user
from mirante.db import create_engine, create_sessionmaker
from mirante.service import ServiceSpec, discover_services
from mirante.settings import InfraSettings
from mirante.testing.database import create_test_database, drop_test_database

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ROOT / "build" / "fuzz"
CONFIG = Path(__file__).with_name("schemathesis.toml")
ADMIN = "fuzz-admin"
READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
# Users created before the admin, so that the smallest ids the fuzzer tries first (1, 2) are not the admin
# whose token every request carries: deactivating it would end the run's authenticated coverage.
DECOY_USERS = 3
BROKER_SECRET = "fuzz-broker-secret"


@dataclass(frozen=True)
class Bounds:
    examples: int
    seconds: int
    seed: int | None = None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _prepare_database(server_url: str, password: str) -> str:
    """A fresh migrated database holding a few users and the admin the run signs in as."""
    database_url = await create_test_database(server_url, prefix="mirante_fuzz")

    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            for number in range(DECOY_USERS):
                await create_user(session, username=f"fuzz-user-{number}", password=secrets.token_urlsafe(16))
            await create_user(session, username=ADMIN, password=password, role="admin", staff=True)
    finally:
        await engine.dispose()
    return database_url


def _service_env(database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["MIRANTE_DATABASE_URL"] = database_url
    env["MIRANTE_SIGNUP_ENABLED"] = "true"
    env["TELEMETRY_INGEST_BROKER_AUTH_SECRET"] = BROKER_SECRET
    # Configured but unreachable (the discard port): sync runs are accepted and fail in the background.
    env["CVAT_SYNC_CVAT_URL"] = "http://127.0.0.1:9"
    env["CVAT_SYNC_CVAT_TOKEN"] = "fuzz-token"
    # Without a secret every webhook is refused with 503; with one, unsigned fuzz input gets 401.
    env["CVAT_SYNC_WEBHOOK_SECRET"] = "fuzz-webhook-secret"
    # Chatwoot on, pointed at the discard port (conversations fail and are retried in the background); with a
    # webhook secret, unsigned fuzz input gets 401 (without one, 503).
    env["RTLS_CAMBUS_CHATWOOT_ENABLED"] = "true"
    env["RTLS_CAMBUS_CHATWOOT_URL"] = "http://127.0.0.1:9"
    env["RTLS_CAMBUS_CHATWOOT_API_TOKEN"] = "fuzz-token"
    env["RTLS_CAMBUS_CHATWOOT_ACCOUNT_ID"] = "1"
    env["RTLS_CAMBUS_CHATWOOT_INBOX_ID"] = "1"
    env["RTLS_CAMBUS_CHATWOOT_WEBHOOK_SECRET"] = "fuzz-chatwoot-secret"
    # Login, signup and webhook failures are rate limited per client; the fuzzer is one client and must reach
    # the logic behind.
    env["MIRANTE_LOGIN_RATE_LIMIT"] = "100000/minute"
    env["RTLS_CAMBUS_CHATWOOT_WEBHOOK_RATE_LIMIT"] = "100000/minute"
    env["RTLS_CAMBUS_CHATWOOT_WEBHOOK_REJECTED_RATE_LIMIT"] = "100000/minute"
    # So is vision-orchestrator's user API (1,000 an hour, in Redis buckets keyed by user id, which every run's
    # admin shares): one run sends more than that, and a 429 tests nothing behind it.
    env["VISION_ORCHESTRATOR_USER_RATE_LIMIT"] = "1000000/hour"
    return env


def _wait_ready(process: subprocess.Popen[bytes], base_url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the service exited with code {process.returncode}")
            try:
                if client.get(f"{base_url}/ready").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
    raise RuntimeError(f"not ready after {READY_TIMEOUT_SECONDS:.0f} s")


def _sign_in(base_url: str, password: str) -> str:
    answer = httpx.post(f"{base_url}/api/v1/auth/login", data={"username": ADMIN, "password": password}, timeout=10)
    answer.raise_for_status()
    token: str = answer.json()["access_token"]
    return token


def _schemathesis(base_url: str, token: str, bounds: Bounds, reports: Path) -> list[str]:
    return [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(CONFIG),
        "run",
        f"{base_url}/openapi.json",
        # Every check runs by default (`checks.enabled` in the file). `--checks all` would name each of them on
        # the command line, which outranks the file, so its exceptions (per check and per operation) were lost.
        "--max-examples",
        str(bounds.examples),
        "--max-time",
        str(bounds.seconds),
        "--workers",
        "1",
        "--header",
        f"Authorization: Bearer {token}",
        "--header",
        f"X-Broker-Secret: {BROKER_SECRET}",
        "--report",
        "junit",
        "--report-dir",
        str(reports),
        "--generation-database",
        "none",
        # The bearer token is the credential; generated API keys would only test the 401 path everywhere.
        "--generation-with-security-parameters",
        "false",
        "--no-color",
        *(["--seed", str(bounds.seed)] if bounds.seed is not None else []),
    ]


def fuzz_service(spec: ServiceSpec, server_url: str, bounds: Bounds) -> bool:
    """Fuzz one service on a database of its own; True when schemathesis found nothing."""
    reports = REPORTS / spec.name
    shutil.rmtree(reports, ignore_errors=True)
    reports.mkdir(parents=True)
    password = secrets.token_urlsafe(16)
    database_url = asyncio.run(_prepare_database(server_url, password))
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    with (reports / "service.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mirante", "serve", spec.name, "--port", str(port)],
            env=_service_env(database_url),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_ready(process, base_url)
            token = _sign_in(base_url, password)
            print(f"== {spec.name}: {base_url}, {bounds.examples} examples, {bounds.seconds} s", flush=True)
            return subprocess.run(_schemathesis(base_url, token, bounds, reports), check=False).returncode == 0
        finally:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            asyncio.run(drop_test_database(server_url, database_url))


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", default=os.environ.get("FUZZ_SERVICES", ""), help="comma-separated names")
    parser.add_argument("--examples", type=int, default=int(os.environ.get("FUZZ_EXAMPLES", "50")))
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("FUZZ_SECONDS", "120")))
    parser.add_argument(
        "--seed",
        type=int,
        default=int(os.environ["FUZZ_SEED"]) if os.environ.get("FUZZ_SEED") else None,
        help="schemathesis seed, to replay a run (default: a new one each run)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Fuzz the chosen services one after the other; 1 when any of them failed."""
    args = _parse(argv)
    available = {spec.name: spec for spec in discover_services()}
    names = [name.strip() for name in args.services.split(",") if name.strip()] or sorted(available)
    unknown = sorted(set(names) - set(available))
    if unknown:
        print(f"unknown services: {', '.join(unknown)} (installed: {', '.join(sorted(available))})", file=sys.stderr)
        return 2
    server_url = runtime_urls(InfraSettings()).database_url
    bounds = Bounds(examples=args.examples, seconds=args.seconds, seed=args.seed)
    failed = [name for name in names if not fuzz_service(available[name], server_url, bounds)]
    print(f"fuzzed {len(names)} services; failed: {', '.join(failed) or 'none'}; reports in {REPORTS}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
