"""An async client for the parts of CVAT's REST API cvat-sync reads.

Authentication, in order of preference: a personal access token (`Authorization: Bearer`), a legacy token
(`Authorization: Token <key>`), or a username and password exchanged at `/api/auth/login` for a legacy key
(logged in again once when CVAT answers 401). 429, 5xx and network errors are retried with exponential
backoff and jitter (429 waits `Retry-After` when CVAT sends it); 401 and 403 fail at once with a message
naming the setting to fix. Job listings are streamed page by page, never loaded whole.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Any

import httpx
import orjson

from cvat_sync.config import Settings
from cvat_sync.cvat.errors import (
    CvatAuthenticationError,
    CvatConfigurationError,
    CvatError,
    CvatNotFoundError,
    CvatPermissionError,
    CvatResponseError,
    CvatUnavailableError,
    InvalidJobPayloadError,
)
from cvat_sync.cvat.payloads import MAX_BIGINT, AnnotationCounts, CvatJob
from mirante.backoff import full_jitter, retry_after_seconds

logger = logging.getLogger(__name__)

LOGIN_PATH = "/api/auth/login"
JOBS_PATH = "/api/jobs"
USER_AGENT = "mirante-cvat-sync"
# The task_name and project_name columns of stored jobs.
MAX_NAME_CHARS = 500

ListedJob = tuple[dict[str, Any], CvatJob]
"""A job as listed: the raw object CVAT sent and its validated form."""


class AuthMode(StrEnum):
    ACCESS_TOKEN = "access token"
    LEGACY_TOKEN = "legacy token"
    PASSWORD = "password"


def auth_mode(settings: Settings) -> AuthMode:
    """Which credential the settings provide (PAT first); `CvatConfigurationError` when none does."""
    if settings.cvat_token is not None and settings.cvat_token.get_secret_value():
        return AuthMode.ACCESS_TOKEN
    if settings.cvat_legacy_token is not None and settings.cvat_legacy_token.get_secret_value():
        return AuthMode.LEGACY_TOKEN
    if settings.cvat_username and settings.cvat_password is not None and settings.cvat_password.get_secret_value():
        return AuthMode.PASSWORD
    raise CvatConfigurationError(
        "no CVAT credentials configured: set CVAT_SYNC_CVAT_TOKEN to a personal access token "
        "(CVAT: Profile > Security), or CVAT_SYNC_CVAT_USERNAME and CVAT_SYNC_CVAT_PASSWORD"
    )


@dataclass(frozen=True)
class InvalidListedJob:
    """A listed job object that failed validation; `job_id` when the object at least had an integer id."""

    raw: Any
    reason: str
    job_id: int | None


@dataclass(frozen=True)
class JobPage:
    """One page of `/api/jobs`: `count` is the server's total for the filters."""

    number: int
    count: int
    jobs: list[ListedJob]
    invalid: list[InvalidListedJob]

    @property
    def size(self) -> int:
        return len(self.jobs) + len(self.invalid)


@dataclass
class JobListing:
    """One pass over `/api/jobs` with server-side filters; iterate `pages()` or the jobs themselves.

    `count` is the total CVAT reported on the latest page (None before the first); `invalid` counts the
    job objects skipped because they failed validation (when iterating jobs rather than pages).
    """

    client: CvatClient
    filters: dict[str, str]
    count: int | None = None
    invalid: int = 0
    pages_read: int = 0
    _started: bool = field(default=False, repr=False)

    async def pages(self) -> AsyncIterator[JobPage]:
        """Pages in order, each fetched only when the previous one has been consumed."""
        if self._started:
            raise RuntimeError("a JobListing can be iterated once; call iter_jobs() again")
        self._started = True
        params: dict[str, str] = {
            "page": "1",
            "page_size": str(self.client.page_size),
            "sort": "id",
            **self.filters,
        }
        while True:
            data = await self.client.get_json(JOBS_PATH, params)
            page = _parse_page(data, self.pages_read + 1)
            self.pages_read += 1
            self.count = page.count
            yield page
            next_params = _next_params(data.get("next"), params) if page.size else None
            if next_params is None:
                return
            params = next_params

    async def __aiter__(self) -> AsyncIterator[ListedJob]:
        async for page in self.pages():
            self.invalid += len(page.invalid)
            for item in page.jobs:
                yield item


def _parse_page(data: Any, number: int) -> JobPage:
    well_formed = isinstance(data, dict) and isinstance(data.get("results"), list) and type(data.get("count")) is int
    if not well_formed:
        raise CvatResponseError(f"page {number} of {JOBS_PATH} is not a {{count, next, previous, results}} object")
    jobs: list[ListedJob] = []
    invalid: list[InvalidListedJob] = []
    for raw in data["results"]:
        try:
            jobs.append((raw, CvatJob.parse(raw)))
        except InvalidJobPayloadError as error:
            job_id = raw.get("id") if isinstance(raw, dict) else None
            usable_id = job_id if type(job_id) is int and 0 < job_id <= MAX_BIGINT else None
            invalid.append(InvalidListedJob(raw, error.summary, usable_id))
    return JobPage(number=number, count=data["count"], jobs=jobs, invalid=invalid)


def _next_params(next_url: Any, current: Mapping[str, str]) -> dict[str, str] | None:
    """The query of CVAT's `next` link, requested against our own base URL (a proxy in front of CVAT often
    makes CVAT write its internal host into the link)."""
    if next_url is None:
        return None
    if not isinstance(next_url, str):
        raise CvatResponseError(f"{JOBS_PATH}: `next` must be a URL or null, got {type(next_url).__name__}")
    params = dict(httpx.URL(next_url).params.multi_items())
    if "page" not in params:
        params = {**current, "page": str(int(current["page"]) + 1)}
    if not params["page"].isdigit() or int(params["page"]) <= int(current["page"]):
        raise CvatResponseError(f"{JOBS_PATH}: `next` does not move forward ({next_url})")
    return params


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default (verifying) TLS context, built once per process and shared by every client: building
    one reads the whole CA bundle (tens of milliseconds), and a client is built per sync run."""
    return httpx.create_ssl_context()


class CvatClient:
    """CVAT's REST API over one `httpx.AsyncClient`; use as `async with CvatClient(settings) as cvat:`.

    Task and project names are cached for the client's lifetime, so build one client per sync run.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        retry_base_seconds: float = 0.5,
        retry_max_seconds: float = 30.0,
    ) -> None:
        if not settings.cvat_url.startswith(("http://", "https://")):
            raise CvatConfigurationError(f"CVAT_SYNC_CVAT_URL must be an http(s) URL, got {settings.cvat_url!r}")
        if retry_base_seconds < 0 or retry_max_seconds < retry_base_seconds:
            raise ValueError("retry delays must satisfy 0 <= retry_base_seconds <= retry_max_seconds")
        self.settings = settings
        self.mode = auth_mode(settings)
        self.page_size = settings.cvat_page_size
        self.max_retries = settings.cvat_max_retries
        self.retry_base_seconds = retry_base_seconds
        self.retry_max_seconds = retry_max_seconds
        self.base_url = settings.cvat_url.rstrip("/")
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if settings.cvat_organization:
            headers["X-Organization"] = settings.cvat_organization
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            verify=_tls_context(),
            timeout=httpx.Timeout(settings.cvat_timeout_seconds),
            limits=httpx.Limits(
                max_connections=settings.cvat_concurrency + 2, max_keepalive_connections=settings.cvat_concurrency + 2
            ),
        )
        self._key: str | None = None
        self._login_lock = asyncio.Lock()
        self._task_names: dict[int, asyncio.Future[str | None]] = {}
        self._project_names: dict[int, asyncio.Future[str | None]] = {}

    async def __aenter__(self) -> CvatClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- the API ---------------------------------------------------------------------------------------------

    async def whoami(self) -> dict[str, Any]:
        """`/api/users/self`: a cheap check that the credential works."""
        data = await self.get_json("/api/users/self")
        if not isinstance(data, dict):
            raise CvatResponseError("/api/users/self did not answer a user object")
        return data

    def iter_jobs(
        self, *, project_id: int | None = None, task_id: int | None = None, assignee: str | None = None
    ) -> JobListing:
        """Jobs matching CVAT's own filters (`assignee` is a username), streamed page by page."""
        filters: dict[str, str] = {}
        for name, value in (("project_id", project_id), ("task_id", task_id)):
            if value is not None:
                if type(value) is not int or value < 1:
                    raise ValueError(f"{name} must be a positive integer, got {value!r}")
                filters[name] = str(value)
        if assignee is not None:
            if not isinstance(assignee, str) or not assignee.strip():
                raise ValueError("assignee must be a non-empty username")
            filters["assignee"] = assignee.strip()
        return JobListing(self, filters)

    async def annotation_counts(self, job_id: int) -> AnnotationCounts:
        """Manual (shapes + tags) and interpolated (tracks) annotations of one job."""
        data = await self.get_json(f"/api/jobs/{job_id}/annotations/")
        try:
            return AnnotationCounts.from_annotations(data)
        except InvalidJobPayloadError as error:
            raise CvatResponseError(f"job {job_id}: {error}") from None

    async def task_name(self, task_id: int) -> str | None:
        """The task's name (cached; also caches its project's name, which the task carries)."""
        return await _cached(self._task_names, task_id, self._fetch_task_name)

    async def project_name(self, project_id: int) -> str | None:
        """The project's name (cached)."""
        return await _cached(self._project_names, project_id, self._fetch_project_name)

    async def _fetch_task_name(self, task_id: int) -> str | None:
        data = await self.get_json(f"/api/tasks/{task_id}")
        name = _name_of(data, f"task {task_id}")
        project_id, project_name = data.get("project_id"), data.get("project_name")
        if type(project_id) is int and isinstance(project_name, str) and project_id not in self._project_names:
            known: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
            known.set_result(project_name)
            self._project_names[project_id] = known
        return name

    async def _fetch_project_name(self, project_id: int) -> str | None:
        return _name_of(await self.get_json(f"/api/projects/{project_id}"), f"project {project_id}")

    async def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """GET `path` (relative to the CVAT URL) and decode its JSON body."""
        response = await self._request("GET", path, params=params)
        return _decode(response, f"GET {path}")

    # -- transport -------------------------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        authenticate: bool = True,
    ) -> httpx.Response:
        attempt = 0
        logged_in_again = False
        while True:
            headers = await self._auth_headers() if authenticate else {}
            try:
                response = await self._http.request(method, path, params=params, json=json, headers=headers)
            except httpx.TransportError as error:
                if attempt >= self.max_retries:
                    raise CvatUnavailableError(
                        f"could not reach CVAT at {self.base_url} ({method} {path}) after {attempt + 1} attempts: "
                        f"{type(error).__name__}: {error}"
                    ) from error
                await self._wait(attempt, None, f"{type(error).__name__} on {method} {path}")
                attempt += 1
                continue
            status = response.status_code
            if status == 401 and authenticate:
                if self.mode is AuthMode.PASSWORD and not logged_in_again:
                    await self._login_again(headers.get("Authorization"))
                    logged_in_again = True
                    continue
                raise CvatAuthenticationError(self._rejected_message())
            if status == 403:
                raise CvatPermissionError(self._forbidden_message(method, path))
            if status == 429 or status >= 500:
                if attempt >= self.max_retries:
                    raise CvatUnavailableError(
                        f"CVAT answered {status} to {method} {path} {attempt + 1} times; giving up "
                        f"(retries: CVAT_SYNC_CVAT_MAX_RETRIES={self.max_retries})"
                    )
                await self._wait(attempt, response, f"{status} on {method} {path}")
                attempt += 1
                continue
            if status == 404:
                raise CvatNotFoundError(f"CVAT has no {path} (404)")
            if status >= 400:
                raise CvatResponseError(f"CVAT answered {status} to {method} {path}: {_excerpt(response)}")
            return response

    async def _wait(self, attempt: int, response: httpx.Response | None, why: str) -> None:
        delay = retry_after_seconds(response.headers.get("retry-after"), cap=300.0) if response is not None else None
        if delay is None:
            delay = full_jitter(attempt, self.retry_base_seconds, self.retry_max_seconds)
        logger.warning("CVAT: %s; retry %d/%d in %.2f s", why, attempt + 1, self.max_retries, delay)
        await asyncio.sleep(delay)

    async def _auth_headers(self) -> dict[str, str]:
        if self.mode is AuthMode.ACCESS_TOKEN:
            assert self.settings.cvat_token is not None
            return {"Authorization": f"Bearer {self.settings.cvat_token.get_secret_value()}"}
        if self.mode is AuthMode.LEGACY_TOKEN:
            assert self.settings.cvat_legacy_token is not None
            return {"Authorization": f"Token {self.settings.cvat_legacy_token.get_secret_value()}"}
        if self._key is None:
            async with self._login_lock:
                if self._key is None:
                    self._key = await self._login()
        return {"Authorization": f"Token {self._key}"}

    async def _login_again(self, rejected: str | None) -> None:
        async with self._login_lock:
            # Several requests can be refused at once; only the first one logs in again.
            if rejected is None or rejected == f"Token {self._key}":
                self._key = await self._login()

    async def _login(self) -> str:
        username = self.settings.cvat_username
        assert self.settings.cvat_password is not None
        body = {"username": username, "password": self.settings.cvat_password.get_secret_value()}
        try:
            response = await self._request("POST", LOGIN_PATH, json=body, authenticate=False)
        except CvatNotFoundError:
            raise CvatConfigurationError(
                f"{self.base_url}{LOGIN_PATH} does not exist: is CVAT_SYNC_CVAT_URL the CVAT server?"
            ) from None
        except (CvatResponseError, CvatPermissionError) as error:
            raise CvatAuthenticationError(
                f"CVAT refused the login of user {username!r} ({error}): check CVAT_SYNC_CVAT_USERNAME and "
                "CVAT_SYNC_CVAT_PASSWORD, or set CVAT_SYNC_CVAT_TOKEN to a personal access token"
            ) from None
        data = _decode(response, f"POST {LOGIN_PATH}")
        key = data.get("key") if isinstance(data, dict) else None
        if not isinstance(key, str) or not key:
            raise CvatResponseError(f"POST {LOGIN_PATH} answered no token key")
        logger.info("CVAT: logged in as %s", username)
        return key

    def _rejected_message(self) -> str:
        if self.mode is AuthMode.ACCESS_TOKEN:
            return (
                "CVAT rejected the personal access token in CVAT_SYNC_CVAT_TOKEN (401): it is wrong, expired or "
                "revoked; create a new one in CVAT (Profile > Security) and set CVAT_SYNC_CVAT_TOKEN"
            )
        if self.mode is AuthMode.LEGACY_TOKEN:
            return (
                "CVAT rejected the legacy token in CVAT_SYNC_CVAT_LEGACY_TOKEN (401); set a valid one, or better "
                "CVAT_SYNC_CVAT_TOKEN to a personal access token"
            )
        return (
            f"CVAT rejected the session of user {self.settings.cvat_username!r} even after logging in again (401); "
            "check CVAT_SYNC_CVAT_USERNAME and CVAT_SYNC_CVAT_PASSWORD, or set CVAT_SYNC_CVAT_TOKEN"
        )

    def _forbidden_message(self, method: str, path: str) -> str:
        who = {
            AuthMode.ACCESS_TOKEN: "the personal access token (CVAT_SYNC_CVAT_TOKEN)",
            AuthMode.LEGACY_TOKEN: "the legacy token (CVAT_SYNC_CVAT_LEGACY_TOKEN)",
            AuthMode.PASSWORD: f"user {self.settings.cvat_username!r} (CVAT_SYNC_CVAT_USERNAME)",
        }[self.mode]
        organization = self.settings.cvat_organization
        scope = f" in organization {organization!r} (CVAT_SYNC_CVAT_ORGANIZATION)" if organization else ""
        return f"CVAT refused {method} {path} (403): {who} lacks permission{scope}"


async def _cached(
    cache: dict[int, asyncio.Future[str | None]], key: int, fetch: Callable[[int], Awaitable[str | None]]
) -> str | None:
    """One fetch per key for the client's lifetime, shared by concurrent callers (a failure is kept too)."""
    future = cache.get(key)
    if future is None:
        future = asyncio.ensure_future(fetch(key))
        cache[key] = future
    return await asyncio.shield(future)


def _decode(response: httpx.Response, what: str) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        content_type = response.headers.get("content-type", "none")
        raise CvatResponseError(
            f"CVAT answered {what} with a body that is not JSON (content-type {content_type}): "
            f"{_excerpt(response)!r}; is CVAT_SYNC_CVAT_URL the CVAT server?"
        ) from None


def _excerpt(response: httpx.Response, limit: int = 200) -> str:
    return response.content[:limit].decode("utf-8", errors="replace")


def _name_of(data: Any, what: str) -> str | None:
    if not isinstance(data, dict):
        raise CvatResponseError(f"{what}: CVAT did not answer an object")
    name = data.get("name")
    if name is not None and not isinstance(name, str):
        raise CvatResponseError(f"{what}: `name` is not a string")
    if name is not None and (len(name) > MAX_NAME_CHARS or "\x00" in name):
        raise CvatResponseError(f"{what}: `name` is longer than {MAX_NAME_CHARS} characters or holds a NUL")
    return name


__all__ = [
    "AuthMode",
    "CvatClient",
    "CvatError",
    "InvalidListedJob",
    "JobListing",
    "JobPage",
    "ListedJob",
    "auth_mode",
]
