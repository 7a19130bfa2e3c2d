"""CVAT webhooks: every request audited before processing, signed bodies applied to the mirror once."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import runpy
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from starlette.types import ASGIApp, Receive, Scope, Send

from cvat_sync.config import Settings
from cvat_sync.jobs.models import Job, JobChange
from cvat_sync.main import create_app
from cvat_sync.models import WebhookLog
from cvat_sync.webhooks.schemas import LogStatus
from cvat_sync.webhooks.service import CvatWebhookReceiver, WebhookRequest
from mirante.migrations import history_config
from mirante.settings import InfraSettings
from mirante.testing.plugin import ClientFactory
from mirante.webhooks import sign_sha256_hex
from mirante.webhooks.audit import REJECTED_BODY_KEPT_BYTES

SECRET = "w3bh00k"
WEBHOOK = "/api/v1/webhooks/cvat"
BASE = datetime(2025, 3, 2, 9, 15, 27, tzinfo=UTC)
SENDER = {"url": "http://cvat.test/api/users/1", "id": 1, "username": "admin1", "first_name": "A", "last_name": "F"}

# research/cvat.md §6.4: CVAT's own serialisation of this payload, signed with secret "w3bh00k".
VECTOR_BODY = (
    b'{"event": "update:job", "job": {"id": 42, "state": "completed"}, "before_update": {"state": "in progress"}, '
    b'"webhook_id": 7, "sender": {"id": 1, "username": "admin1"}}'
)
VECTOR_SIGNATURE = "sha256=e3aefeaee079d852a48a255a32e0d2614872593afa05582ab3a199ff891d2a30"


def new_id() -> int:
    return random.randint(10**9, 2**40)


def cvat_date(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def job_object(
    job_id: int, *, task_id: int = 15, project_id: int = 7, updated: datetime = BASE, **changes: Any
) -> dict[str, Any]:
    job: dict[str, Any] = {
        "url": f"http://cvat.test/api/jobs/{job_id}",
        "id": job_id,
        "task_id": task_id,
        "task_name": "street-batch-01",
        "project_id": project_id,
        "project_name": "Street scenes",
        "assignee": {"url": "http://cvat.test/api/users/3", "id": 3, "username": "alice"},
        "dimension": "2d",
        "status": "annotation",
        "stage": "annotation",
        "state": "in progress",
        "frame_count": 50,
        "created_date": "2025-03-01T10:00:00.000000Z",
        "updated_date": cvat_date(updated),
        "type": "annotation",
        "organization": 2,
    }
    job.update(changes)
    return job


def event(name: str, **fields: Any) -> dict[str, Any]:
    return {"event": name, "sender": SENDER, "webhook_id": 7, **fields}


def encode(payload: dict[str, Any]) -> bytes:
    # CVAT sends `json.dumps(payload)` with Python's default separators and signs exactly those bytes.
    return json.dumps(payload).encode()


async def post(
    client: httpx.AsyncClient,
    payload: dict[str, Any] | bytes,
    *,
    path: str = WEBHOOK,
    secret: str | None = SECRET,
    content_type: str = "application/json",
    signature: str | None = None,
) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else encode(payload)
    headers = {"Content-Type": content_type, "User-Agent": "python-requests/2.32.3"}
    if signature is not None:
        headers["X-Signature-256"] = signature
    elif secret is not None:
        headers["X-Signature-256"] = sign_sha256_hex(secret, body)
    return await client.post(path, content=body, headers=headers)


async def log_of(session: AsyncSession, response: httpx.Response) -> WebhookLog:
    body = response.json()
    log_id = body["log_id"] if "log_id" in body else body["error"]["details"]["log_id"]
    log = await session.get(WebhookLog, log_id, populate_existing=True)
    assert log is not None
    return log


async def stored_job(session: AsyncSession, job_id: int) -> Job | None:
    return (
        await session.scalars(select(Job).where(Job.id == job_id).execution_options(populate_existing=True))
    ).first()


async def history(session: AsyncSession, job_id: int) -> list[JobChange]:
    return list(await session.scalars(select(JobChange).where(JobChange.job_id == job_id).order_by(JobChange.id)))


async def outbox_types(session: AsyncSession, job_id: int) -> list[str]:
    rows = await session.execute(
        text("SELECT type FROM cvat_sync.outbox WHERE subject = :subject ORDER BY created_at"),
        {"subject": f"job/{job_id}"},
    )
    return list(rows.scalars())


@pytest.fixture
def settings(infra_settings: InfraSettings) -> Settings:
    # Every test client comes from the same address and the limiter's Redis outlives the run: the limit of
    # unauthenticated requests is tested on an address of its own, with a limit of its own.
    return Settings(
        infra=infra_settings,
        webhook_secret=SecretStr(SECRET),
        webhook_max_body_bytes=64 * 1024,
        webhook_rejected_rate_limit="100000/minute",
    )


@pytest.fixture
async def client(make_client: ClientFactory, settings: Settings) -> httpx.AsyncClient:
    return await make_client(create_app(settings))


def test_our_signing_matches_the_cvat_vectors() -> None:
    assert sign_sha256_hex(SECRET, VECTOR_BODY) == VECTOR_SIGNATURE
    assert sign_sha256_hex("mykey", b"") == "sha256=e1b24265bf2e0b20c81837993b4f1415f7b68c503114d100a40601eca6a2745f"


async def test_signature_vector_is_accepted(client: httpx.AsyncClient, db_session: AsyncSession) -> None:
    response = await post(client, VECTOR_BODY, signature=VECTOR_SIGNATURE)
    log = await log_of(db_session, response)
    assert log.signature_valid is True
    assert (log.event_type, log.job_id, log.webhook_id) == ("update:job", 42, 7)
    # The vector's job object is abridged, so the signature passes and the job is refused as incomplete.
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_payload"
    assert log.status == LogStatus.error and "updated_date" in (log.error_message or "")


async def test_create_job_is_mirrored_logged_and_announced(client: httpx.AsyncClient, db_session: AsyncSession) -> None:
    job_id = new_id()
    payload = event("create:job", job=job_object(job_id))
    response = await post(client, payload)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "success"

    job = await stored_job(db_session, job_id)
    assert job is not None
    assert (job.status, job.state, job.assignee, job.task_name) == (
        "annotation",
        "in progress",
        "alice",
        "street-batch-01",
    )
    assert job.raw == payload["job"]
    [created] = await history(db_session, job_id)
    assert (created.kind, created.source) == ("created", "webhook")
    assert await outbox_types(db_session, job_id) == ["cvat.job.created"]

    log = await log_of(db_session, response)
    assert (log.status, log.event_type, log.job_id, log.webhook_id) == ("success", "create:job", job_id, 7)
    assert log.signature_valid is True
    assert log.body == encode(payload).decode()
    assert len(log.body_sha256) == 64
    assert log.headers["content-type"] == "application/json"
    assert log.headers["user-agent"].startswith("python-requests/")
    assert log.headers["x-signature-256"].startswith("sha256=")
    assert log.headers["content-length"] == str(len(encode(payload)))
    assert log.source_ip
    assert log.processed_at is not None and log.processed_at >= log.received_at


async def test_update_job_keeps_history_of_status_stage_state_and_assignee(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    job_id = new_id()
    assert (await post(client, event("create:job", job=job_object(job_id)))).status_code == 200
    moved = job_object(
        job_id,
        updated=BASE + timedelta(days=2),
        stage="validation",
        state="new",
        status="validation",
        assignee={"url": "http://cvat.test/api/users/4", "id": 4, "username": "bob"},
    )
    before = {"stage": "annotation", "state": "in progress", "updated_date": cvat_date(BASE)}
    response = await post(client, event("update:job", job=moved, before_update=before))
    assert response.status_code == 200 and response.json()["status"] == "success"

    job = await stored_job(db_session, job_id)
    assert job is not None
    assert (job.status, job.stage, job.state, job.assignee) == ("validation", "validation", "new", "bob")
    changes = await history(db_session, job_id)
    assert [change.kind for change in changes] == ["created", "updated"]
    assert changes[1].changes == {
        "assignee": ["alice", "bob"],
        "status": ["annotation", "validation"],
        "stage": ["annotation", "validation"],
        "state": ["in progress", "new"],
    }
    assert await outbox_types(db_session, job_id) == ["cvat.job.created", "cvat.job.updated"]


async def test_stale_update_is_logged_and_not_applied(client: httpx.AsyncClient, db_session: AsyncSession) -> None:
    job_id = new_id()
    await post(client, event("create:job", job=job_object(job_id, updated=BASE)))
    older = job_object(job_id, updated=BASE - timedelta(hours=1), state="completed")
    response = await post(client, event("update:job", job=older))
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"

    log = await log_of(db_session, response)
    assert log.status == "ignored"
    assert (log.error_message or "").startswith("stale: ")
    job = await stored_job(db_session, job_id)
    assert job is not None and job.state == "in progress"
    assert len(await history(db_session, job_id)) == 1
    assert await outbox_types(db_session, job_id) == ["cvat.job.created"]


async def test_redelivered_body_is_a_duplicate_without_second_effect(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    job_id = new_id()
    payload = event("create:job", job=job_object(job_id))
    forged = await post(client, payload, signature="sha256=" + "0" * 64)
    assert forged.status_code == 401
    first = await post(client, payload)
    assert first.json()["status"] == "success", "a body refused before is processed when it comes signed"
    again = await post(client, payload)
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert str(first.json()["log_id"]) in again.json()["message"]
    third = await post(client, payload)
    assert third.json()["status"] == "duplicate"

    assert len(await history(db_session, job_id)) == 1
    assert await outbox_types(db_session, job_id) == ["cvat.job.created"]
    assert (await log_of(db_session, again)).status == "duplicate"


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        (None, "missing"),
        (sign_sha256_hex("not-the-secret", b"{}"), "does not match"),
        ("sha1=abc", "must start with"),
    ],
)
async def test_missing_or_wrong_signature_is_401_and_logged_rejected(
    client: httpx.AsyncClient, db_session: AsyncSession, signature: str | None, reason: str
) -> None:
    job_id = new_id()
    payload = event("create:job", job=job_object(job_id))
    if signature is None:
        response = await post(client, payload, secret=None)
    else:
        response = await post(client, payload, signature=signature)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"
    log = await log_of(db_session, response)
    assert (log.status, log.signature_valid) == ("rejected", False)
    assert reason in (log.error_message or "")
    assert (log.event_type, log.job_id) == ("create:job", job_id), "a refused request still says what it claimed"
    assert await stored_job(db_session, job_id) is None


async def test_a_wrong_signature_over_a_tampered_body_is_refused(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    job_id = new_id()
    genuine = encode(event("update:job", job=job_object(job_id)))
    tampered = genuine.replace(b'"in progress"', b'"completed"')
    response = await post(client, tampered, signature=sign_sha256_hex(SECRET, genuine))
    assert response.status_code == 401
    assert await stored_job(db_session, job_id) is None


async def test_non_json_content_type_is_415(client: httpx.AsyncClient, db_session: AsyncSession) -> None:
    payload = event("ping", webhook={"id": 9})
    response = await post(client, payload, content_type="text/plain")
    assert response.status_code == 415
    log = await log_of(db_session, response)
    assert log.status == "rejected"
    assert log.signature_valid is True, "the signature is checked and recorded even for a refused request"
    assert "text/plain" in (log.error_message or "")

    with_charset = await post(client, event("ping", webhook={"id": 10}), content_type="application/json; charset=utf-8")
    assert with_charset.status_code == 200


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"event": "update:job", "job": ', "not valid JSON"),
        (b'["update:job"]', "JSON object"),
        (b'{"job": {"id": 5}}', '"event"'),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
    ],
)
async def test_unreadable_bodies_are_400_and_logged(
    client: httpx.AsyncClient, db_session: AsyncSession, body: bytes, reason: str
) -> None:
    response = await post(client, body)
    assert response.status_code == 400
    assert reason in response.json()["error"]["message"]
    log = await log_of(db_session, response)
    assert (log.status, log.signature_valid) == ("rejected", True)
    assert reason in (log.error_message or "")
    assert "\x00" not in log.body


async def test_invalid_job_object_is_400_and_logged_as_error(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    job_id = new_id()
    bad = job_object(job_id, updated_date="yesterday")
    response = await post(client, event("update:job", job=bad))
    assert response.status_code == 422
    assert [error["field"] for error in response.json()["error"]["details"]["errors"]] == ["updated_date"]
    log = await log_of(db_session, response)
    assert log.status == "error"
    assert "updated_date" in (log.error_message or "")
    assert await stored_job(db_session, job_id) is None


async def test_unknown_event_is_200_and_ignored(client: httpx.AsyncClient, db_session: AsyncSession) -> None:
    response = await post(client, event("create:comment", comment={"id": 3, "message": "hi"}))
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    log = await log_of(db_session, response)
    assert (log.status, log.event_type) == ("ignored", "create:comment")
    assert "not handled" in (log.error_message or "")


async def test_ping_answers_200(client: httpx.AsyncClient, db_session: AsyncSession) -> None:
    # A ping carries no `webhook_id`; the webhook's id is in the `webhook` object.
    ping = {"event": "ping", "webhook": {"id": 31, "target_url": "http://sync.test/cvat/webhook/"}, "sender": SENDER}
    response = await post(client, ping)
    assert response.status_code == 200 and response.json()["status"] == "success"
    log = await log_of(db_session, response)
    assert (log.status, log.event_type, log.webhook_id) == ("success", "ping", 31)


async def test_delete_job_marks_it_deleted_and_unknown_jobs_are_ignored(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    unknown = await post(client, event("delete:job", job=job_object(new_id())))
    assert unknown.status_code == 200
    assert unknown.json()["status"] == "ignored"
    assert "not mirrored" in unknown.json()["message"]

    job_id = new_id()
    await post(client, event("create:job", job=job_object(job_id)))
    response = await post(client, event("delete:job", job=job_object(job_id)))
    assert response.json()["status"] == "success"
    job = await stored_job(db_session, job_id)
    assert job is not None and job.deleted_at is not None
    assert [change.kind for change in await history(db_session, job_id)] == ["created", "deleted"]
    assert await outbox_types(db_session, job_id) == ["cvat.job.created", "cvat.job.deleted"]

    again = await post(client, event("delete:job", job=job_object(job_id), sender=None))
    assert again.json()["status"] == "ignored"
    assert "already" in again.json()["message"]


async def test_task_and_project_events_refresh_names_and_deletes_cascade(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    task_id, other_task, project_id = new_id(), new_id(), new_id()
    jobs = [new_id(), new_id()]
    outsider = new_id()
    for job_id in jobs:
        await post(client, event("create:job", job=job_object(job_id, task_id=task_id, project_id=project_id)))
    await post(client, event("create:job", job=job_object(outsider, task_id=other_task, project_id=project_id)))

    task = {"id": task_id, "name": "street-batch-01 (redo)", "project_id": project_id, "project_name": "Street scenes"}
    renamed = await post(client, event("update:task", task=task, before_update={"name": "street-batch-01"}))
    assert renamed.status_code == 200 and renamed.json()["status"] == "success"
    assert "2 stored job(s)" in renamed.json()["message"]
    for job_id in jobs:
        job = await stored_job(db_session, job_id)
        assert job is not None and job.task_name == "street-batch-01 (redo)"
    untouched = await stored_job(db_session, outsider)
    assert untouched is not None and untouched.task_name == "street-batch-01"

    project = await post(client, event("update:project", project={"id": project_id, "name": "Streets 2025"}))
    assert "3 stored job(s)" in project.json()["message"]
    for job_id in [*jobs, outsider]:
        job = await stored_job(db_session, job_id)
        assert job is not None and job.project_name == "Streets 2025"

    deleted = await post(client, event("delete:task", task=task))
    assert deleted.json()["status"] == "success"
    for job_id in jobs:
        job = await stored_job(db_session, job_id)
        assert job is not None and job.deleted_at is not None
    still_there = await stored_job(db_session, outsider)
    assert still_there is not None and still_there.deleted_at is None

    empty = await post(client, event("delete:project", project={"id": new_id(), "name": "gone"}))
    assert empty.json()["status"] == "ignored"
    bad_task = await post(client, event("update:task", task={"id": task_id}))
    assert bad_task.status_code == 422
    assert bad_task.json()["error"]["details"]["errors"][0]["field"] == "name"


async def test_task_and_project_renames_write_history_and_events_per_job(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    task_id, other_task, project_id = new_id(), new_id(), new_id()
    jobs = [new_id(), new_id()]
    outsider = new_id()
    for job_id in jobs:
        await post(client, event("create:job", job=job_object(job_id, task_id=task_id, project_id=project_id)))
    await post(client, event("create:job", job=job_object(outsider, task_id=other_task, project_id=project_id)))

    task = {"id": task_id, "name": "street-batch-01 (redo)", "project_id": project_id, "project_name": "Street scenes"}
    await post(client, event("update:task", task=task, before_update={"name": "street-batch-01"}))
    for job_id in jobs:
        changes = await history(db_session, job_id)
        assert [change.kind for change in changes] == ["created", "updated"]
        assert changes[-1].source == "webhook"
        assert changes[-1].changes == {"task_name": ["street-batch-01", "street-batch-01 (redo)"]}
        assert await outbox_types(db_session, job_id) == ["cvat.job.created", "cvat.job.updated"]
    assert [change.kind for change in await history(db_session, outsider)] == ["created"]
    assert await outbox_types(db_session, outsider) == ["cvat.job.created"]

    await post(client, event("update:project", project={"id": project_id, "name": "Streets 2025"}))
    for job_id in [*jobs, outsider]:
        changes = await history(db_session, job_id)
        assert changes[-1].changes == {"project_name": ["Street scenes", "Streets 2025"]}
        assert (await outbox_types(db_session, job_id))[-1] == "cvat.job.updated"
    assert len(await history(db_session, outsider)) == 2
    assert await outbox_types(db_session, outsider) == ["cvat.job.created", "cvat.job.updated"]
    data = (
        await db_session.execute(
            text(
                "SELECT envelope->'data' FROM cvat_sync.outbox WHERE subject = :subject "
                "ORDER BY created_at DESC LIMIT 1"
            ),
            {"subject": f"job/{outsider}"},
        )
    ).scalar_one()
    assert data["project_name"] == "Streets 2025" and data["changes"] == {
        "project_name": ["Street scenes", "Streets 2025"]
    }

    again = {"id": project_id, "name": "Streets 2025"}
    unchanged = await post(client, event("update:project", project=again, before_update={"name": "Streets"}))
    assert "0 stored job(s)" in unchanged.json()["message"]
    assert len(await history(db_session, outsider)) == 2


async def refuse_job_in_the_database(session: AsyncSession, job_id: int) -> None:
    """A trigger (rolled back with the test) that fails the insert of one job: a database failure no check
    before the database could have foreseen."""
    await session.execute(
        text(
            "CREATE FUNCTION cvat_sync.test_refuse_job() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused by the test trigger'; END $$"
        )
    )
    await session.execute(
        text(
            "CREATE TRIGGER test_refuse_job BEFORE INSERT ON cvat_sync.jobs FOR EACH ROW "
            f"WHEN (NEW.id = {int(job_id)}) EXECUTE FUNCTION cvat_sync.test_refuse_job()"
        )
    )


async def test_a_processing_failure_keeps_the_log_row_and_answers_5xx(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    job_id = new_id()
    await refuse_job_in_the_database(db_session, job_id)
    response = await post(client, event("create:job", job=job_object(job_id)))
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "processing_failed"
    for internal in ("refused by the test trigger", "database", "Error", "$"):
        assert internal not in error["message"], "a 500 tells nothing of the driver or of Python"

    log = await log_of(db_session, response)
    assert log.status == "error"
    assert "processing failed" in (log.error_message or "")
    assert "refused by the test trigger" not in (log.error_message or "")
    assert log.processed_at is not None
    assert await stored_job(db_session, job_id) is None
    assert await history(db_session, job_id) == []
    assert await outbox_types(db_session, job_id) == []

    await db_session.execute(text("DROP TRIGGER test_refuse_job ON cvat_sync.jobs"))
    retried = await post(client, event("create:job", job=job_object(job_id)))
    assert retried.json()["status"] == "success", "an error is not a processed body: the next delivery applies"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"frame_count": 2**40}, "frame_count"),
        ({"task_id": 2**64}, "task_id"),
        ({"assignee": {"id": 2**63, "username": "alice"}}, "assignee.id"),
        ({"task_name": "x" * 600}, "task_name"),
        ({"updated_date": "0001-01-01T00:00:00Z"}, "updated_date"),
        ({"updated_date": "1969-12-31T23:59:59Z"}, "updated_date"),
        ({"updated_date": "2025-03-02T09:15:27"}, "updated_date"),
        ({"created_date": "0001-01-01T00:00:00Z"}, "created_date"),
        ({"bug_tracker": "a\x00b"}, "bug_tracker"),
    ],
)
async def test_values_the_columns_cannot_hold_are_422_naming_the_field(
    client: httpx.AsyncClient, db_session: AsyncSession, changes: dict[str, Any], field: str
) -> None:
    job_id = new_id()
    response = await post(client, event("create:job", job=job_object(job_id, **changes)))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_payload"
    assert error["details"]["errors"][0]["field"] == field
    assert field in error["message"]
    log = await log_of(db_session, response)
    assert log.status == "error" and field in (log.error_message or "")
    assert await stored_job(db_session, job_id) is None


async def test_a_job_with_a_bad_date_keeps_working_once_a_good_one_comes(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    job_id = new_id()
    bad = await post(client, event("create:job", job=job_object(job_id, updated_date="0001-01-01T00:00:00Z")))
    assert bad.status_code == 422
    for moment, state in ((BASE, "new"), (BASE + timedelta(hours=1), "completed")):
        response = await post(client, event("update:job", job=job_object(job_id, updated=moment, state=state)))
        assert response.status_code == 200 and response.json()["status"] == "success", response.text
    job = await stored_job(db_session, job_id)
    assert job is not None and job.state == "completed"


def clear_impossible_dates_statements() -> tuple[str, ...]:
    """The statements of the migration that repairs job dates stored before they were checked."""
    location = history_config("cvat_sync").get_main_option("script_location")
    assert location is not None
    [migration] = Path(location).glob("versions/0003_*.py")
    statements: tuple[str, ...] = runpy.run_path(str(migration))["CLEAR_IMPOSSIBLE_DATES"]
    return statements


async def test_infinite_dates_stored_before_the_checks_stop_breaking_the_job_after_the_migration(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    job_id = new_id()
    assert (await post(client, event("create:job", job=job_object(job_id)))).status_code == 200
    # What a year-1 date used to become in the table.
    await db_session.execute(
        text("UPDATE cvat_sync.jobs SET cvat_updated_at = '-infinity', cvat_created_at = '-infinity' WHERE id = :id"),
        {"id": job_id},
    )
    await db_session.execute(
        text("UPDATE cvat_sync.job_history SET cvat_updated_at = 'infinity' WHERE job_id = :id"), {"id": job_id}
    )
    for statement in clear_impossible_dates_statements():
        await db_session.execute(text(statement))

    job = await stored_job(db_session, job_id)
    assert job is not None and job.cvat_updated_at == datetime(1970, 1, 1, tzinfo=UTC) and job.cvat_created_at is None
    assert [change.cvat_updated_at for change in await history(db_session, job_id)] == [None]
    response = await post(client, event("update:job", job=job_object(job_id, state="completed")))
    assert response.status_code == 200 and response.json()["status"] == "success", response.text
    job = await stored_job(db_session, job_id)
    assert job is not None and job.state == "completed" and job.cvat_updated_at == BASE


@pytest.mark.parametrize("path", ["/cvat/webhook/", "/cvat/webhook"])
async def test_the_documented_alias_path_works(client: httpx.AsyncClient, db_session: AsyncSession, path: str) -> None:
    job_id = new_id()
    response = await post(client, event("create:job", job=job_object(job_id)), path=path)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "success"
    assert await stored_job(db_session, job_id) is not None
    forged = await post(client, event("create:job", job=job_object(new_id())), path=path, secret="wrong")
    assert forged.status_code == 401


async def test_without_a_secret_every_webhook_is_refused_with_503(
    make_client: ClientFactory, infra_settings: InfraSettings, db_session: AsyncSession
) -> None:
    client = await make_client(create_app(Settings(infra=infra_settings, webhook_secret=SecretStr(""))))
    job_id = new_id()
    response = await post(client, event("create:job", job=job_object(job_id)), secret="anything")
    assert response.status_code == 503
    assert "CVAT_SYNC_WEBHOOK_SECRET" in response.json()["error"]["message"]
    log = await log_of(db_session, response)
    assert (log.status, log.signature_valid) == ("rejected", False)
    assert await stored_job(db_session, job_id) is None


async def test_bodies_over_the_cap_get_413(client: httpx.AsyncClient) -> None:
    padded = event("create:job", job=job_object(new_id()), padding="x" * (64 * 1024))
    response = await post(client, padded)
    assert response.status_code == 413


@pytest.fixture
async def committed_cleanup(db_engine: AsyncEngine) -> AsyncIterator[list[tuple[int, list[int]]]]:
    """(job id, log ids) written by tests that must commit; deleted afterwards."""
    written: list[tuple[int, list[int]]] = []
    yield written
    async with db_engine.begin() as connection:
        for job_id, log_ids in written:
            await connection.execute(delete(Job).where(Job.id == job_id))
            await connection.execute(
                text("DELETE FROM cvat_sync.outbox WHERE subject = :subject"), {"subject": f"job/{job_id}"}
            )
            await connection.execute(delete(WebhookLog).where(WebhookLog.id.in_(log_ids)))


async def test_concurrent_first_deliveries_of_one_job_both_apply(
    db_engine: AsyncEngine, committed_cleanup: list[tuple[int, list[int]]]
) -> None:
    """Two deliveries for a job not stored yet race to insert it; the loser waits, retries, and updates."""
    job_id = new_id()
    cleanup: tuple[int, list[int]] = (job_id, [])
    committed_cleanup.append(cleanup)

    def request(payload: dict[str, Any]) -> WebhookRequest:
        body = encode(payload)
        headers = {"content-type": "application/json", "x-signature-256": sign_sha256_hex(SECRET, body)}
        return WebhookRequest(body=body, headers=headers, source_ip="127.0.0.1", received_at=datetime.now(UTC))

    created = request(event("create:job", job=job_object(job_id)))
    updated = request(event("update:job", job=job_object(job_id, updated=BASE + timedelta(hours=1), state="completed")))
    async with AsyncSession(db_engine) as first, AsyncSession(db_engine) as second:
        async with first.begin():
            first_result = await CvatWebhookReceiver(first, SECRET).receive(created)
            await second.begin()
            second_pid = await second.scalar(text("SELECT pg_backend_pid()"))
            racing = asyncio.create_task(CvatWebhookReceiver(second, SECRET).receive(updated))
            await _wait_until_blocked(first, second_pid)
        second_result = await racing
        await second.commit()
    cleanup[1].extend([first_result.log_id, second_result.log_id])

    assert first_result.status == second_result.status == LogStatus.success
    assert second_result.message == f"job {job_id} updated"
    async with AsyncSession(db_engine) as check:
        job = await check.get(Job, job_id)
        assert job is not None and job.state == "completed"
        assert [change.kind for change in await history(check, job_id)] == ["created", "updated"]


async def _wait_until_blocked(session: AsyncSession, pid: int | None) -> None:
    for _ in range(200):
        waiting = await session.scalar(
            text("SELECT count(*) FROM pg_locks WHERE pid = :pid AND NOT granted"), {"pid": pid}
        )
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the second delivery never waited for the first")


async def test_an_unauthenticated_body_keeps_only_its_start_an_authenticated_one_all_of_it(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    payload = event("create:job", job=job_object(new_id()), padding="x" * 20_000)
    body = encode(payload)
    forged = await post(client, body, signature="sha256=" + "0" * 64)
    assert forged.status_code == 401
    log = await log_of(db_session, forged)
    assert (log.status, log.body_size, log.body_truncated) == ("rejected", len(body), True)
    assert log.body_sha256 == hashlib.sha256(body).hexdigest(), "the hash covers the whole body as received"
    assert len(log.body.encode()) <= REJECTED_BODY_KEPT_BYTES and body.decode().startswith(log.body)
    assert log.headers["content-length"] == str(len(body))
    assert log.event_type == "create:job"

    signed = await post(client, body)
    assert signed.status_code == 200
    log = await log_of(db_session, signed)
    assert (log.body, log.body_size, log.body_truncated) == (body.decode(), len(body), False)


class FromAddress:
    """Gives every request the client address `host`, as a proxy the app trusts would."""

    def __init__(self, app: ASGIApp, host: str) -> None:
        self.app, self.host = app, host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {**scope, "client": (self.host, 40000)}
        await self.app(scope, receive, send)


async def test_unauthenticated_requests_are_limited_per_address_and_signed_ones_never(
    make_client: ClientFactory, infra_settings: InfraSettings, db_session: AsyncSession
) -> None:
    # An address of this run only (documentation range): the limiter's Redis outlives test runs.
    token = uuid.uuid4().hex
    address = f"2001:db8::{token[:4]}:{token[4:8]}:{token[8:12]}"
    app = create_app(
        Settings(infra=infra_settings, webhook_secret=SecretStr(SECRET), webhook_rejected_rate_limit="3/minute")
    )
    app.add_middleware(FromAddress, host=address)
    client = await make_client(app)

    async def logged_from_address() -> int:
        count = await db_session.scalar(select(func.count()).where(WebhookLog.source_ip == address))
        return int(count or 0)

    forged = event("create:job", job=job_object(new_id()))
    for _ in range(3):
        assert (await post(client, forged, secret="wrong")).status_code == 401
    refused = await post(client, forged, secret="wrong")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert await logged_from_address() == 3, "past the limit nothing more is stored"

    job_id = new_id()
    for moment in (BASE, BASE + timedelta(hours=1), BASE + timedelta(hours=2)):
        signed = await post(client, event("update:job", job=job_object(job_id, updated=moment)))
        assert signed.status_code == 200, "CVAT's own deliveries are never throttled"
    assert await logged_from_address() == 6


def test_the_rejected_rate_limit_setting_is_checked() -> None:
    with pytest.raises(ValueError, match="60/minute"):
        Settings(webhook_rejected_rate_limit="lots")
