"""Every recording-storage route against every kind of caller: the status each gets, and what it saw or changed.

Rules (`uploads.deps`, `recordings.deps`, docs/recording-storage.md):

- uploading: users from operator up; API keys with the scope `recordings:upload` (or `*`), whatever their role;
- an upload session belongs to the principal that opened it: to every other uploader it answers 404, whatever
  their role, staff included;
- reading recordings: any user; API keys with `recordings:read`; upload statistics also need the operator role;
- deleting: admins; API keys also need `recordings:admin`;
- a tenant-bound principal's recordings carry its tenant, and it reaches only its tenant's (others: 404, and
  lists and statistics leave them out); staff and principals without a tenant reach all;
- a signed content URL opens its one file for anyone, credentials or not.

The pages are shells whose scripts call the API, served to anyone like health, readiness and the API docs;
`/metrics` answers only its token.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

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
from recording_storage.config import Settings
from recording_storage.main import create_app
from recording_storage.models import UploadSession
from recording_storage.recordings import repository as recordings

ACME = f"rs{uuid.uuid4().hex[:10]}"
BETA = f"rs{uuid.uuid4().hex[:10]}"

ANONYMOUS = "anonymous"
SCRAPER = "metrics_scraper"
"""Holds the metrics token and nothing else: a bearer value that is neither a user token nor an API key."""
USERS: dict[str, dict[str, Any]] = {
    "viewer": {"role": Role.viewer},
    "operator": {"role": Role.operator},
    "admin": {"role": Role.admin},
    "staff": {"role": Role.admin, "staff": True},
    "acme_viewer": {"role": Role.viewer, "tenant": ACME},
    "acme_operator": {"role": Role.operator, "tenant": ACME},
    "acme_admin": {"role": Role.admin, "tenant": ACME},
    "beta_admin": {"role": Role.admin, "tenant": BETA},
}
KEYS: dict[str, tuple[list[str], Role, str | None]] = {
    "key_upload": (["recordings:upload"], Role.viewer, None),
    "key_upload_other": (["recordings:upload"], Role.admin, None),
    "key_acme_upload": (["recordings:upload"], Role.viewer, ACME),
    "key_read": (["recordings:read"], Role.operator, None),
    "key_acme_read": (["recordings:read"], Role.viewer, ACME),
    "key_admin_scoped": (["recordings:admin", "recordings:read"], Role.admin, None),
    "key_other_scope_admin": (["telemetry:ingest", "vision"], Role.admin, None),
    "key_star": (["*"], Role.admin, None),
}
CALLERS = (ANONYMOUS, SCRAPER, *USERS, *KEYS)
WITHOUT_CREDENTIALS = frozenset({ANONYMOUS, SCRAPER})
OWNER = "key_upload"
"""Opened the sessions of the world and uploaded its suite-wide recording."""

SUITE_DELETERS = frozenset({"admin", "staff", "key_admin_scoped", "key_star"})
ACME_DELETERS = frozenset({"acme_admin"})
BETA_DELETERS = frozenset({"beta_admin"})
SUITE_READERS = SUITE_DELETERS | {"viewer", "operator", "key_read"}
ACME_READERS = ACME_DELETERS | {"acme_viewer", "acme_operator", "key_acme_read"}
BETA_READERS = BETA_DELETERS
STATISTICIANS = SUITE_DELETERS | {"operator", "key_read", "acme_operator", "acme_admin", "beta_admin"}
UPLOADING_USERS = frozenset({"operator", "admin", "staff", "acme_operator", "acme_admin", "beta_admin"})
UPLOADERS = UPLOADING_USERS | {"key_upload", "key_upload_other", "key_acme_upload", "key_star"}


def expect(allowed: frozenset[str], success: int, *, hidden: frozenset[str] = frozenset()) -> dict[str, int]:
    """`success` for the allowed callers, 404 for the `hidden` ones (let through, but the thing is out of their
    reach), 401 without a credential of the API, 403 for the rest."""
    table = {caller: success if caller in allowed else 404 if caller in hidden else 403 for caller in CALLERS}
    table.update(dict.fromkeys(WITHOUT_CREDENTIALS, 401))
    return table


def everyone(status: int) -> dict[str, int]:
    return dict.fromkeys(CALLERS, status)


def session_body(wats_user: str, video: bytes) -> dict[str, Any]:
    return {
        "session_id": f"rdp_{uuid.uuid4().hex[:12]}",
        "connection_info": {
            "con_codigo": 123,
            "ip": "192.168.1.100",
            "name": "Production Server",
            "user": "administrator",
            "connection_type": "RDP",
            "wats_user": wats_user,
            "wats_user_machine": "DESKTOP-ABC123",
            "wats_user_ip": "192.168.1.50",
        },
        "file_size": len(video),
        "sha256": hashlib.sha256(video).hexdigest(),
        "metadata": {
            "start_time": "2024-10-26T15:00:22.123456",
            "recorder_settings": {"fps": 10, "quality": 23, "resolution_scale": 1.0},
        },
    }


RAW = {"Content-Type": "application/octet-stream", "Upload-Offset": "0"}


async def open_session(world: World, caller: str, video: bytes, *, send: bool) -> str:
    """A session of `caller` for `video`; with both files sent when `send`. Its id."""
    headers = world.headers[caller]
    body = session_body(world.ids["stem"], video)
    created = await world.client.post("/api/v1/uploads/create-session", json=body, headers=headers)
    assert created.status_code == 201, created.text
    if send:
        for url, data in ((created.json()["video_upload_url"], video), (created.json()["metadata_upload_url"], b"{}")):
            assert (await world.client.post(url, content=data, headers={**headers, **RAW})).status_code == 200
    return str(created.json()["session_id"])


async def upload(world: World, caller: str, video: bytes) -> str:
    """A finished recording of `caller`; its id."""
    session_id = await open_session(world, caller, video, send=True)
    finished = await world.client.post(f"/api/v1/uploads/{session_id}/finalize", headers=world.headers[caller])
    assert finished.status_code == 200, finished.text
    return str(finished.json()["id"])


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(db_engine: AsyncEngine, infra_settings: InfraSettings, tmp_path_factory: Any) -> AsyncIterator[World]:
    """One app for the module, on one session rolled back at its end: a suite-wide recording and one of `ACME`,
    three open sessions of `OWNER` (new, to send to, complete), a signed URL, and the callers."""
    settings = Settings(
        infra=with_metrics_token(infra_settings),
        storage_dir=tmp_path_factory.mktemp("recording-matrix"),
        sweep_enabled=False,
        max_video_bytes=1024 * 1024,
        max_metadata_bytes=64 * 1024,
    )
    codec = TokenCodec.from_settings(infra_settings.jwt)
    stem = f"rm{uuid.uuid4().hex[:10]}"
    async with rolled_back_session(db_engine) as session, AsyncExitStack() as stack:
        world = World(client=await serve_on_session(stack, create_app(settings), session), session=session)
        world.headers[ANONYMOUS] = {}
        world.headers[SCRAPER] = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        await enrol_callers(world, codec, stem, USERS, KEYS)
        world.ids["stem"] = stem
        world.ids["video"] = os.urandom(3000)
        world.ids["suite_recording"] = await upload(world, OWNER, world.ids["video"])
        world.ids["acme_recording"] = await upload(world, "key_acme_upload", os.urandom(2000))
        world.ids["new_session"] = await open_session(world, OWNER, os.urandom(1000), send=False)
        world.ids["sending_session"] = await open_session(world, OWNER, os.urandom(1000), send=False)
        world.ids["complete_session"] = await open_session(world, OWNER, os.urandom(1000), send=True)
        signed = await world.client.post(
            f"/api/v1/recordings/{world.ids['suite_recording']}/content-url", headers=world.headers["admin"]
        )
        assert signed.status_code == 200, signed.text
        world.ids["signed_query"] = urlsplit(signed.json()["url"]).query
        yield world


def tenant_of(caller: str) -> str | None:
    spec = USERS.get(caller)
    return spec.get("tenant") if spec is not None else KEYS[caller][2]


async def opens_a_session_of_the_callers_tenant(world: World, caller: str, response: httpx.Response) -> None:
    if response.status_code == 201:
        opened = await world.session.get(UploadSession, response.json()["session_id"])
        assert opened is not None and opened.tenant == tenant_of(caller)


async def lists_recordings_within_reach(world: World, caller: str, response: httpx.Response) -> None:
    if response.status_code != 200:
        assert world.ids["stem"] not in response.text
        return
    seen = {recording["id"] for recording in response.json()["results"]}
    if caller in ACME_READERS:
        assert seen == {world.ids["acme_recording"]}
    elif caller in BETA_READERS:
        assert seen == set()
    else:
        assert seen == {world.ids["suite_recording"], world.ids["acme_recording"]}


def shows_nothing_when_refused(world: World, response: httpx.Response) -> None:
    if response.status_code >= 400:
        assert world.ids["stem"] not in response.text


async def shows_the_recording(world: World, caller: str, response: httpx.Response) -> None:
    shows_nothing_when_refused(world, response)
    if response.status_code == 200:
        assert response.json()["wats_user"] == world.ids["stem"]


async def sends_the_video(world: World, caller: str, response: httpx.Response) -> None:
    shows_nothing_when_refused(world, response)
    if response.status_code == 200:
        assert response.content == world.ids["video"]


async def signs_a_url(world: World, caller: str, response: httpx.Response) -> None:
    if response.status_code == 200:
        assert "signature=" in response.json()["url"]


def deletes_only_when_allowed(label: str) -> Any:
    async def check(world: World, caller: str, response: httpx.Response) -> None:
        kept = await recordings.get(world.session, uuid.UUID(world.ids[label]))
        assert (kept is None) == (response.status_code == 204)

    return check


async def shows_the_owners_offsets(world: World, caller: str, response: httpx.Response) -> None:
    if response.status_code == 200:
        assert response.json()["video"]["received"] == 0


async def counts_what_is_within_reach(world: World, caller: str, response: httpx.Response) -> None:
    if response.status_code != 200:
        return
    figures = response.json()
    if tenant_of(caller) == ACME:
        assert figures["totals"]["recordings"] == 1 and figures["in_progress"]["sessions"] == 0
    elif tenant_of(caller) == BETA:
        assert figures["totals"]["recordings"] == 0 and figures["in_progress"]["sessions"] == 0
    else:
        assert figures["totals"]["recordings"] >= 2 and figures["in_progress"]["sessions"] >= 3


SESSION_ROUTE = "/api/v1/uploads/{session_id}"
ONE = "/api/v1/recordings/{recording_id}"
SESSION_CALLERS = {"allowed": frozenset({OWNER}), "hidden": UPLOADERS - {OWNER}}
SUITE_READ = {"allowed": SUITE_READERS, "hidden": ACME_READERS | BETA_READERS}
ACME_READ = {"allowed": SUITE_READERS | ACME_READERS, "hidden": BETA_READERS}


def one(label: str, suffix: str = "", query: str = "") -> str:
    return f"/api/v1/recordings/{{{label}}}{suffix}{query}"


CASES: dict[str, Case] = {
    "open an upload session": Case(
        "POST",
        "/api/v1/uploads/create-session",
        expect(UPLOADERS, 201),
        json=lambda world: session_body(world.ids["stem"], b"x" * 1000),
        check=opens_a_session_of_the_callers_tenant,
    ),
    "a session's status": Case(
        "GET",
        SESSION_ROUTE + "/status",
        expect(SESSION_CALLERS["allowed"], 200, hidden=SESSION_CALLERS["hidden"]),
        url="/api/v1/uploads/{new_session}/status",
        check=shows_the_owners_offsets,
    ),
    "send a session's video": Case(
        "POST",
        SESSION_ROUTE + "/file",
        expect(SESSION_CALLERS["allowed"], 200, hidden=SESSION_CALLERS["hidden"]),
        url="/api/v1/uploads/{sending_session}/file?kind=video",
        content=lambda world: b"v" * 100,
        headers=RAW,
    ),
    "finish a session": Case(
        "POST",
        SESSION_ROUTE + "/finalize",
        expect(SESSION_CALLERS["allowed"], 200, hidden=SESSION_CALLERS["hidden"]),
        url="/api/v1/uploads/{complete_session}/finalize",
    ),
    "upload statistics": Case(
        "GET", "/api/v1/uploads/statistics", expect(STATISTICIANS, 200), check=counts_what_is_within_reach
    ),
    "list recordings": Case(
        "GET",
        "/api/v1/recordings",
        expect(SUITE_READERS | ACME_READERS | BETA_READERS, 200),
        url="/api/v1/recordings?wats_user={stem}",
        check=lists_recordings_within_reach,
    ),
    **{
        f"{action} the {owner} recording": Case(
            method,
            ONE + suffix,
            expect(reach["allowed"], status, hidden=reach["hidden"]),
            url=one(f"{owner}_recording", suffix),
            check=check,
        )
        for owner, reach in (("suite", SUITE_READ), ("acme", ACME_READ))
        for action, method, suffix, status, check in (
            ("get", "GET", "", 200, shows_the_recording),
            ("sign a URL to", "POST", "/content-url", 200, signs_a_url),
        )
    },
    "the suite recording's video": Case(
        "GET",
        ONE + "/content",
        expect(SUITE_READ["allowed"], 200, hidden=SUITE_READ["hidden"]),
        url=one("suite_recording", "/content"),
        check=sends_the_video,
    ),
    "the acme recording's video": Case(
        "GET",
        ONE + "/content",
        expect(ACME_READ["allowed"], 200, hidden=ACME_READ["hidden"]),
        url=one("acme_recording", "/content"),
    ),
    # Credentials are not read when the URL is signed: the signature is the grant, for its one file.
    "the suite recording's video by its signed URL": Case(
        "GET", ONE + "/content", everyone(200), url=one("suite_recording", "/content", "?{signed_query}")
    ),
    "the acme recording's video by the suite recording's signed URL": Case(
        "GET", ONE + "/content", everyone(403), url=one("acme_recording", "/content", "?{signed_query}")
    ),
    "delete the suite recording": Case(
        "DELETE",
        ONE,
        expect(SUITE_DELETERS, 204, hidden=ACME_DELETERS | BETA_DELETERS),
        url=one("suite_recording"),
        check=deletes_only_when_allowed("suite_recording"),
    ),
    "delete the acme recording": Case(
        "DELETE",
        ONE,
        expect(SUITE_DELETERS | ACME_DELETERS, 204, hidden=BETA_DELETERS),
        url=one("acme_recording"),
        check=deletes_only_when_allowed("acme_recording"),
    ),
    # Pages: shells served to anyone; their scripts call the API above with the signed-in user's token.
    "the recordings page": Case("GET", "/", everyone(200)),
    "the statistics page": Case("GET", "/statistics", everyone(200)),
    "the player page": Case("GET", "/recordings/{recording_id}", everyone(200), url="/recordings/{suite_recording}"),
    # The recorder's client looks for liveness under its base URL.
    "liveness under the API prefix": Case("GET", "/api/v1/health", everyone(200)),
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
