"""The CVAT simulator's command line: `change-job` and `webhook` drive a running simulator from another terminal.

The simulator runs in this process (a real HTTP server on a thread), the receiver of the webhooks is a small
real HTTP server that records what it gets, and the commands are the module's `main`, as the docs run them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mirante.testing.browser import LiveServer

REPO_ROOT = Path(__file__).resolve().parents[3]
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))

from scripts.simulators.cvat import DEFAULT_TOKEN, CvatSimulator, main  # noqa: E402

SECRET = "a-webhook-secret-for-the-test"


class Receiver:
    """Records each POST (body and headers) and answers 200 with a small JSON object."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, dict[str, str]]] = []

        async def receive(request: Request) -> JSONResponse:
            self.received.append((await request.body(), dict(request.headers)))
            return JSONResponse({"status": "success"})

        self.app = Starlette(routes=[Route("/hook", receive, methods=["POST"])])


@pytest.fixture(scope="module")
def sim() -> Iterator[CvatSimulator]:
    with CvatSimulator(12) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver()
    with LiveServer(receiver.app, name="webhook-receiver") as server:
        yield receiver, f"{server.url}/hook"


def test_change_job_changes_the_running_simulator(sim: CvatSimulator, capsys: pytest.CaptureFixture[str]) -> None:
    before = sim.job(3)["updated_date"]

    change = ["--stage", "validation", "--state", "in progress", "--assignee", "bob", "--annotations", "12,3,1"]
    code = main(["change-job", "3", *change, "--simulator", sim.url])

    assert code == 0
    job = sim.job(3)
    assert (job["stage"], job["state"], job["assignee"]["username"]) == ("validation", "in progress", "bob")
    assert job["updated_date"] > before
    assert sim.expected_counts(3) == (15, 1)
    assert capsys.readouterr().out == (
        f"job 3: stage validation, state in progress, assignee bob, annotations 12,3,1, updated {job['updated_date']}\n"
    )


def test_the_simulator_is_the_one_cvat_sync_is_configured_with(
    sim: CvatSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CVAT_SYNC_CVAT_URL", sim.url)
    monkeypatch.setenv("CVAT_SYNC_CVAT_TOKEN", DEFAULT_TOKEN)
    sim.update_job(4, assignee="carol")

    assert main(["change-job", "4", "--unassign"]) == 0
    assert sim.job(4)["assignee"] is None

    monkeypatch.setenv("CVAT_SYNC_CVAT_TOKEN", "not-the-simulators-token")
    assert main(["change-job", "4", "--assignee", "dave"]) == 1
    assert sim.job(4)["assignee"] is None


def test_webhook_sends_cvats_body_signed_with_the_secret(
    sim: CvatSimulator, receiver: tuple[Receiver, str], capsys: pytest.CaptureFixture[str]
) -> None:
    recorder, url = receiver
    recorder.received.clear()
    sim.update_job(5, stage="acceptance", state="completed")

    code = main(["webhook", "update:job", "5", "--to", url, "--secret", SECRET, "--simulator", sim.url])

    assert code == 0
    assert capsys.readouterr().out == '200 {"status":"success"}\n'
    ((body, headers),) = recorder.received
    assert body == sim.webhook_delivery("update:job", 5).body  # byte for byte what CVAT would send
    payload = json.loads(body)
    assert (payload["event"], payload["job"]["id"], payload["job"]["stage"]) == ("update:job", 5, "acceptance")
    assert "before_update" in payload
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["x-signature-256"] == f"sha256={expected}"
    assert headers["content-type"] == "application/json"


def test_webhook_ping_needs_no_id_and_an_empty_secret_sends_it_unsigned(
    sim: CvatSimulator, receiver: tuple[Receiver, str]
) -> None:
    recorder, url = receiver
    recorder.received.clear()

    assert main(["webhook", "ping", "--to", url, "--secret", "", "--simulator", sim.url]) == 0

    ((body, headers),) = recorder.received
    assert json.loads(body)["event"] == "ping"
    assert "x-signature-256" not in headers


def test_refusals_say_what_is_wrong(
    sim: CvatSimulator, receiver: tuple[Receiver, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _recorder, url = receiver
    assert main(["change-job", "999", "--stage", "validation", "--simulator", sim.url]) == 1
    assert "answered 404" in (err := capsys.readouterr().err) and "no job 999" in err

    assert main(["change-job", "5", "--assignee", "mallory", "--simulator", sim.url]) == 1
    assert "unknown user 'mallory'" in capsys.readouterr().err

    with pytest.raises(SystemExit, match="nothing to change"):
        main(["change-job", "4", "--simulator", sim.url])
    with pytest.raises(SystemExit, match="needs the id"):
        main(["webhook", "update:job", "--to", url, "--secret", SECRET, "--simulator", sim.url])
    with pytest.raises(SystemExit):
        main(["change-job", "4", "--annotations", "1,2", "--simulator", sim.url])
    assert "expected SHAPES,TAGS,TRACKS" in capsys.readouterr().err

    assert main(["change-job", "4", "--stage", "validation", "--simulator", "http://127.0.0.1:9"]) == 1
    assert "no simulator answers at http://127.0.0.1:9" in capsys.readouterr().err


def test_control_endpoints_need_the_simulators_credentials(sim: CvatSimulator) -> None:
    before = sim.job(2)

    answer = httpx.patch(f"{sim.url}/_simulator/jobs/2", json={"stage": "acceptance"})

    assert answer.status_code == 401
    assert sim.job(2) == before
