"""The jobs REST API: list with search, filters and sorting, detail with history, history pages, stats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, get_args
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from cvat_sync.config import Settings
from cvat_sync.cvat.payloads import STAGES, STATES, STATUSES, AnnotationCounts, CvatJob
from cvat_sync.jobs.errors import InvalidJobQueryError
from cvat_sync.jobs.models import Job
from cvat_sync.jobs.queries import SORT_KEYS, JobFilters, prefix_tsquery
from cvat_sync.jobs.schemas import SortKey, Stage, State, Status
from cvat_sync.jobs.service import Incoming, JobMirror
from cvat_sync.main import create_app
from mirante.settings import InfraSettings
from mirante.testing.plugin import ClientFactory, HeadersFactory

LINK_BASE = "https://cvat.example.com"
DAY = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def raw_job(
    job_id: int,
    *,
    task: tuple[int, str],
    project: tuple[int, str] | None,
    assignee: str | None,
    stage: str,
    state: str,
    updated: datetime,
) -> dict[str, Any]:
    """A job as CVAT's `GET /api/jobs` lists it."""
    return {
        "url": f"http://cvat.test/api/jobs/{job_id}",
        "id": job_id,
        "task_id": task[0],
        "task_name": task[1],
        "project_id": project[0] if project else None,
        "project_name": project[1] if project else None,
        "assignee": {"url": "http://cvat.test/api/users/9", "id": 9, "username": assignee} if assignee else None,
        "guide_id": None,
        "dimension": "2d",
        "mode": "annotation",
        "status": "ignored: derived from stage and state",
        "stage": stage,
        "state": state,
        "frame_count": 50,
        "start_frame": 0,
        "stop_frame": 49,
        "created_date": "2025-02-20T10:00:00.000000Z",
        "updated_date": updated.isoformat().replace("+00:00", "Z"),
        "type": "annotation",
        "organization": 2,
    }


STREET = (7, "Street scenes")
INDOOR = (8, "Indoor")

# id: (task, project, assignee, stage, state, updated, (manual, interpolated))
FIXTURE: dict[int, tuple[Any, ...]] = {
    101: ((15, "street-batch-01"), STREET, "alice", "annotation", "in progress", DAY + timedelta(days=1), (3, 1)),
    102: ((15, "street-batch-01"), STREET, None, "acceptance", "completed", DAY + timedelta(days=2), (10, 5)),
    103: ((16, "highway-night"), STREET, "bob", "validation", "in progress", DAY + timedelta(days=3), (0, 0)),
    104: ((20, "parking O'Brien & Sons"), INDOOR, "alice", "annotation", "new", DAY + timedelta(days=3), (7, 0)),
    105: ((21, "loose-task"), None, "carol", "acceptance", "completed", DAY, (2, 2)),
    106: ((22, "gone-task"), INDOOR, "bob", "annotation", "new", DAY + timedelta(days=4), (1, 0)),
}


def incoming(job_id: int, counts: AnnotationCounts | None = None, **overrides: Any) -> Incoming:
    task, project, assignee, stage, state, updated, _ = FIXTURE[job_id]
    fields: dict[str, Any] = {"task": task, "project": project, "assignee": assignee, "stage": stage}
    fields |= {"state": state, "updated": updated}
    fields.update(overrides)
    raw = raw_job(job_id, **fields)
    return Incoming(CvatJob.parse(raw), raw, counts)


@pytest.fixture
async def jobs(db_session: AsyncSession) -> dict[int, tuple[Any, ...]]:
    """Six mirrored jobs (106 deleted in CVAT); 101 first arrived unassigned and new, so it has history."""
    await db_session.execute(delete(Job))  # an empty mirror for this test only: it is rolled back afterwards
    mirror = JobMirror(db_session, source="sync")
    await mirror.apply([incoming(101, assignee=None, state="new", updated=DAY)], force=True)
    await mirror.apply([incoming(job_id, AnnotationCounts(*FIXTURE[job_id][6])) for job_id in FIXTURE], force=False)
    mirror = JobMirror(db_session, source="webhook")
    assert await mirror.mark_deleted(list((await mirror.stored([106])).values())) == 1
    return FIXTURE


@pytest.fixture
async def client(make_client: ClientFactory, infra_settings: InfraSettings) -> httpx.AsyncClient:
    return await make_client(create_app(Settings(infra=infra_settings, cvat_public_url=LINK_BASE)))


@pytest.fixture
async def viewer(auth_headers: HeadersFactory) -> dict[str, str]:
    return await auth_headers("viewer")


async def ids(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[int]:
    response = await client.get("/api/v1/jobs", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(body["results"]), "fixtures fit one page"
    return [item["id"] for item in body["results"]]


def test_query_vocabularies_match_cvat() -> None:
    assert get_args(Status) == STATUSES
    assert get_args(Stage) == STAGES
    assert get_args(State) == STATES
    assert get_args(SortKey) == SORT_KEYS


def test_prefix_queries_keep_only_words() -> None:
    assert prefix_tsquery("Stre bat") == "stre:* & bat:*"
    assert prefix_tsquery("o'brien & sons:*") == "o:* & brien:* & sons:*"
    assert prefix_tsquery("&:!|'") is None
    assert prefix_tsquery('"street scenes"') is None, "phrases go to websearch_to_tsquery"
    assert prefix_tsquery("street -alice") is None
    assert prefix_tsquery("street-batch") == "street:* & batch:*"


def test_filters_refuse_what_cannot_match() -> None:
    with pytest.raises(InvalidJobQueryError, match="unknown status 'done'"):
        JobFilters(statuses=("done",))
    with pytest.raises(InvalidJobQueryError, match="updated_from must not be after updated_to"):
        JobFilters(updated_from=DAY, updated_to=DAY - timedelta(seconds=1))
    with pytest.raises(InvalidJobQueryError, match="time zone"):
        JobFilters(updated_from=datetime(2025, 1, 1))


@pytest.mark.parametrize(
    "path", ["/api/v1/jobs", "/api/v1/jobs/101", "/api/v1/jobs/101/history", "/api/v1/stats", "/api/v1/jobs/export.csv"]
)
async def test_anonymous_callers_are_refused(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


async def test_list_is_newest_first_with_every_field(
    client: httpx.AsyncClient, viewer: dict[str, str], jobs: dict[int, Any]
) -> None:
    response = await client.get("/api/v1/jobs", headers=viewer)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == 5
    assert (body["next"], body["previous"]) == (None, None)
    # 103 and 104 share an update time: the tiebreak on id follows the direction of the sort.
    assert [item["id"] for item in body["results"]] == [104, 103, 102, 101, 105]
    first = body["results"][3]
    assert first == {
        "id": 101,
        "task_id": 15,
        "task_name": "street-batch-01",
        "project_id": 7,
        "project_name": "Street scenes",
        "assignee": "alice",
        "status": "annotation",
        "stage": "annotation",
        "state": "in progress",
        "job_type": "annotation",
        "frame_count": 50,
        "manual_annotations": 3,
        "interpolated_annotations": 1,
        "total_annotations": 4,
        "cvat_updated_at": "2025-03-02T12:00:00Z",
        "last_synced_at": first["last_synced_at"],
        "deleted": False,
        "deleted_at": None,
        "cvat_link": f"{LINK_BASE}/tasks/15/jobs/101",
    }
    assert datetime.fromisoformat(first["last_synced_at"]) > DAY
    assert "raw" not in first


SEARCHES = [
    ("street", [103, 102, 101]),
    ("stre", [103, 102, 101]),
    ("STREET", [103, 102, 101]),
    ("batch", [102, 101]),
    ("scenes", [103, 102, 101]),
    ("ali", [104, 101]),
    ("alice street", [101]),
    ("street-batch", [102, 101]),
    ("O'Brien", [104]),
    ("bri sons", [104]),
    ('"street scenes"', [103, 102, 101]),
    ("scenes -alice", [103, 102]),
    ("highway or indoor", [104, 103]),
    ("nothing-like-this", []),
    ("gone", []),
    ("   ", [104, 103, 102, 101, 105]),
]


async def test_full_text_search(client: httpx.AsyncClient, viewer: dict[str, str], jobs: dict[int, Any]) -> None:
    found = {q: await ids(client, viewer, q=q) for q, _ in SEARCHES}
    assert found == dict(SEARCHES)


async def test_search_syntax_characters_never_fail(
    client: httpx.AsyncClient, viewer: dict[str, str], jobs: dict[int, Any]
) -> None:
    for q in ("'", "&", ":", "a:b", "!!", "\\", "(", "a & | b", "'; drop table x; --", "*:*", "<->", "o'bri:*"):
        for path in ("/api/v1/jobs", "/api/v1/stats"):
            response = await client.get(path, params={"q": q}, headers=viewer)
            assert response.status_code == 200, (q, path, response.text)


async def test_search_counts_with_prefix_match_and_without_words(
    client: httpx.AsyncClient, viewer: dict[str, str], jobs: dict[int, Any]
) -> None:
    assert await ids(client, viewer, q="&") == []
    assert await ids(client, viewer, q="street", include_deleted="true") == [103, 102, 101]
    assert await ids(client, viewer, q="gone", include_deleted="true") == [106]


async def test_whole_words_match_even_when_the_prefix_query_reads_them_differently(
    client: httpx.AsyncClient, viewer: dict[str, str], jobs: dict[int, Any], db_session: AsyncSession
) -> None:
    # Alone, `43e4dc0417` parses as the number 43e4 and the word dc0417; inside `batch-43e4dc0417` it is one word.
    await JobMirror(db_session, source="sync").apply([incoming(105, task=(21, "batch-43e4dc0417"))], force=True)
    assert await ids(client, viewer, q="batch-43e4dc0417") == [105]
    assert await ids(client, viewer, q="batch-43e4") == [105]


FILTERED: list[tuple[dict[str, Any], list[int]]] = [
    ({"project_id": 7}, [103, 102, 101]),
    ({"task_id": 15}, [102, 101]),
    ({"assignee": "alice"}, [104, 101]),
    ({"assignee": "ali"}, []),
    ({"assigned": "false"}, [102]),
    ({"assigned": "true"}, [104, 103, 101, 105]),
    ({"status": "completed"}, [102, 105]),
    ({"status": ["annotation", "validation"]}, [104, 103, 101]),
    ({"stage": "acceptance"}, [102, 105]),
    ({"state": "in progress"}, [103, 101]),
    ({"state": "new"}, [104]),
    ({"project_id": 7, "status": "annotation"}, [101]),
    ({"updated_from": "2025-03-03T12:00:00Z"}, [104, 103, 102]),
    ({"updated_to": "2025-03-02T12:00:00Z"}, [101, 105]),
    ({"updated_from": "2025-03-02T00:00:00+00:00", "updated_to": "2025-03-03T23:59:59Z"}, [102, 101]),
    ({"updated_from": "2025-03-04T12:00:00Z", "updated_to": "2025-03-04T12:00:00Z"}, [104, 103]),
    ({"include_deleted": "true"}, [106, 104, 103, 102, 101, 105]),
    ({"include_deleted": "true", "project_id": 8}, [106, 104]),
]


async def test_filters(client: httpx.AsyncClient, viewer: dict[str, str], jobs: dict[int, Any]) -> None:
    wrong = [
        (params, found) for params, expected in FILTERED if (found := await ids(client, viewer, **params)) != expected
    ]
    assert wrong == []


async def test_deleted_jobs_are_marked(client: httpx.AsyncClient, viewer: dict[str, str], jobs: dict[int, Any]) -> None:
    body = (await client.get("/api/v1/jobs", params={"include_deleted": "true"}, headers=viewer)).json()
    flags = {item["id"]: (item["deleted"], item["deleted_at"] is not None) for item in body["results"]}
    assert flags[106] == (True, True)
    assert flags[101] == (False, False)


BAD_VALUES: list[tuple[dict[str, Any], str]] = [
    ({"status": "done"}, "status"),
    ({"status": ["completed", "finished"]}, "status"),
    ({"stage": "review"}, "stage"),
    ({"state": "open"}, "state"),
    ({"sort": "name"}, "sort"),
    ({"sort": "-raw"}, "sort"),
    ({"project_id": "seven"}, "project_id"),
    ({"project_id": 0}, "project_id"),
    ({"updated_from": "last tuesday"}, "updated_from"),
    ({"updated_to": "0.5"}, "updated_to"),
    ({"updated_to": ""}, "updated_to"),
    ({"updated_from": "2025-03-03T12:00:00"}, "updated_from"),
    ({"include_deleted": "perhaps"}, "include_deleted"),
    ({"page": 0}, "page"),
    ({"q": "x" * 201}, "q"),
]


async def test_bad_values_are_422_naming_the_field(client: httpx.AsyncClient, viewer: dict[str, str]) -> None:
    for params, field in BAD_VALUES:
        paths = ["/api/v1/jobs"]
        paths += [] if field == "page" else ["/api/v1/jobs/export.csv"]
        paths += [] if field in ("sort", "page") else ["/api/v1/stats"]
        for path in paths:
            response = await client.get(path, params=params, headers=viewer)
            assert response.status_code == 422, (path, params, response.text)
            error = response.json()["error"]
            assert error["code"] == "validation_error"
            assert field in error["message"], (path, params, error)


async def test_reversed_date_range_is_422(client: httpx.AsyncClient, viewer: dict[str, str]) -> None:
    params = {"updated_from": "2025-03-05T00:00:00Z", "updated_to": "2025-03-01T00:00:00Z"}
    for path in ("/api/v1/jobs", "/api/v1/stats", "/api/v1/jobs/export.csv"):
        response = await client.get(path, params=params, headers=viewer)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["message"] == "updated_from must not be after updated_to"


SORTED = [
    ("-updated", [104, 103, 102, 101, 105]),
    ("updated", [105, 101, 102, 103, 104]),
    ("id", [101, 102, 103, 104, 105]),
    ("-id", [105, 104, 103, 102, 101]),
    ("task_name", [103, 105, 104, 101, 102]),
    ("-task_name", [102, 101, 104, 105, 103]),
    ("project_name", [104, 101, 102, 103, 105]),
    ("-project_name", [103, 102, 101, 104, 105]),
    ("assignee", [101, 104, 103, 105, 102]),
    ("-assignee", [105, 103, 104, 101, 102]),
    ("status", [101, 104, 102, 105, 103]),
    ("-status", [103, 105, 102, 104, 101]),
    ("-total_annotations", [102, 104, 105, 101, 103]),
    ("total_annotations", [103, 101, 105, 104, 102]),
]


async def test_sort_orders_with_stable_tiebreak(
    client: httpx.AsyncClient, viewer: dict[str, str], jobs: dict[int, Any]
) -> None:
    assert {sort for sort, _ in SORTED} == set(SORT_KEYS)
    found = {sort: await ids(client, viewer, sort=sort) for sort, _ in SORTED}
    assert found == dict(SORTED)


async def test_pagination_links_walk_the_whole_list(
    client: httpx.AsyncClient, viewer: dict[str, str], jobs: dict[int, Any]
) -> None:
    seen: list[int] = []
    url: str | None = "/api/v1/jobs?page_size=2&status=annotation&status=completed&status=validation"
    pages = 0
    previous_links: list[str | None] = []
    while url is not None:
        response = await client.get(url, headers=viewer)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["count"] == 5
        seen.extend(item["id"] for item in body["results"])
        previous_links.append(body["previous"])
        url = body["next"]
        if url is not None:
            query = parse_qs(urlsplit(url).query)
            assert query["status"] == ["annotation", "completed", "validation"], "filters survive in the links"
            assert query["page_size"] == ["2"]
        pages += 1
    assert pages == 3
    assert seen == [104, 103, 102, 101, 105]
    assert previous_links[0] is None
    assert previous_links[2] is not None and parse_qs(urlsplit(previous_links[2]).query)["page"] == ["2"]

    beyond = (await client.get("/api/v1/jobs", params={"page": 9}, headers=viewer)).json()
    assert (beyond["count"], beyond["results"], beyond["next"]) == (5, [], None)


async def test_detail_has_raw_payload_history_and_link(
    client: httpx.AsyncClient, viewer: dict[str, str], jobs: dict[int, Any]
) -> None:
    response = await client.get("/api/v1/jobs/101", headers=viewer)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["cvat_link"] == f"{LINK_BASE}/tasks/15/jobs/101"
    assert body["raw"]["url"] == "http://cvat.test/api/jobs/101"
    assert body["raw"]["dimension"] == "2d"
    assert body["assignee_id"] == 9
    assert body["cvat_created_at"] == "2025-02-20T10:00:00Z"
    assert body["annotations_counted_at"] is not None
    assert body["history_count"] == 2
    assert [change["kind"] for change in body["history"]] == ["updated", "created"], "newest first"
    update = body["history"][0]
    assert update["changes"]["assignee"] == [None, "alice"]
    assert update["changes"]["state"] == ["new", "in progress"]
    assert (update["state"], update["assignee"], update["source"]) == ("in progress", "alice", "sync")

    deleted = (await client.get("/api/v1/jobs/106", headers=viewer)).json()
    assert deleted["deleted"] is True
    assert deleted["history"][0]["kind"] == "deleted"
    assert deleted["history"][0]["source"] == "webhook"

    loose = (await client.get("/api/v1/jobs/105", headers=viewer)).json()
    assert loose["project_id"] is None
    assert loose["cvat_link"] == f"{LINK_BASE}/tasks/21/jobs/105"


async def test_detail_history_is_capped_at_200_with_the_total(
    client: httpx.AsyncClient, viewer: dict[str, str], jobs: dict[int, Any], db_session: AsyncSession
) -> None:
    mirror = JobMirror(db_session, source="webhook")
    for step in range(1, 202):
        state = "new" if step % 2 else "in progress"
        await mirror.apply([incoming(103, state=state, updated=DAY + timedelta(days=4, minutes=step))])
    body = (await client.get("/api/v1/jobs/103", headers=viewer)).json()
    assert body["history_count"] == 202
    assert len(body["history"]) == 200
    assert body["history"][0]["cvat_updated_at"] == "2025-03-05T15:21:00Z", "the newest change leads"
    assert body["history"][-1]["kind"] == "updated", "the oldest (created) fell off"


async def test_history_pages(client: httpx.AsyncClient, viewer: dict[str, str], jobs: dict[int, Any]) -> None:
    first = await client.get("/api/v1/jobs/101/history", params={"page_size": 1}, headers=viewer)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["count"] == 2
    assert [change["kind"] for change in body["results"]] == ["updated"]
    assert body["next"] is not None
    second = (await client.get(body["next"], headers=viewer)).json()
    assert [change["kind"] for change in second["results"]] == ["created"]
    assert second["next"] is None
    assert second["results"][0]["changes"] == {}


@pytest.mark.parametrize("path", ["/api/v1/jobs/999999", "/api/v1/jobs/999999/history"])
async def test_unknown_job_is_404(client: httpx.AsyncClient, viewer: dict[str, str], path: str) -> None:
    response = await client.get(path, headers=viewer)
    assert response.status_code == 404
    assert response.json()["error"] == {"code": "not_found", "message": "job 999999 is not in the mirror"}


async def test_stats_match_the_fixture(client: httpx.AsyncClient, viewer: dict[str, str], jobs: dict[int, Any]) -> None:
    response = await client.get("/api/v1/stats", headers=viewer)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["totals"] == {
        "jobs": 5,
        "tasks": 4,
        "projects": 2,
        "manual_annotations": 22,
        "interpolated_annotations": 8,
        "annotations": 30,
    }
    assert body["by_status"] == [
        {"status": "annotation", "jobs": 2, "annotations": 11},
        {"status": "validation", "jobs": 1, "annotations": 0},
        {"status": "completed", "jobs": 2, "annotations": 19},
    ]
    assert body["by_project"] == [
        {"project_id": 7, "project_name": "Street scenes", "jobs": 3, "tasks": 2, "annotations": 19},
        {"project_id": 8, "project_name": "Indoor", "jobs": 1, "tasks": 1, "annotations": 7},
        {"project_id": None, "project_name": None, "jobs": 1, "tasks": 1, "annotations": 4},
    ]
    assert body["by_assignee"] == [
        {"assignee": "alice", "label": "alice", "jobs": 2, "annotations": 11},
        {"assignee": "bob", "label": "bob", "jobs": 1, "annotations": 0},
        {"assignee": "carol", "label": "carol", "jobs": 1, "annotations": 4},
        {"assignee": None, "label": "unassigned", "jobs": 1, "annotations": 15},
    ]


async def test_stats_follow_the_filters(
    client: httpx.AsyncClient, viewer: dict[str, str], jobs: dict[int, Any]
) -> None:
    async def stats(**params: Any) -> dict[str, Any]:
        response = await client.get("/api/v1/stats", params=params, headers=viewer)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    street = await stats(project_id=7)
    assert (street["totals"]["jobs"], street["totals"]["tasks"], street["totals"]["annotations"]) == (3, 2, 19)
    assert [item["project_id"] for item in street["by_project"]] == [7]
    assert [(item["status"], item["jobs"]) for item in street["by_status"]] == [
        ("annotation", 1),
        ("validation", 1),
        ("completed", 1),
    ]
    searched = await stats(q="ali")
    assert searched["totals"]["jobs"] == 2
    assert [item["assignee"] for item in searched["by_assignee"]] == ["alice"]
    everything = await stats(include_deleted="true")
    assert (everything["totals"]["jobs"], everything["totals"]["annotations"]) == (6, 31)
    top = await stats(top=2)
    assert [item["label"] for item in top["by_assignee"]] == ["alice", "bob"]
    assert len(top["by_project"]) == 2
    empty = await stats(q="nothing-like-this")
    assert empty["totals"] == {
        "jobs": 0,
        "tasks": 0,
        "projects": 0,
        "manual_annotations": 0,
        "interpolated_annotations": 0,
        "annotations": 0,
    }
    assert [item["jobs"] for item in empty["by_status"]] == [0, 0, 0]
    assert (empty["by_project"], empty["by_assignee"]) == ([], [])


async def test_every_role_reads(client: httpx.AsyncClient, auth_headers: HeadersFactory, jobs: dict[int, Any]) -> None:
    for role in ("viewer", "operator", "admin"):
        headers = await auth_headers(role)
        for path in ("/api/v1/jobs", "/api/v1/jobs/101", "/api/v1/jobs/101/history", "/api/v1/stats"):
            response = await client.get(path, headers=headers)
            assert response.status_code == 200, (role, path, response.text)


async def test_endpoints_are_documented(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in ("/api/v1/jobs", "/api/v1/jobs/{job_id}", "/api/v1/jobs/{job_id}/history", "/api/v1/stats"):
        assert paths[path]["get"]["description"], path
    assert "text/csv" in paths["/api/v1/jobs/export.csv"]["get"]["responses"]["200"]["content"]
