"""Every cvat-sync route against every kind of caller: the status each gets, and what it saw or changed.

Rules (`cvat_sync.deps`): viewers read jobs, their history, statistics and sync runs; operators also start syncs;
admins also read the webhook audit log. An API key needs, besides its role, the scope `cvat` (or `*`). The mirror
belongs to no tenant, so a tenant-bound principal gets 403 whatever its role; staff reach it.

The webhook receiver takes no credentials: CVAT's signature is its authentication, so a request with a bad one
is refused 401 whoever sends it (the signed deliveries are test_webhooks'). The pages are shells whose scripts
call the API, served to anyone like health, readiness and the API docs; `/metrics` answers only its token.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from cvat_sync.config import Settings
from cvat_sync.cvat.payloads import AnnotationCounts, CvatJob
from cvat_sync.jobs import queries
from cvat_sync.jobs.service import Incoming, JobMirror
from cvat_sync.main import create_app
from cvat_sync.sync import repository as sync_runs
from cvat_sync.sync.models import SyncRun
from mirante.auth.roles import Role
from mirante.auth.tokens import TokenCodec
from mirante.settings import InfraSettings
from mirante.testing.matrix import (
    METRICS_TOKEN,
    Case,
    World,
    enrol_callers,
    library_cases,
    rolled_back_session,
    routes_to_cover,
    run_case,
    serve_on_session,
    with_metrics_token,
)
from mirante.webhooks import sign_sha256_hex

SECRET = "matrix-webhook-secret"

ANONYMOUS = "anonymous"
SCRAPER = "metrics_scraper"
"""Holds the metrics token and nothing else: a bearer value that is neither a user token nor an API key."""
USERS: dict[str, dict[str, Any]] = {
    "viewer": {"role": Role.viewer},
    "operator": {"role": Role.operator},
    "admin": {"role": Role.admin},
    "staff": {"role": Role.admin, "staff": True},
    "acme_viewer": {"role": Role.viewer, "tenant": "acme"},
    "acme_operator": {"role": Role.operator, "tenant": "acme"},
    "acme_admin": {"role": Role.admin, "tenant": "acme"},
}
KEYS: dict[str, tuple[list[str], Role, str | None]] = {
    "key_viewer": (["*"], Role.viewer, None),
    "key_operator": (["*"], Role.operator, None),
    "key_admin": (["*"], Role.admin, None),
    "key_cvat_viewer": (["cvat"], Role.viewer, None),
    "key_cvat_admin": (["cvat"], Role.admin, None),
    "key_other_scope_admin": (["telemetry:ingest", "recordings:read"], Role.admin, None),
    "key_acme_admin": (["*"], Role.admin, "acme"),
}
CALLERS = (ANONYMOUS, SCRAPER, *USERS, *KEYS)
WITHOUT_CREDENTIALS = frozenset({ANONYMOUS, SCRAPER})

ADMINS = frozenset({"admin", "staff", "key_admin", "key_cvat_admin"})
OPERATORS = ADMINS | {"operator", "key_operator"}
READERS = OPERATORS | {"viewer", "key_viewer", "key_cvat_viewer"}


def expect(allowed: frozenset[str], success: int) -> dict[str, int]:
    """`success` for the allowed callers, 401 without a credential of the API, 403 for the rest."""
    table = {caller: (success if caller in allowed else 403) for caller in CALLERS}
    table.update(dict.fromkeys(WITHOUT_CREDENTIALS, 401))
    return table


def everyone(status: int) -> dict[str, int]:
    return dict.fromkeys(CALLERS, status)


def raw_job(job_id: int, task_id: int, task_name: str) -> dict[str, Any]:
    """A job as CVAT lists it."""
    return {
        "url": f"http://cvat.test/api/jobs/{job_id}",
        "id": job_id,
        "task_id": task_id,
        "task_name": task_name,
        "project_id": None,
        "project_name": None,
        "assignee": {"url": "http://cvat.test/api/users/3", "id": 3, "username": "alice"},
        "dimension": "2d",
        "mode": "annotation",
        "status": "annotation",
        "stage": "annotation",
        "state": "in progress",
        "frame_count": 50,
        "start_frame": 0,
        "stop_frame": 49,
        "created_date": "2025-03-01T10:00:00.000000Z",
        "updated_date": "2025-03-02T10:00:00.000000Z",
        "type": "annotation",
        "organization": 2,
    }


def new_id() -> int:
    return 10**9 + uuid.uuid4().int % 10**9


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(db_engine: AsyncEngine, infra_settings: InfraSettings) -> AsyncIterator[World]:
    """One app for the module, on one session rolled back at its end: a mirrored job with history, a finished
    sync run, a webhook log row, and the callers."""
    settings = Settings(
        infra=with_metrics_token(infra_settings),
        # Unreachable: a sync started here stays queued in the test's transaction, which no worker sees.
        cvat_url="http://127.0.0.1:9",
        cvat_token=SecretStr("matrix-token"),
        webhook_secret=SecretStr(SECRET),
        # Every refused webhook of the matrix comes from one address; the limit has tests of its own.
        webhook_rejected_rate_limit="100000/minute",
    )
    codec = TokenCodec.from_settings(infra_settings.jwt)
    stem = f"cm{uuid.uuid4().hex[:10]}"
    async with rolled_back_session(db_engine) as session, AsyncExitStack() as stack:
        world = World(client=await serve_on_session(stack, create_app(settings), session), session=session)
        world.headers[ANONYMOUS] = {}
        world.headers[SCRAPER] = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        await enrol_callers(world, codec, stem, USERS, KEYS)

        job_id, task_id = new_id(), new_id()
        raw = raw_job(job_id, task_id, stem)
        await JobMirror(session, source="sync").apply([Incoming(CvatJob.parse(raw), raw, AnnotationCounts(3, 1))])
        run = SyncRun(status="success", trigger="api", started_by=stem)
        session.add(run)
        await session.flush()
        body = json.dumps({"event": f"matrix:{stem}", "webhook_id": 7}).encode()
        delivered = await world.client.post(
            "/api/v1/webhooks/cvat",
            content=body,
            headers={"Content-Type": "application/json", "X-Signature-256": sign_sha256_hex(SECRET, body)},
        )
        assert delivered.status_code == 200, delivered.text
        world.ids.update(
            stem=stem,
            job_id=job_id,
            task_id=task_id,
            run_id=run.id,
            log_id=delivered.json()["log_id"],
            new_job_id=new_id(),
        )
        yield world


async def sees_only_the_job(world: World, caller: str, response: httpx.Response) -> None:
    if response.status_code == 200:
        assert [job["id"] for job in response.json()["results"]] == [world.ids["job_id"]]
    else:
        assert world.ids["stem"] not in response.text


async def exports_the_job(world: World, caller: str, response: httpx.Response) -> None:
    if response.status_code == 200:
        _header, row, *rest = response.text.splitlines()
        assert str(world.ids["job_id"]) in row and world.ids["stem"] in row and not rest
    else:
        assert world.ids["stem"] not in response.text


async def sees_the_job(world: World, caller: str, response: httpx.Response) -> None:
    if response.status_code == 200:
        assert response.json()["id"] == world.ids["job_id"]
        assert response.json()["task_name"] == world.ids["stem"]
    else:
        assert world.ids["stem"] not in response.text


async def sees_the_history(world: World, caller: str, response: httpx.Response) -> None:
    if response.status_code == 200:
        assert [change["kind"] for change in response.json()["results"]] == ["created"]


async def counts_the_job(world: World, caller: str, response: httpx.Response) -> None:
    if response.status_code == 200:
        assert response.json()["totals"]["jobs"] == 1


async def queues_a_run_only_when_allowed(world: World, caller: str, response: httpx.Response) -> None:
    active = await sync_runs.active_run(world.session)
    if response.status_code == 202:
        assert active is not None and active.id == response.json()["id"]
        assert active.started_by == world.names[caller]
    else:
        assert active is None


async def sees_the_run(world: World, caller: str, response: httpx.Response) -> None:
    if response.status_code == 200:
        assert world.ids["run_id"] in [run["id"] for run in response.json()["results"]]


async def sees_the_log(world: World, caller: str, response: httpx.Response) -> None:
    if response.status_code == 200:
        assert [log["id"] for log in response.json()["results"]] == [world.ids["log_id"]]
    else:
        assert world.ids["stem"] not in response.text


async def mirrors_nothing(world: World, caller: str, response: httpx.Response) -> None:
    assert not await queries.job_exists(world.session, world.ids["new_job_id"])


def unsigned_creation(world: World) -> bytes:
    raw = raw_job(world.ids["new_job_id"], world.ids["task_id"], world.ids["stem"])
    return json.dumps({"event": "create:job", "webhook_id": 7, "job": raw}).encode()


BAD_SIGNATURE = {"Content-Type": "application/json", "X-Signature-256": "sha256=" + "0" * 64}

JOB = "/api/v1/jobs/{job_id}"
CASES: dict[str, Case] = {
    "list jobs": Case(
        "GET", "/api/v1/jobs", expect(READERS, 200), url="/api/v1/jobs?task_id={task_id}", check=sees_only_the_job
    ),
    "export jobs": Case(
        "GET",
        "/api/v1/jobs/export.csv",
        expect(READERS, 200),
        url="/api/v1/jobs/export.csv?task_id={task_id}",
        check=exports_the_job,
    ),
    "get a job": Case("GET", JOB, expect(READERS, 200), check=sees_the_job),
    "a job's history": Case("GET", JOB + "/history", expect(READERS, 200), check=sees_the_history),
    "statistics": Case(
        "GET", "/api/v1/stats", expect(READERS, 200), url="/api/v1/stats?task_id={task_id}", check=counts_the_job
    ),
    "start a sync": Case("POST", "/api/v1/sync-runs", expect(OPERATORS, 202), check=queues_a_run_only_when_allowed),
    "list sync runs": Case("GET", "/api/v1/sync-runs", expect(READERS, 200), check=sees_the_run),
    "get a sync run": Case("GET", "/api/v1/sync-runs/{run_id}", expect(READERS, 200)),
    "list webhook logs": Case(
        "GET",
        "/api/v1/webhook-logs",
        expect(ADMINS, 200),
        url="/api/v1/webhook-logs?event_type=matrix:{stem}",
        check=sees_the_log,
    ),
    "get a webhook log": Case("GET", "/api/v1/webhook-logs/{log_id}", expect(ADMINS, 200)),
    # Signed, not authenticated: a bad signature is refused whatever credentials come with it.
    **{
        f"deliver a webhook to {path}": Case(
            "POST",
            path,
            everyone(401),
            content=unsigned_creation,
            headers=BAD_SIGNATURE,
            check=mirrors_nothing,
        )
        for path in ("/api/v1/webhooks/cvat", "/cvat/webhook", "/cvat/webhook/")
    },
    # Pages: shells served to anyone; their scripts call the API above with the signed-in user's token.
    "the job list page": Case("GET", "/", everyone(200)),
    "a job's page": Case("GET", "/jobs/{job_id}", everyone(200)),
    "the sync runs page": Case("GET", "/sync-runs", everyone(200)),
    "the webhook log page": Case("GET", "/webhook-logs", everyone(200)),
    **library_cases(CALLERS, SCRAPER),
}


def test_every_route_is_in_the_matrix(infra_settings: InfraSettings) -> None:
    # The library's identity router (login, users, API keys) has its matrix in the library's tests.
    served = routes_to_cover(create_app(Settings(infra=infra_settings)), infra_settings)

    assert served == {(case.method, case.route) for case in CASES.values()}


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("case_name", list(CASES))
async def test_route_by_caller(world: World, case_name: str, caller: str) -> None:
    await run_case(world, CASES[case_name], caller)


async def test_a_signed_webhook_needs_no_credentials(world: World) -> None:
    body = json.dumps({"event": f"matrix:{world.ids['stem']}", "webhook_id": 7}).encode()
    headers = {"Content-Type": "application/json", "X-Signature-256": sign_sha256_hex(SECRET, body)}
    for path in ("/api/v1/webhooks/cvat", "/cvat/webhook", "/cvat/webhook/"):
        case = Case("POST", path, everyone(200), content=lambda _world: body, headers=headers)
        await run_case(world, case, ANONYMOUS)
