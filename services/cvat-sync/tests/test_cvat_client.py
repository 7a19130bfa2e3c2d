"""The CVAT client against the CVAT simulator (a real HTTP server): auth modes, paging, retries, errors."""

from __future__ import annotations

import asyncio
import http.server
import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import SecretStr

from cvat_sync.config import Settings
from cvat_sync.cvat.client import AuthMode, CvatClient, auth_mode
from cvat_sync.cvat.errors import (
    CvatAuthenticationError,
    CvatConfigurationError,
    CvatNotFoundError,
    CvatPermissionError,
    CvatResponseError,
    CvatUnavailableError,
)
from mirante.webhooks import verify_sha256_hex

REPO_ROOT = Path(__file__).resolve().parents[3]
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))

from scripts.simulators.cvat import (  # noqa: E402
    DEFAULT_LEGACY_KEY,
    DEFAULT_PASSWORD,
    DEFAULT_TOKEN,
    DEFAULT_USERNAME,
    CvatSimulator,
    sign,
)

FAST_RETRIES = {"retry_base_seconds": 0.001, "retry_max_seconds": 0.01}


@pytest.fixture
def sim() -> Iterator[CvatSimulator]:
    with CvatSimulator(30) as simulator:
        yield simulator


def settings_for(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "cvat_url": url,
        "cvat_token": SecretStr(DEFAULT_TOKEN),
        "cvat_legacy_token": None,
        "cvat_username": None,
        "cvat_password": None,
        "cvat_organization": None,
        "cvat_page_size": 7,
        "cvat_max_retries": 3,
        "cvat_timeout_seconds": 5.0,
    }
    values.update(overrides)
    return Settings(**values)


def client_for(url: str, **overrides: Any) -> CvatClient:
    return CvatClient(settings_for(url, **overrides), **FAST_RETRIES)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- authentication ------------------------------------------------------------------------------------------


def test_credentials_are_chosen_personal_token_first() -> None:
    assert auth_mode(settings_for("http://cvat.test")) is AuthMode.ACCESS_TOKEN
    legacy = settings_for("http://cvat.test", cvat_token=None, cvat_legacy_token=SecretStr("k"))
    assert auth_mode(legacy) is AuthMode.LEGACY_TOKEN
    password = settings_for("http://cvat.test", cvat_token=None, cvat_username="u", cvat_password=SecretStr("p"))
    assert auth_mode(password) is AuthMode.PASSWORD
    with pytest.raises(CvatConfigurationError, match="CVAT_SYNC_CVAT_TOKEN"):
        auth_mode(settings_for("http://cvat.test", cvat_token=None))
    with pytest.raises(CvatConfigurationError, match="http"):
        CvatClient(settings_for("cvat.test"))


async def test_personal_access_token_is_sent_as_bearer(sim: CvatSimulator) -> None:
    async with client_for(sim.url) as cvat:
        assert (await cvat.whoami())["username"] == DEFAULT_USERNAME
    async with client_for(sim.url, cvat_token=SecretStr("wrong")) as cvat:
        with pytest.raises(CvatAuthenticationError, match="CVAT_SYNC_CVAT_TOKEN") as refused:
            await cvat.whoami()
    assert "401" in str(refused.value)
    assert sim.requests["users_self"] == 2, "a 401 is not retried"


async def test_legacy_token_is_sent_as_token(sim: CvatSimulator) -> None:
    async with client_for(sim.url, cvat_token=None, cvat_legacy_token=SecretStr(DEFAULT_LEGACY_KEY)) as cvat:
        assert (await cvat.whoami())["id"] == 1
    async with client_for(sim.url, cvat_token=None, cvat_legacy_token=SecretStr("stale")) as cvat:
        with pytest.raises(CvatAuthenticationError, match="CVAT_SYNC_CVAT_LEGACY_TOKEN"):
            await cvat.whoami()


async def test_password_logs_in_once_and_again_when_the_key_expires(sim: CvatSimulator) -> None:
    password = {"cvat_token": None, "cvat_username": DEFAULT_USERNAME, "cvat_password": SecretStr(DEFAULT_PASSWORD)}
    async with client_for(sim.url, **password) as cvat:
        await asyncio.gather(*(cvat.whoami() for _ in range(5)))
        assert sim.requests["login"] == 1, "concurrent first requests share one login"
        sim.expire_legacy_keys()
        await asyncio.gather(*(cvat.whoami() for _ in range(5)))
        assert sim.requests["login"] == 2, "a 401 triggers one new login, shared by the refused requests"

        sim.fail_next(2, 401, endpoint="users_self")
        with pytest.raises(CvatAuthenticationError, match="even after logging in again"):
            await cvat.whoami()
        assert sim.requests["login"] == 3, "re-login happens once per request, then the 401 is final"


async def test_a_wrong_password_names_the_settings_to_fix(sim: CvatSimulator) -> None:
    wrong = {"cvat_token": None, "cvat_username": DEFAULT_USERNAME, "cvat_password": SecretStr("nope")}
    async with client_for(sim.url, **wrong) as cvat:
        with pytest.raises(CvatAuthenticationError) as refused:
            await cvat.whoami()
    message = str(refused.value)
    assert DEFAULT_USERNAME in message and "CVAT_SYNC_CVAT_PASSWORD" in message
    assert "Unable to log in" in message, "CVAT's own reason is kept"


async def test_forbidden_names_the_credential_and_the_organization(sim: CvatSimulator) -> None:
    async with client_for(sim.url, cvat_organization="acme") as cvat:
        await cvat.whoami()
        sim.fail_next(1, 403)
        with pytest.raises(CvatPermissionError) as refused:
            await cvat.whoami()
    assert "CVAT_SYNC_CVAT_TOKEN" in str(refused.value) and "'acme'" in str(refused.value)
    assert sim.organizations_seen == ["acme", "acme"], "X-Organization goes with every request"


# -- listing jobs --------------------------------------------------------------------------------------------


async def test_jobs_are_streamed_page_by_page_with_the_server_count(sim: CvatSimulator) -> None:
    async with client_for(sim.url) as cvat:
        listing = cvat.iter_jobs()
        pages = listing.pages()
        first = await anext(pages)
        assert (first.number, first.count, first.size) == (1, 30, 7)
        assert listing.count == 30
        assert sim.requests["jobs"] == 1, "the next page is requested only when wanted"
        rest = [page async for page in pages]
    ids = [job.id for page in (first, *rest) for _, job in page.jobs]
    assert ids == list(range(1, 31)), "every job once, in id order"
    assert [page.size for page in rest] == [7, 7, 7, 2]
    assert sim.job_list_queries[0] == {"page": "1", "page_size": "7", "sort": "id"}


async def test_server_side_filters_reach_cvat_as_query_parameters(sim: CvatSimulator) -> None:
    async with client_for(sim.url) as cvat:
        by_project = [job.id async for _, job in cvat.iter_jobs(project_id=1)]
        by_task = [job.id async for _, job in cvat.iter_jobs(task_id=2)]
        by_assignee = [job async for _, job in cvat.iter_jobs(assignee="bob")]
        with pytest.raises(ValueError, match="project_id"):
            cvat.iter_jobs(project_id=0)
    assert by_project == sim.job_ids(project_id=1) and by_project
    assert by_task == sim.job_ids(task_id=2) == [6, 7, 8, 9, 10]
    assert [job.id for job in by_assignee] == sim.job_ids(assignee="bob")
    assert {job.assignee.username for job in by_assignee if job.assignee} == {"bob"}
    sent = [
        {key: query[key] for key in ("project_id", "task_id", "assignee") if key in query}
        for query in sim.job_list_queries
    ]
    assert {"project_id": "1"} in sent and {"task_id": "2"} in sent and {"assignee": "bob"} in sent
    assert all("status" not in query for query in sim.job_list_queries), "CVAT has no status filter on jobs"


async def test_invalid_job_objects_are_reported_not_fatal(sim: CvatSimulator) -> None:
    sim.corrupt_job(3, updated_date="soon")
    sim.corrupt_job(5, remove=("stage",))
    async with client_for(sim.url) as cvat:
        listing = cvat.iter_jobs()
        first = await anext(listing.pages())
        assert [item.job_id for item in first.invalid] == [3, 5]
        assert "updated_date" in first.invalid[0].reason and "stage" in first.invalid[1].reason
        again = cvat.iter_jobs()
        jobs = [job.id async for _, job in again]
    assert len(jobs) == 28 and again.invalid == 2


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"<html>login</html>", "text/html", "not JSON"),
        (b'{"results": 5}', "application/json", "count, next, previous, results"),
    ],
)
async def test_unusable_pages_raise_typed_errors(
    sim: CvatSimulator, body: bytes, content_type: str, message: str
) -> None:
    sim.fail_next(1, 200, endpoint="jobs", body=body, content_type=content_type)
    async with client_for(sim.url) as cvat:
        with pytest.raises(CvatResponseError, match=message):
            [item async for item in cvat.iter_jobs()]


# -- retries -------------------------------------------------------------------------------------------------


async def test_5xx_and_429_are_retried(sim: CvatSimulator) -> None:
    async with client_for(sim.url) as cvat:
        sim.fail_next(2, 503)
        sim.fail_next(1, 502)
        assert (await cvat.whoami())["id"] == 1
        assert sim.requests["users_self"] == 4

        sim.fail_next(1, 429, retry_after=0.3)
        started = time.monotonic()
        await cvat.whoami()
        assert time.monotonic() - started >= 0.3, "Retry-After is honoured"


async def test_retries_are_bounded(sim: CvatSimulator) -> None:
    sim.fail_next(10, 500)
    async with client_for(sim.url, cvat_max_retries=2) as cvat:
        with pytest.raises(CvatUnavailableError, match=r"500 .* 3 times"):
            await cvat.whoami()
    assert sim.requests["users_self"] == 3


async def test_network_errors_and_timeouts_are_retried() -> None:
    async with client_for(f"http://127.0.0.1:{free_port()}", cvat_max_retries=2) as cvat:
        with pytest.raises(CvatUnavailableError, match="after 3 attempts"):
            await cvat.whoami()
    with CvatSimulator(5) as slow:
        slow.fail_next(1, None, delay=1.0)
        async with client_for(slow.url, cvat_timeout_seconds=0.2) as cvat:
            assert (await cvat.whoami())["id"] == 1
        assert slow.requests["users_self"] == 2, "the timed-out request was sent again"


# -- counts and names ----------------------------------------------------------------------------------------


async def test_annotation_counts(sim: CvatSimulator) -> None:
    async with client_for(sim.url) as cvat:
        counts = await cvat.annotation_counts(13)
        assert (counts.manual, counts.interpolated) == sim.expected_counts(13)
        assert counts.total == sum(sim.expected_counts(13))
        sim.break_annotations(13)
        with pytest.raises(CvatResponseError, match="job 13"):
            await cvat.annotation_counts(13)
        sim.delete_job(14)
        with pytest.raises(CvatNotFoundError):
            await cvat.annotation_counts(14)
    assert sim.annotation_requests == {13: 2, 14: 1}


async def test_task_and_project_names_are_fetched_once() -> None:
    with CvatSimulator(20, names_in_jobs=False) as sim:
        async with client_for(sim.url) as cvat:
            listed = [job async for _, job in cvat.iter_jobs()]
            assert all(job.task_name is None for job in listed), "this CVAT sends no names in jobs"
            names = await asyncio.gather(*(cvat.task_name(2) for _ in range(4)))
            assert names == ["task-00002"] * 4
            assert await cvat.project_name(1) == "Project 1"
            assert await cvat.project_name(1) == "Project 1"
            with pytest.raises(CvatNotFoundError):
                await cvat.project_name(99)
        assert sim.requests["task"] == 1, "concurrent and repeated lookups share one request"
        assert sim.requests["project"] == 1, "project 1's name came with its task; only 99 was asked"


# -- the simulator's webhooks --------------------------------------------------------------------------------


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[bytes, dict[str, str]]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((body, dict(self.headers.items())))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[bytes, dict[str, str]]]]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Receiver.received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_the_simulator_signs_like_cvat() -> None:
    body = (
        b'{"event": "update:job", "job": {"id": 42, "state": "completed"}, "before_update": {"state": "in progress"}, '
        b'"webhook_id": 7, "sender": {"id": 1, "username": "admin1"}}'
    )
    assert sign(body, "w3bh00k") == "sha256=e3aefeaee079d852a48a255a32e0d2614872593afa05582ab3a199ff891d2a30"
    assert sign(b"", "mykey") == "sha256=e1b24265bf2e0b20c81837993b4f1415f7b68c503114d100a40601eca6a2745f"


async def test_the_simulator_fires_signed_job_webhooks(
    sim: CvatSimulator, receiver: tuple[str, list[tuple[bytes, dict[str, str]]]]
) -> None:
    url, received = receiver
    sim.update_job(3, stage="validation", assignee="erin")
    await asyncio.to_thread(sim.fire_webhook, url, "update:job", 3, "s3cret")
    snapshot = sim.delete_job(4)
    await sim.afire_webhook(url, "delete:job", 4, "s3cret")
    await sim.afire_webhook(url, "ping", 0, "")

    (update, update_headers), (delete, _), (ping, ping_headers) = received
    payload = json.loads(update)
    assert update == json.dumps(payload).encode(), "json.dumps with its default separators, as CVAT sends"
    verify_sha256_hex("s3cret", update, update_headers["X-Signature-256"])
    assert update_headers["Content-Type"] == "application/json"
    assert payload["event"] == "update:job" and payload["webhook_id"] == 7
    assert (payload["job"]["stage"], payload["job"]["state"], payload["job"]["assignee"]["username"]) == (
        "validation",
        "new",
        "erin",
    )
    assert {"stage", "updated_date", "assignee"} <= set(payload["before_update"])
    assert json.loads(delete)["job"] == snapshot
    assert json.loads(ping)["webhook"]["id"] == 7 and "webhook_id" not in json.loads(ping)
    assert "X-Signature-256" not in ping_headers, "no secret, no signature"
