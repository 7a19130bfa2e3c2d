"""A small CVAT server: the REST endpoints cvat-sync reads, in CVAT's documented formats, with synthetic jobs.

It serves `/api/auth/login`, `/api/users/self`, `/api/jobs` (page-number pagination, `project_id`, `task_id`,
`assignee` (username), `stage`, `state`, `type` filters, `sort=id|-id`), `/api/jobs/{id}`,
`/api/jobs/{id}/annotations`, `/api/tasks/{id}` and `/api/projects/{id}`. Requests authenticate with a
personal access token (`Authorization: Bearer`), a legacy token from the login (`Token <key>`) or Basic.

Tests use `CvatSimulator` as a context manager (a real HTTP server on 127.0.0.1 in a background thread) and
its methods to change jobs, inject failures, count requests and fire signed webhooks the way CVAT does.
A user can run it on its own and drive it from a second terminal:

    .venv/bin/python scripts/simulators/cvat.py serve --jobs 500 --port 8080
    .venv/bin/python scripts/simulators/cvat.py change-job 3 --stage validation --annotations 12,3,1
    .venv/bin/python scripts/simulators/cvat.py webhook update:job 3 \\
        --to http://127.0.0.1:8001/api/v1/webhooks/cvat --secret "$CVAT_SYNC_WEBHOOK_SECRET"

The last two talk to the running simulator through `/_simulator/...` (same credentials as the API): the first
changes a job, the second fetches the body CVAT would send for the event, signs it here and posts it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import math
import os
import secrets
import sys
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mirante.testing.threaded_server import ThreadedServer

BASE_DATE = datetime(2025, 1, 6, 8, 0, tzinfo=UTC)
ADMIN = (1, "admin1")
USERS = ((3, "alice"), (4, "bob"), (5, "carol"), (6, "dave"), (7, "erin"))
STAGE_STATES = (
    ("annotation", "new"),
    ("annotation", "in progress"),
    ("validation", "in progress"),
    ("acceptance", "completed"),
    ("annotation", "completed"),
    ("validation", "rejected"),
    ("acceptance", "new"),
    ("validation", "completed"),
)
STAGES = ("annotation", "validation", "acceptance")
STATES = ("new", "in progress", "rejected", "completed")
DEFAULT_TOKEN = "sim-personal-access-token"
DEFAULT_LEGACY_KEY = "sim-legacy-token-key"
DEFAULT_USERNAME = "admin1"
DEFAULT_PASSWORD = "sim-password"
DEFAULT_PAGE_SIZE = 10
WEBHOOK_ID = 7
ENDPOINTS = ("login", "users_self", "jobs", "job", "annotations", "task", "project")
WEBHOOK_EVENTS = (
    "create:job",
    "update:job",
    "delete:job",
    "create:task",
    "update:task",
    "delete:task",
    "create:project",
    "update:project",
    "delete:project",
    "ping",
)
CONTROL_PREFIX = "/_simulator"
JOB_FILTERS = ("project_id", "task_id", "assignee", "stage", "state", "type")
INT_FILTERS = ("project_id", "task_id")

_JSON = "application/json"
_KEEP: Any = object()


class SimulatorError(RuntimeError):
    """The simulator was asked for something it cannot do (unknown job, server that would not start)."""


class UnknownJobError(SimulatorError):
    """No live job has that id."""


def cvat_date(moment: datetime) -> str:
    """A timestamp the way CVAT writes it: ISO-8601, microseconds, `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def derived_status(stage: str, state: str) -> str:
    """CVAT's legacy job status, derived from stage and state."""
    if stage == "annotation":
        return "annotation"
    if stage == "acceptance" and state == "completed":
        return "completed"
    return "validation"


def sign(body: bytes, secret: str) -> str:
    """CVAT's `X-Signature-256` value for `body`."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


@dataclass
class _Job:
    id: int
    task_id: int
    project_id: int | None
    assignee: int | None
    stage: str
    state: str
    type: str
    frame_count: int
    start_frame: int
    created: datetime
    updated: datetime
    assignee_updated: datetime | None
    shapes: int
    tags: int
    tracks: int
    overrides: dict[str, Any] = field(default_factory=dict)
    removed: tuple[str, ...] = ()
    broken_annotations: bool = False


@dataclass
class _Failure:
    remaining: int
    status: int | None
    endpoint: str | None
    page: int | None
    retry_after: str | None
    body: bytes | None
    content_type: str
    delay: float


@dataclass(frozen=True)
class WebhookDelivery:
    """A webhook as CVAT sends it: the exact body bytes, the headers and the payload they encode."""

    body: bytes
    headers: dict[str, str]
    payload: dict[str, Any]


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type=_JSON, headers=headers)


class CvatSimulator:
    """A CVAT stand-in with `jobs` deterministic jobs (ids 1..jobs), served on a real port.

    Jobs are grouped `jobs_per_task` to a task and `tasks_per_project` tasks to a project (every ninth task
    has no project); assignees, stages and states cycle. With `names_in_jobs=False` job objects carry no
    `task_name`/`project_name`, as some CVAT versions, so clients must ask `/api/tasks` and `/api/projects`.
    With `honour_sort=False` listings ignore `sort` and keep CVAT's default order (`-id`).
    """

    def __init__(
        self,
        jobs: int = 100,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str = DEFAULT_TOKEN,
        legacy_key: str = DEFAULT_LEGACY_KEY,
        username: str = DEFAULT_USERNAME,
        password: str = DEFAULT_PASSWORD,
        jobs_per_task: int = 5,
        tasks_per_project: int = 10,
        names_in_jobs: bool = True,
        honour_sort: bool = True,
    ) -> None:
        if jobs < 0 or jobs_per_task < 1 or tasks_per_project < 1:
            raise SimulatorError("jobs must be >= 0, jobs_per_task and tasks_per_project >= 1")
        self.tokens = {token}
        self.legacy_keys = {legacy_key}
        self.passwords = {username: password}
        self.names_in_jobs = names_in_jobs
        self.honour_sort = honour_sort
        self.jobs_per_task = jobs_per_task
        self.tasks_per_project = tasks_per_project
        self.requests: Counter[str] = Counter()
        self.annotation_requests: Counter[int] = Counter()
        self.job_list_queries: list[dict[str, str]] = []
        self.organizations_seen: list[str | None] = []
        self._lock = threading.Lock()
        self._jobs: dict[int, _Job] = {}
        self._deleted: dict[int, dict[str, Any]] = {}
        self._before_update: dict[int, dict[str, Any]] = {}
        self._tasks: dict[int, int | None] = {}
        self._encoded: dict[int, bytes] = {}
        self._index: dict[tuple[Any, ...], list[int]] = {}
        self._failures: list[_Failure] = []
        self._hidden: set[int] = set()
        for job_id in range(1, jobs + 1):
            self._jobs[job_id] = self._synthetic_job(job_id)
        self.app = self._build_app()
        self._http = ThreadedServer(self.app, host, port, name="CVAT simulator", backlog=2048)

    # -- lifecycle -------------------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._http.host

    @property
    def port(self) -> int:
        """The port asked for, or once started the one bound (a free one for 0)."""
        return self._http.port

    @property
    def url(self) -> str:
        """Base URL of the running server (no trailing slash)."""
        return self._http.url

    def start(self) -> CvatSimulator:
        """Bind the port and serve from a background thread; returns once the server accepts requests."""
        sock = self._http.bind()
        self._encode_all()  # the jobs' URLs name the bound port
        self._http.start(sock)
        return self

    def stop(self) -> None:
        """Stop the server and wait for its thread."""
        self._http.stop()

    def __enter__(self) -> CvatSimulator:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def serve_forever(self, announce: Callable[[str], None] | None = None) -> None:
        """Serve in the foreground until Ctrl-C; `announce(url)` is called once the port is bound."""
        sock = self._http.bind()
        self._encode_all()
        if announce is not None:
            announce(self.url)
        self._http.serve_forever(sock)

    def _encode_all(self) -> None:
        with self._lock:
            self._encoded = {job_id: self._encode(job) for job_id, job in self._jobs.items()}

    # -- synthetic data --------------------------------------------------------------------------------------

    def _project_of(self, task_id: int) -> int | None:
        if task_id % 9 == 0:
            return None
        return (task_id - 1) // self.tasks_per_project + 1

    def _synthetic_job(self, job_id: int) -> _Job:
        task_id = (job_id - 1) // self.jobs_per_task + 1
        project_id = self._project_of(task_id)
        self._tasks[task_id] = project_id
        stage, state = STAGE_STATES[job_id % len(STAGE_STATES)]
        assignee = None if job_id % 6 == 0 else USERS[job_id % len(USERS)][0]
        created = BASE_DATE + timedelta(minutes=job_id)
        frames = 50
        return _Job(
            id=job_id,
            task_id=task_id,
            project_id=project_id,
            assignee=assignee,
            stage=stage,
            state=state,
            type="ground_truth" if job_id % 25 == 0 else "annotation",
            frame_count=frames,
            start_frame=((job_id - 1) % self.jobs_per_task) * frames,
            created=created,
            updated=created + timedelta(hours=job_id % 97, seconds=job_id % 59),
            assignee_updated=created + timedelta(minutes=5) if assignee is not None else None,
            shapes=job_id % 7,
            tags=job_id % 3,
            tracks=job_id % 4,
        )

    def _user(self, user_id: int | None) -> dict[str, Any] | None:
        if user_id is None:
            return None
        username = dict((*USERS, ADMIN)).get(user_id, f"user{user_id}")
        return {
            "url": f"{self.url}/api/users/{user_id}",
            "id": user_id,
            "username": username,
            "first_name": username.capitalize(),
            "last_name": "",
        }

    def _job_object(self, job: _Job) -> dict[str, Any]:
        url = self.url
        obj: dict[str, Any] = {
            "url": f"{url}/api/jobs/{job.id}",
            "id": job.id,
            "task_id": job.task_id,
            "task_name": self._task_name(job.task_id),
            "project_id": job.project_id,
            "project_name": self._project_name(job.project_id),
            "assignee": self._user(job.assignee),
            "guide_id": None,
            "dimension": "2d",
            "mode": "annotation",
            "media_type": "image",
            "bug_tracker": None,
            "status": derived_status(job.stage, job.state),
            "stage": job.stage,
            "state": job.state,
            "frame_count": job.frame_count,
            "start_frame": job.start_frame,
            "stop_frame": job.start_frame + job.frame_count - 1,
            "data_chunk_size": 72,
            "data_compressed_chunk_type": "imageset",
            "data_original_chunk_type": "imageset",
            "created_date": cvat_date(job.created),
            "updated_date": cvat_date(job.updated),
            "issues": {"url": f"{url}/api/issues?job_id={job.id}", "count": 1 if job.id % 10 == 0 else 0},
            "labels": {"url": f"{url}/api/labels?job_id={job.id}"},
            "type": job.type,
            "organization": None,
            "target_storage": None,
            "source_storage": None,
            "assignee_updated_date": cvat_date(job.assignee_updated) if job.assignee_updated else None,
            "parent_job_id": None,
            "consensus_replicas": 0,
            "replicas_count": 0,
        }
        if not self.names_in_jobs:
            del obj["task_name"], obj["project_name"]
        obj.update(job.overrides)
        for name in job.removed:
            obj.pop(name, None)
        return obj

    def _encode(self, job: _Job) -> bytes:
        return orjson.dumps(self._job_object(job))

    @staticmethod
    def _task_name(task_id: int) -> str:
        return f"task-{task_id:05d}"

    @staticmethod
    def _project_name(project_id: int | None) -> str | None:
        return None if project_id is None else f"Project {project_id}"

    def _annotations(self, job: _Job) -> dict[str, Any]:
        if job.broken_annotations:
            return {"version": 0, "tags": [], "shapes": "not-a-list", "tracks": []}

        def shape(index: int, frame: int) -> dict[str, Any]:
            return {
                "type": "rectangle",
                "occluded": False,
                "outside": False,
                "z_order": 0,
                "rotation": 0.0,
                "points": [1.0, 2.0, 30.0, 40.0],
                "id": index,
                "frame": frame,
                "label_id": 1,
                "group": 0,
                "source": "manual",
                "attributes": [],
            }

        base = job.id * 100
        return {
            "version": 0,
            "tags": [
                {"id": base + i, "frame": job.start_frame, "label_id": 1, "source": "manual", "attributes": []}
                for i in range(job.tags)
            ],
            "shapes": [shape(base + 20 + i, job.start_frame + i) for i in range(job.shapes)],
            "tracks": [
                {
                    "id": base + 40 + i,
                    "frame": job.start_frame,
                    "label_id": 1,
                    "group": 0,
                    "source": "manual",
                    "attributes": [],
                    "shapes": [shape(0, job.start_frame), {**shape(0, job.start_frame + 5), "outside": True}],
                    "elements": [],
                }
                for i in range(job.tracks)
            ],
            "intervals": [],
        }

    # -- what tests read -------------------------------------------------------------------------------------

    def job(self, job_id: int) -> dict[str, Any]:
        """The job object as `GET /api/jobs/{id}` returns it now."""
        with self._lock:
            return self._job_object(self._get(job_id))

    def job_ids(self, **filters: Any) -> list[int]:
        """Ids of the live jobs matching CVAT's equality filters (`project_id`, `assignee`, ...), ascending."""
        unknown = set(filters) - set(JOB_FILTERS)
        if unknown:
            raise SimulatorError(f"unknown job filters: {', '.join(sorted(unknown))}")
        with self._lock:
            key = tuple(filters.get(name) for name in JOB_FILTERS)
            return list(self._matching(key, ascending=True))

    def status_of(self, job_id: int) -> str:
        with self._lock:
            job = self._get(job_id)
            return derived_status(job.stage, job.state)

    def expected_counts(self, job_id: int) -> tuple[int, int]:
        """`(manual, interpolated)` as `/annotations` of the job would count: shapes + tags, tracks."""
        with self._lock:
            job = self._get(job_id)
            return job.shapes + job.tags, job.tracks

    def reset_counters(self) -> None:
        with self._lock:
            self.requests.clear()
            self.annotation_requests.clear()
            self.job_list_queries.clear()
            self.organizations_seen.clear()

    # -- changing the world ----------------------------------------------------------------------------------

    def update_job(
        self,
        job_id: int,
        *,
        stage: str | None = None,
        state: str | None = None,
        assignee: Any = _KEEP,
        annotations: tuple[int, int, int] | None = None,
    ) -> dict[str, Any]:
        """Change a job as a CVAT user would (`assignee` a username or None; `annotations` as
        `(shapes, tags, tracks)`); `updated_date` moves forward. Returns the new job object."""
        with self._lock:
            job = self._get(job_id)
            before = self._job_object(job)
            now = max(datetime.now(UTC), job.updated + timedelta(milliseconds=1))
            changes: dict[str, Any] = {"updated": now}
            if stage is not None:
                changes["stage"] = stage
                # CVAT resets the state when only the stage changes.
                changes["state"] = state if state is not None else "new"
            elif state is not None:
                changes["state"] = state
            if assignee is not _KEEP:
                changes["assignee"] = None if assignee is None else self._user_id(assignee)
                changes["assignee_updated"] = now
            if annotations is not None:
                changes["shapes"], changes["tags"], changes["tracks"] = annotations
            updated = replace(job, **changes)
            self._store(updated)
            after = self._job_object(updated)
            self._before_update[job_id] = {
                key: value for key, value in before.items() if key != "labels" and after.get(key) != value
            }
            return after

    def add_job(
        self, *, task_id: int | None = None, stage: str = "annotation", state: str = "new", job_type: str = "annotation"
    ) -> int:
        """Create a job (in a new task unless `task_id` is given); returns its id."""
        with self._lock:
            job_id = max([*self._jobs, *self._deleted, 0]) + 1
            job = self._synthetic_job(job_id)
            if task_id is not None:
                job = replace(job, task_id=task_id, project_id=self._tasks.get(task_id, self._project_of(task_id)))
                self._tasks.setdefault(task_id, job.project_id)
            now = datetime.now(UTC)
            self._store(replace(job, stage=stage, state=state, type=job_type, created=now, updated=now))
            return job_id

    def delete_job(self, job_id: int) -> dict[str, Any]:
        """Remove a job; returns the snapshot a `delete:job` webhook carries."""
        with self._lock:
            job = self._get(job_id)
            snapshot = self._job_object(job)
            del self._jobs[job_id]
            self._encoded.pop(job_id, None)
            self._deleted[job_id] = snapshot
            self._index.clear()
            return snapshot

    def corrupt_job(self, job_id: int, *, remove: Iterable[str] = (), **values: Any) -> None:
        """Make the job's object invalid in listings (fields overridden or removed), e.g. `updated_date="soon"`."""
        with self._lock:
            job = self._get(job_id)
            self._store(replace(job, overrides={**job.overrides, **values}, removed=(*job.removed, *remove)))

    def hide_from_listing(self, job_id: int) -> None:
        """Leave the job out of `/api/jobs` while `/api/jobs/{id}` still has it: what page-number pagination
        does to a client when a job on an earlier page disappears during its listing."""
        with self._lock:
            self._get(job_id)
            self._hidden.add(job_id)
            self._index.clear()

    def break_annotations(self, job_id: int) -> None:
        """`/api/jobs/{id}/annotations` of this job answers a payload that is not CVAT's `LabeledData`."""
        with self._lock:
            self._store(replace(self._get(job_id), broken_annotations=True))

    def fail_next(
        self,
        count: int = 1,
        status: int | None = 503,
        *,
        endpoint: str | None = None,
        page: int | None = None,
        retry_after: float | str | None = None,
        body: bytes | None = None,
        content_type: str = _JSON,
        delay: float = 0.0,
    ) -> None:
        """The next `count` matching requests answer `status` (with `body`, `Retry-After`), after `delay` s.

        `endpoint` is one of `ENDPOINTS` and `page` a `/api/jobs` page number; `status=None` answers normally
        after the delay (a slow server). Rules are consumed in the order they were added.
        """
        if endpoint is not None and endpoint not in ENDPOINTS:
            raise SimulatorError(f"unknown endpoint {endpoint!r}; one of {', '.join(ENDPOINTS)}")
        with self._lock:
            self._failures.append(
                _Failure(
                    remaining=count,
                    status=status,
                    endpoint=endpoint,
                    page=page,
                    retry_after=None if retry_after is None else str(retry_after),
                    body=body,
                    content_type=content_type,
                    delay=delay,
                )
            )

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def expire_legacy_keys(self) -> None:
        """Invalidate every key issued by `/api/auth/login` (as a logout or a server restart would)."""
        with self._lock:
            self.legacy_keys.clear()

    def _get(self, job_id: int) -> _Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise UnknownJobError(f"no job {job_id}")
        return job

    def _store(self, job: _Job) -> None:
        self._jobs[job.id] = job
        if self._http.bound:
            self._encoded[job.id] = self._encode(job)
        self._index.clear()

    def _user_id(self, username: str) -> int:
        for user_id, name in (*USERS, ADMIN):
            if name == username:
                return user_id
        raise SimulatorError(f"unknown user {username!r}; known: {', '.join(name for _, name in USERS)}")

    def _matching(self, key: tuple[Any, ...], *, ascending: bool) -> list[int]:
        cached = self._index.get((key, ascending))
        if cached is not None:
            return cached
        project_id, task_id, assignee, stage, state, job_type = key
        assignee_id = None
        if assignee is not None:
            assignee_id = next((user_id for user_id, name in (*USERS, ADMIN) if name == assignee), -1)
        ids = [
            job.id
            for job in self._jobs.values()
            if job.id not in self._hidden
            and (project_id is None or job.project_id == project_id)
            and (task_id is None or job.task_id == task_id)
            and (assignee_id is None or job.assignee == assignee_id)
            and (stage is None or job.stage == stage)
            and (state is None or job.state == state)
            and (job_type is None or job.type == job_type)
        ]
        ids.sort(reverse=not ascending)
        self._index[(key, ascending)] = ids
        return ids

    # -- webhooks --------------------------------------------------------------------------------------------

    def webhook_payload(self, event: str, job_id: int) -> dict[str, Any]:
        """The payload CVAT sends for `event`; `job_id` is the task or project id for task/project events."""
        sender = self._user(ADMIN[0])
        with self._lock:
            if event == "ping":
                return {"event": "ping", "webhook": self._webhook_object(), "sender": sender}
            resource = event.partition(":")[2]
            if resource == "job":
                payload: dict[str, Any] = {"event": event, "job": self._job_snapshot(event, job_id)}
                if event == "update:job" and job_id in self._before_update:
                    payload["before_update"] = self._before_update[job_id]
            elif resource == "task":
                payload = {"event": event, "task": self._task_object(job_id)}
            elif resource == "project":
                payload = {"event": event, "project": self._project_object(job_id)}
            else:
                payload = {"event": event}
            payload.update(webhook_id=WEBHOOK_ID, sender=sender)
            return payload

    def webhook_delivery(self, event: str, job_id: int, secret: str = "") -> WebhookDelivery:
        """Body and headers exactly as CVAT builds them: `json.dumps` with default separators, signed when
        there is a secret."""
        payload = self.webhook_payload(event, job_id)
        body = json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": _JSON, "User-Agent": "python-requests/2.32.3", "Accept": "*/*"}
        if secret:
            headers["X-Signature-256"] = sign(body, secret)
        return WebhookDelivery(body=body, headers=headers, payload=payload)

    def fire_webhook(self, url: str, event: str, job_id: int, secret: str, *, timeout: float = 10.0) -> httpx.Response:
        """POST the signed webhook to `url` (blocking; use `afire_webhook` from async code)."""
        delivery = self.webhook_delivery(event, job_id, secret)
        return httpx.post(url, content=delivery.body, headers=delivery.headers, timeout=timeout)

    async def afire_webhook(
        self, url: str, event: str, job_id: int, secret: str, client: httpx.AsyncClient | None = None
    ) -> httpx.Response:
        """`fire_webhook` for async code; `client` may be an ASGI-transport client of the app under test."""
        delivery = self.webhook_delivery(event, job_id, secret)
        if client is not None:
            return await client.post(url, content=delivery.body, headers=delivery.headers)
        async with httpx.AsyncClient(timeout=10.0) as own:
            return await own.post(url, content=delivery.body, headers=delivery.headers)

    def _job_snapshot(self, event: str, job_id: int) -> dict[str, Any]:
        if event == "delete:job" and job_id in self._deleted:
            return self._deleted[job_id]
        return self._job_object(self._get(job_id))

    def _webhook_object(self) -> dict[str, Any]:
        return {
            "id": WEBHOOK_ID,
            "url": f"{self.url}/api/webhooks/{WEBHOOK_ID}",
            "target_url": "",
            "description": "cvat-sync",
            "type": "organization",
            "content_type": _JSON,
            "is_active": True,
            "enable_ssl": True,
            "created_date": cvat_date(BASE_DATE),
            "updated_date": cvat_date(BASE_DATE),
            "owner": self._user(ADMIN[0]),
            "project_id": None,
            "organization": 1,
            "events": ["create:job", "update:job", "delete:job"],
            "last_status": 200,
            "last_delivery_date": None,
        }

    # -- tasks and projects ----------------------------------------------------------------------------------

    def _task_object(self, task_id: int) -> dict[str, Any] | None:
        if task_id not in self._tasks:
            return None
        jobs = [job for job in self._jobs.values() if job.task_id == task_id]
        project_id = self._tasks[task_id]
        statuses = Counter(derived_status(job.stage, job.state) for job in jobs)
        return {
            "url": f"{self.url}/api/tasks/{task_id}",
            "id": task_id,
            "name": self._task_name(task_id),
            "project_id": project_id,
            "project_name": self._project_name(project_id),
            "owner": self._user(ADMIN[0]),
            "assignee": None,
            "bug_tracker": "",
            "created_date": cvat_date(BASE_DATE),
            "updated_date": cvat_date(max((job.updated for job in jobs), default=BASE_DATE)),
            "overlap": None,
            "segment_size": 50,
            "status": "completed" if jobs and statuses["completed"] == len(jobs) else "annotation",
            "size": 50 * len(jobs),
            "mode": "annotation",
            "dimension": "2d",
            "media_type": "image",
            "subset": "",
            "organization": None,
            "jobs": {
                "count": len(jobs),
                "completed": statuses["completed"],
                "validation": statuses["validation"],
                "url": f"{self.url}/api/jobs?task_id={task_id}",
            },
            "labels": {"url": f"{self.url}/api/labels?task_id={task_id}"},
        }

    def _project_object(self, project_id: int) -> dict[str, Any] | None:
        tasks = [task_id for task_id, owner in self._tasks.items() if owner == project_id]
        if not tasks:
            return None
        return {
            "url": f"{self.url}/api/projects/{project_id}",
            "id": project_id,
            "name": self._project_name(project_id),
            "owner": self._user(ADMIN[0]),
            "assignee": None,
            "guide_id": None,
            "bug_tracker": "",
            "task_subsets": [],
            "created_date": cvat_date(BASE_DATE),
            "updated_date": cvat_date(BASE_DATE),
            "status": "annotation",
            "dimension": "2d",
            "organization": None,
            "tasks": {"count": len(tasks), "url": f"{self.url}/api/tasks?project_id={project_id}"},
            "labels": {"url": f"{self.url}/api/labels?project_id={project_id}"},
        }

    # -- HTTP ------------------------------------------------------------------------------------------------

    def _build_app(self) -> Starlette:
        def endpoint(name: str, handler: Callable[[Request], Awaitable[Response]], *, public: bool = False) -> Any:
            async def wrapped(request: Request) -> Response:
                early = await self._before(request, name, public=public)
                return early if early is not None else await handler(request)

            return wrapped

        return Starlette(
            routes=[
                Route("/api/auth/login", endpoint("login", self._login, public=True), methods=["POST"]),
                Route("/api/users/self", endpoint("users_self", self._users_self)),
                Route("/api/jobs", endpoint("jobs", self._jobs_list)),
                Route("/api/jobs/{job_id:int}", endpoint("job", self._job_detail)),
                Route("/api/jobs/{job_id:int}/annotations", endpoint("annotations", self._job_annotations)),
                Route("/api/jobs/{job_id:int}/annotations/", endpoint("annotations", self._job_annotations)),
                Route("/api/tasks/{task_id:int}", endpoint("task", self._task_detail)),
                Route("/api/projects/{project_id:int}", endpoint("project", self._project_detail)),
                Route(
                    f"{CONTROL_PREFIX}/jobs/{{job_id:int}}", endpoint("control", self._control_job), methods=["PATCH"]
                ),
                Route(
                    f"{CONTROL_PREFIX}/webhook-body", endpoint("control", self._control_webhook_body), methods=["POST"]
                ),
            ]
        )

    async def _before(self, request: Request, name: str, *, public: bool) -> Response | None:
        with self._lock:
            self.requests[name] += 1
            self.organizations_seen.append(request.headers.get("x-organization"))
            failure = self._take_failure(name, request)
        if failure is not None:
            if failure.delay:
                await asyncio.sleep(failure.delay)
            if failure.status is not None:
                return self._failure_response(failure)
        if public or self._authenticated(request.headers.get("authorization", "")):
            return None
        given = request.headers.get("authorization")
        detail = "Invalid token." if given else "Authentication credentials were not provided."
        return _json({"detail": detail}, 401, {"WWW-Authenticate": 'Token realm="api"'})

    def _take_failure(self, name: str, request: Request) -> _Failure | None:
        for failure in self._failures:
            if failure.endpoint not in (None, name):
                continue
            if failure.page is not None and request.query_params.get("page", "1") != str(failure.page):
                continue
            failure.remaining -= 1
            if failure.remaining <= 0:
                self._failures.remove(failure)
            return failure
        return None

    @staticmethod
    def _failure_response(failure: _Failure) -> Response:
        assert failure.status is not None
        headers = {"Retry-After": failure.retry_after} if failure.retry_after is not None else None
        if failure.body is not None:
            return Response(failure.body, failure.status, headers=headers, media_type=failure.content_type)
        detail = {
            401: "Invalid token.",
            403: "You do not have permission to perform this action.",
            404: "Not found.",
            429: "Request was throttled.",
        }.get(failure.status, "Service temporarily unavailable.")
        return _json({"detail": detail}, failure.status, headers)

    def _authenticated(self, authorization: str) -> bool:
        scheme, _, value = authorization.strip().partition(" ")
        scheme, value = scheme.lower(), value.strip()
        with self._lock:
            if scheme == "bearer":
                return value in self.tokens
            if scheme == "token":
                return value in self.legacy_keys
            if scheme == "basic":
                try:
                    username, _, password = base64.b64decode(value).decode().partition(":")
                except (ValueError, UnicodeDecodeError):
                    return False
                return self.passwords.get(username) == password
        return False

    async def _login(self, request: Request) -> Response:
        try:
            data = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _json({"detail": "JSON parse error"}, 400)
        if not isinstance(data, dict) or not data.get("password"):
            return _json({"password": ["This field is required."]}, 400)
        username = data.get("username") or str(data.get("email", "")).partition("@")[0]
        with self._lock:
            if self.passwords.get(username) != data["password"]:
                return _json({"non_field_errors": ["Unable to log in with provided credentials."]}, 400)
            key = secrets.token_hex(20)
            self.legacy_keys.add(key)
        return _json({"key": key})

    async def _users_self(self, request: Request) -> Response:
        user = self._user(ADMIN[0])
        assert user is not None
        return _json({**user, "email": "admin1@example.com", "is_staff": True, "is_superuser": True})

    async def _jobs_list(self, request: Request) -> Response:
        params = request.query_params
        with self._lock:
            self.job_list_queries.append(dict(params))
        try:
            page = int(params.get("page", "1"))
        except ValueError:
            return _json({"detail": "Invalid page."}, 404)
        raw_size = params.get("page_size")
        filters: list[Any] = []
        for name in JOB_FILTERS:
            value = params.get(name)
            if value is not None and name in INT_FILTERS:
                try:
                    filters.append(int(value))
                except ValueError:
                    return _json({name: ["Enter a number."]}, 400)
            else:
                filters.append(value)
        ascending = self.honour_sort and params.get("sort", "-id") == "id"
        with self._lock:
            ids = self._matching(tuple(filters), ascending=ascending)
            count = len(ids)
            size = (count or 1) if raw_size == "all" else _page_size(raw_size)
            pages = max(1, math.ceil(count / size))
            if page < 1 or page > pages:
                return _json({"detail": "Invalid page."}, 404)
            first = (page - 1) * size
            items = b",".join(self._encoded[job_id] for job_id in ids[first : first + size])
        next_url = str(request.url.include_query_params(page=page + 1)) if page < pages else None
        previous_url = str(request.url.include_query_params(page=page - 1)) if page > 1 else None
        head = orjson.dumps({"count": count, "next": next_url, "previous": previous_url})
        return Response(head[:-1] + b',"results":[' + items + b"]}", media_type=_JSON)

    async def _job_detail(self, request: Request) -> Response:
        with self._lock:
            encoded = self._encoded.get(int(request.path_params["job_id"]))
        if encoded is None:
            return _json({"detail": "Not found."}, 404)
        return Response(encoded, media_type=_JSON)

    async def _job_annotations(self, request: Request) -> Response:
        if any(name in request.query_params for name in ("format", "filename", "action", "location")):
            return _json({"detail": "This endpoint no longer handles exports; use /dataset/export."}, 410)
        job_id = int(request.path_params["job_id"])
        with self._lock:
            self.annotation_requests[job_id] += 1
            job = self._jobs.get(job_id)
            data = None if job is None else self._annotations(job)
        if data is None:
            return _json({"detail": "Not found."}, 404)
        return _json(data)

    async def _task_detail(self, request: Request) -> Response:
        with self._lock:
            task = self._task_object(int(request.path_params["task_id"]))
        return _json({"detail": "Not found."}, 404) if task is None else _json(task)

    async def _project_detail(self, request: Request) -> Response:
        with self._lock:
            project = self._project_object(int(request.path_params["project_id"]))
        return _json({"detail": "Not found."}, 404) if project is None else _json(project)

    # -- control endpoints, for the command line -------------------------------------------------------------

    async def _control_json(self, request: Request) -> dict[str, Any] | Response:
        try:
            data = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _json({"detail": "JSON parse error"}, 400)
        return data if isinstance(data, dict) else _json({"detail": "expected a JSON object"}, 400)

    async def _control_job(self, request: Request) -> Response:
        """Change a job as `update_job` does: `stage`, `state`, `assignee` (a username or null), `annotations`."""
        data = await self._control_json(request)
        if isinstance(data, Response):
            return data
        unknown = set(data) - {"stage", "state", "assignee", "annotations"}
        if unknown:
            return _json({"detail": f"unknown fields: {', '.join(sorted(unknown))}"}, 400)
        if not isinstance(data.get("assignee"), str | None):
            return _json({"detail": "assignee must be a username or null"}, 400)
        if data.get("stage") not in (None, *STAGES) or data.get("state") not in (None, *STATES):
            return _json({"detail": f"stage is one of {', '.join(STAGES)}; state one of {', '.join(STATES)}"}, 400)
        annotations = data.get("annotations")
        if annotations is not None and not (
            isinstance(annotations, list)
            and len(annotations) == 3
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in annotations)
        ):
            return _json({"detail": "annotations must be [shapes, tags, tracks], three integers >= 0"}, 400)
        try:
            job = self.update_job(
                int(request.path_params["job_id"]),
                stage=data.get("stage"),
                state=data.get("state"),
                assignee=data.get("assignee", _KEEP),
                annotations=(annotations[0], annotations[1], annotations[2]) if annotations is not None else None,
            )
        except UnknownJobError as error:
            return _json({"detail": str(error)}, 404)
        except SimulatorError as error:
            return _json({"detail": str(error)}, 400)
        return _json(job)

    async def _control_webhook_body(self, request: Request) -> Response:
        """The exact body CVAT would send for `{"event", "id"}`, unsigned: the caller signs it with its secret."""
        data = await self._control_json(request)
        if isinstance(data, Response):
            return data
        event, object_id = data.get("event"), data.get("id", 0)
        if event not in WEBHOOK_EVENTS:
            return _json({"detail": f"event must be one of {', '.join(WEBHOOK_EVENTS)}"}, 400)
        if not isinstance(object_id, int) or isinstance(object_id, bool):
            return _json({"detail": "id must be an integer"}, 400)
        try:
            delivery = self.webhook_delivery(event, object_id)
        except SimulatorError as error:
            return _json({"detail": str(error)}, 404)
        return Response(delivery.body, media_type=_JSON)


def _page_size(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE_SIZE
    try:
        size = int(raw)
    except ValueError:
        return DEFAULT_PAGE_SIZE
    return size if size > 0 else DEFAULT_PAGE_SIZE


DEFAULT_SIMULATOR_URL = "http://127.0.0.1:8080"
SUBCOMMANDS = ("serve", "change-job", "webhook")


def _annotation_counts(raw: str) -> tuple[int, int, int]:
    try:
        shapes, tags, tracks = (int(part) for part in raw.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SHAPES,TAGS,TRACKS such as 12,3,1, got {raw!r}") from None
    if min(shapes, tags, tracks) < 0:
        raise argparse.ArgumentTypeError("annotation counts cannot be negative")
    return shapes, tags, tracks


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="A CVAT simulator with synthetic jobs (see the module docstring). Without a subcommand: serve."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the simulated CVAT until Ctrl-C")
    serve.add_argument("--jobs", type=int, default=500, help="number of jobs (default 500)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080, help="port (0 picks a free one)")
    serve.add_argument("--token", default=DEFAULT_TOKEN, help="personal access token accepted as Bearer")
    serve.add_argument("--username", default=DEFAULT_USERNAME)
    serve.add_argument("--password", default=DEFAULT_PASSWORD)
    serve.add_argument("--without-names", action="store_true", help="omit task_name/project_name from jobs")

    def client_options(command: argparse.ArgumentParser) -> None:
        # The variables cvat-sync reads name the simulator it talks to, so a terminal set up for it needs no options.
        command.add_argument(
            "--simulator",
            default=os.environ.get("CVAT_SYNC_CVAT_URL") or DEFAULT_SIMULATOR_URL,
            help=f"the running simulator (default: CVAT_SYNC_CVAT_URL, else {DEFAULT_SIMULATOR_URL})",
        )
        command.add_argument(
            "--token",
            default=os.environ.get("CVAT_SYNC_CVAT_TOKEN") or DEFAULT_TOKEN,
            help="its personal access token (default: CVAT_SYNC_CVAT_TOKEN, else the simulator's own)",
        )

    change = commands.add_parser("change-job", help="change a job of the running simulator, as a CVAT user would")
    change.add_argument("job_id", type=int, metavar="JOB_ID")
    change.add_argument("--stage", choices=STAGES, help="new stage (the state goes back to new unless --state)")
    change.add_argument("--state", choices=STATES)
    assignee = change.add_mutually_exclusive_group()
    assignee.add_argument("--assignee", help=f"username: {', '.join(name for _, name in (*USERS, ADMIN))}")
    assignee.add_argument("--unassign", action="store_true", help="remove the assignee")
    change.add_argument("--annotations", type=_annotation_counts, metavar="SHAPES,TAGS,TRACKS")
    client_options(change)

    webhook = commands.add_parser(
        "webhook", help="send the signed webhook CVAT would send for an event, and print the answer"
    )
    webhook.add_argument("event", choices=WEBHOOK_EVENTS, metavar="EVENT", help=", ".join(WEBHOOK_EVENTS))
    webhook.add_argument("object_id", type=int, nargs="?", default=0, metavar="ID", help="job, task or project id")
    webhook.add_argument(
        "--to", required=True, metavar="URL", help="the receiver, e.g. cvat-sync's /api/v1/webhooks/cvat"
    )
    webhook.add_argument(
        "--secret", required=True, help="the webhook secret (cvat-sync's CVAT_SYNC_WEBHOOK_SECRET); empty: unsigned"
    )
    client_options(webhook)
    return parser


def _serve(args: argparse.Namespace) -> int:
    if args.jobs < 0:
        raise SystemExit("--jobs must be >= 0")
    simulator = CvatSimulator(
        args.jobs,
        host=args.host,
        port=args.port,
        token=args.token,
        username=args.username,
        password=args.password,
        names_in_jobs=not args.without_names,
    )

    def announce(url: str) -> None:
        print(
            f"CVAT simulator with {args.jobs} jobs listening on {url}\n"
            f"  CVAT_SYNC_CVAT_URL={url} CVAT_SYNC_CVAT_TOKEN={args.token}\n"
            f"  (or CVAT_SYNC_CVAT_USERNAME={args.username} CVAT_SYNC_CVAT_PASSWORD={args.password})",
            flush=True,
        )

    with contextlib.suppress(KeyboardInterrupt):
        simulator.serve_forever(announce)
    return 0


def _control(args: argparse.Namespace, method: str, path: str, body: dict[str, Any]) -> httpx.Response | None:
    """A request to the running simulator; None (after saying why on stderr) when it cannot be reached."""
    url = args.simulator.rstrip("/") + CONTROL_PREFIX + path
    try:
        response = httpx.request(method, url, json=body, headers={"Authorization": f"Bearer {args.token}"}, timeout=10)
    except httpx.HTTPError as error:
        print(f"error: no simulator answers at {args.simulator} ({error}); start one with `serve`", file=sys.stderr)
        return None
    if response.status_code != 200:
        print(f"error: the simulator answered {response.status_code}: {response.text}", file=sys.stderr)
        return None
    return response


def _change_job(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {}
    if args.stage is not None:
        body["stage"] = args.stage
    if args.state is not None:
        body["state"] = args.state
    if args.assignee is not None or args.unassign:
        body["assignee"] = args.assignee
    if args.annotations is not None:
        body["annotations"] = list(args.annotations)
    if not body:
        raise SystemExit("nothing to change: give --stage, --state, --assignee, --unassign or --annotations")
    response = _control(args, "PATCH", f"/jobs/{args.job_id}", body)
    if response is None:
        return 1
    job = response.json()
    assignee = (job.get("assignee") or {}).get("username") or "nobody"
    annotations = f", annotations {','.join(map(str, args.annotations))}" if args.annotations else ""
    print(
        f"job {job['id']}: stage {job['stage']}, state {job['state']}, assignee {assignee}{annotations}, "
        f"updated {job['updated_date']}"
    )
    return 0


def _webhook(args: argparse.Namespace) -> int:
    if args.event != "ping" and args.object_id <= 0:
        raise SystemExit(f"{args.event} needs the id of its job, task or project")
    response = _control(args, "POST", "/webhook-body", {"event": args.event, "id": args.object_id})
    if response is None:
        return 1
    body = response.content
    headers = {"Content-Type": _JSON}
    if args.secret:
        headers["X-Signature-256"] = sign(body, args.secret)
    try:
        answer = httpx.post(args.to, content=body, headers=headers, timeout=10)
    except httpx.HTTPError as error:
        print(f"error: could not deliver to {args.to}: {error}", file=sys.stderr)
        return 1
    print(f"{answer.status_code} {answer.text}")
    return 0 if answer.is_success else 1


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    if not arguments or arguments[0] not in (*SUBCOMMANDS, "-h", "--help"):
        arguments = ["serve", *arguments]  # `cvat.py --jobs 500` as before the subcommands
    args = _parser().parse_args(arguments)
    handlers = {"serve": _serve, "change-job": _change_job, "webhook": _webhook}
    handler: Callable[[argparse.Namespace], int] = handlers[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
