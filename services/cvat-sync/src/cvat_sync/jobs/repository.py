"""Queries on the mirrored jobs and their history.

The write path runs for every webhook and every sync batch, so its statements are built once, on the tables
(SQLAlchemy Core, no ORM unit of work), with one array parameter where a list of ids is needed: the SQL text
never changes, and the driver reuses its prepared statements.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import ARRAY, BigInteger, Insert, Table, Update, any_, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cvat_sync.jobs.fields import STORED_FIELDS
from cvat_sync.jobs.models import Job, JobChange

JOBS = cast(Table, Job.__table__)
HISTORY = cast(Table, JobChange.__table__)


@dataclass(frozen=True, slots=True)
class StoredJob:
    """What the mirror compares an incoming job with: its tracked fields, counts and versions (no payload),
    in the order of `STORED_FIELDS`."""

    id: int
    task_id: int | None
    task_name: str | None
    project_id: int | None
    project_name: str | None
    assignee: str | None
    status: str
    stage: str
    state: str
    job_type: str | None
    frame_count: int | None
    manual_annotations: int
    interpolated_annotations: int
    total_annotations: int
    cvat_updated_at: datetime
    deleted_at: datetime | None
    counts_requested_at: datetime | None


STORED_COLUMNS = [JOBS.c[name] for name in STORED_FIELDS]
_IDS = bindparam("ids", type_=ARRAY(BigInteger))

LOCK_STORED = select(*STORED_COLUMNS).where(JOBS.c.id == any_(_IDS)).order_by(JOBS.c.id).with_for_update()
TOUCH_JOBS = update(JOBS).where(JOBS.c.id == any_(_IDS)).values(last_synced_at=bindparam("seen_at"))
# Parameter names of the write statements, unlike any column name: a parameter named like a column of a table
# an UPDATE writes (a companion's included) would be SET too.
JOB_PREFIX, HISTORY_PREFIX = "jobs_", "job_history_"


@dataclass(frozen=True, slots=True)
class JobWrite:
    """One job row to insert (`values` holds every column to set, `id` included) or to update by `id`, and
    the history row that records the change, if any."""

    values: dict[str, Any]
    history: dict[str, Any] | None = None


async def lock_stored(session: AsyncSession, ids: Sequence[int]) -> dict[int, StoredJob]:
    """The stored jobs among `ids`, locked until the transaction ends (concurrent writers queue up)."""
    if not ids:
        return {}
    rows = await session.execute(LOCK_STORED, {"ids": list(ids)})
    return {row[0]: StoredJob(*row) for row in rows}


async def lock_jobs_of(
    session: AsyncSession, *, task_id: int | None = None, project_id: int | None = None, live_only: bool = True
) -> list[StoredJob]:
    """The stored jobs of a task or of a project (not deleted ones when `live_only`), locked until the
    transaction ends."""
    if (task_id is None) == (project_id is None):
        raise ValueError("give exactly one of task_id and project_id")
    conditions = [JOBS.c.task_id == task_id if task_id is not None else JOBS.c.project_id == project_id]
    if live_only:
        conditions.append(JOBS.c.deleted_at.is_(None))
    rows = await session.execute(select(*STORED_COLUMNS).where(*conditions).order_by(JOBS.c.id).with_for_update())
    return [StoredJob(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class Companion:
    """A statement that travels with the mirror's write, as a data-modifying CTE of the same statement, to
    save a round trip (a webhook's log outcome, the job's events). `statement` must be built once (statements
    are cached per companion) and its parameter names must not start with `jobs_` or `job_history_`, nor
    clash with another companion's."""

    statement: Insert | Update
    parameters: dict[str, Any]


Companions = tuple[Companion, ...]


async def insert_jobs(session: AsyncSession, writes: Sequence[JobWrite], companions: Companions = ()) -> Companions:
    """Insert new jobs, each with its history row in the same statement. `companions` join the first
    statement when that writes a single job; those that could not join are returned (the caller runs them)."""
    return await _write(session, writes, new=True, companions=companions)


async def update_jobs(session: AsyncSession, writes: Sequence[JobWrite], companions: Companions = ()) -> Companions:
    """Update jobs by id, each with its history row (when it has one) in the same statement; `companions` as
    for `insert_jobs`."""
    return await _write(session, writes, new=False, companions=companions)


async def run_companions(session: AsyncSession, companions: Companions) -> None:
    """Run, one statement each, companions that found no write to join."""
    for companion in companions:
        await session.execute(companion.statement, companion.parameters)


async def touch(session: AsyncSession, ids: Iterable[int], at: datetime) -> None:
    """Record that these jobs were seen unchanged at `at`."""
    id_list = list(ids)
    if id_list:
        await session.execute(TOUCH_JOBS, {"ids": id_list, "seen_at": at})


async def _write(session: AsyncSession, writes: Sequence[JobWrite], *, new: bool, companions: Companions) -> Companions:
    groups: dict[tuple[tuple[str, ...], tuple[str, ...] | None], list[dict[str, Any]]] = {}
    for write in writes:
        history = None if write.history is None else tuple(write.history)
        parameters = {JOB_PREFIX + name: value for name, value in write.values.items()}
        if write.history is not None:
            parameters.update({HISTORY_PREFIX + name: value for name, value in write.history.items()})
        groups.setdefault((tuple(write.values), history), []).append(parameters)
    for (columns, history_columns), rows in groups.items():
        if len(rows) > 1:
            await session.execute(_write_statement(new, columns, history_columns, ()), rows)
            continue
        # A single row runs as one execution (cheaper than an executemany of one), and can carry the companions.
        parameters = rows[0]
        for companion in companions:
            parameters = {**parameters, **companion.parameters}
        joined = tuple(companion.statement for companion in companions)
        await session.execute(_write_statement(new, columns, history_columns, joined), parameters)
        companions = ()
    return companions


@cache
def _write_statement(
    new: bool,
    columns: tuple[str, ...],
    history_columns: tuple[str, ...] | None,
    companions: tuple[Insert | Update, ...],
) -> Insert | Update:
    """The statement that writes one job row and, in the same round trip, its history row (the job's INSERT
    or UPDATE runs as a data-modifying CTE of the history INSERT) and the companions. Built once per shape."""
    job_values = {
        name: bindparam(JOB_PREFIX + name, type_=JOBS.c[name].type) for name in columns if new or name != "id"
    }
    statement: Insert | Update
    if new:
        statement = insert(JOBS).values(job_values)
    else:
        job_id = bindparam(JOB_PREFIX + "id", type_=JOBS.c.id.type)
        statement = update(JOBS).where(JOBS.c.id == job_id).values(job_values)
    if history_columns is not None:
        history_values = {
            name: bindparam(HISTORY_PREFIX + name, type_=HISTORY.c[name].type) for name in history_columns
        }
        statement = insert(HISTORY).values(history_values).add_cte(statement.cte("job_write"))
    for number, companion in enumerate(companions):
        statement = statement.add_cte(companion.cte(f"companion_{number}"))
    return statement
