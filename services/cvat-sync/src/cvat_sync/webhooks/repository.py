"""Queries of the webhooks feature: the audit log (jobs are written by `cvat_sync.jobs` only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    String,
    Table,
    Update,
    any_,
    bindparam,
    insert,
    literal,
    select,
    text,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from cvat_sync.jobs.models import Job
from cvat_sync.jobs.repository import STORED_COLUMNS, Companion, StoredJob
from cvat_sync.webhooks.models import WebhookLog
from cvat_sync.webhooks.schemas import PROCESSED_STATUSES, LogStatus, WebhookLogFilters
from mirante.db import paginate_scalars

LOG_TABLE = cast(Table, WebhookLog.__table__)
LOG_COLUMNS = (
    "event_type",
    "status",
    "body",
    "body_sha256",
    "body_size",
    "body_truncated",
    "headers",
    "source_ip",
    "signature_valid",
    "job_id",
    "webhook_id",
    "error_message",
    "received_at",
    "processed_at",
)


def _insert_log_statement() -> Select[Any]:
    """The log row's INSERT, the id of an earlier processed request with the same body, and the stored copy of
    the job the request names, locked: three answers for one round trip."""
    log = LOG_TABLE
    earlier = log.alias("earlier")
    processed_before = (
        select(earlier.c.id)
        .where(
            earlier.c.body_sha256 == bindparam("same_body_sha256"),
            # One array literal rather than IN (...): an IN list is rendered again at every execution.
            earlier.c.status == any_(literal([status.value for status in PROCESSED_STATUSES], ARRAY(String))),
        )
        .order_by(earlier.c.id)
        .limit(1)
        .scalar_subquery()
    )
    logged = (
        insert(log)
        .values({name: bindparam(name, type_=log.c[name].type) for name in LOG_COLUMNS})
        .returning(log.c.id, processed_before.label("processed_before"))
        .cte("logged")
    )
    locked = (
        select(*STORED_COLUMNS)
        .where(Job.id == bindparam("lock_job_id", type_=BigInteger))
        .with_for_update()
        .cte("locked")
    )
    return select(logged.c.id, logged.c.processed_before, *locked.c).select_from(logged.outerjoin(locked, true()))


def _finish_log_statement() -> Update:
    log = LOG_TABLE
    return (
        update(log)
        .where(log.c.id == bindparam("log_id"))
        .values(
            status=bindparam("new_status"),
            error_message=bindparam("new_error_message"),
            processed_at=bindparam("new_processed_at"),
        )
    )


# Built once: a webhook costs a few statements, and building them per request cost more than running them.
INSERT_LOG = _insert_log_statement()
FINISH_LOG = _finish_log_statement()
SAVEPOINT = text("SAVEPOINT webhook_processing")
ROLLBACK_TO_SAVEPOINT = text("ROLLBACK TO SAVEPOINT webhook_processing")


async def insert_log(
    session: AsyncSession, values: dict[str, Any], *, lock_job_id: int | None = None
) -> tuple[int, int | None, StoredJob | None]:
    """Insert a log row (`values` holds every column of `LOG_COLUMNS`); returns its id, the id of an earlier,
    processed request with the same body, if any, and the stored job `lock_job_id`, if any, locked until the
    transaction ends. All in one statement: logging a job event and reading its job cost a single round trip.
    """
    row = (
        await session.execute(
            INSERT_LOG, {**values, "same_body_sha256": values["body_sha256"], "lock_job_id": lock_job_id}
        )
    ).one()
    stored = None if row[2] is None else StoredJob(*row[2:])
    return row[0], row[1], stored


async def finish_log(
    session: AsyncSession, log_id: int, *, status: LogStatus, error_message: str | None, processed_at: datetime
) -> None:
    """Record the outcome of a logged request."""
    await session.execute(FINISH_LOG, _finish_parameters(log_id, status, error_message, processed_at))


def finish_log_companion(
    log_id: int, *, status: LogStatus, error_message: str | None, processed_at: datetime
) -> Companion:
    """`finish_log` as a companion of the job write, so the outcome costs no round trip of its own."""
    return Companion(FINISH_LOG, _finish_parameters(log_id, status, error_message, processed_at))


def _finish_parameters(
    log_id: int, status: LogStatus, error_message: str | None, processed_at: datetime
) -> dict[str, Any]:
    return {
        "log_id": log_id,
        "new_status": status.value,
        "new_error_message": error_message,
        "new_processed_at": processed_at,
    }


async def open_savepoint(session: AsyncSession) -> None:
    """Start the savepoint that processing runs in (the commit of the transaction ends it)."""
    await session.execute(SAVEPOINT)


async def roll_back_to_savepoint(session: AsyncSession) -> None:
    """Undo what processing wrote since `open_savepoint`; the savepoint stays, for a retry."""
    await session.execute(ROLLBACK_TO_SAVEPOINT)


async def get_log(session: AsyncSession, log_id: int) -> WebhookLog | None:
    return await session.get(WebhookLog, log_id)


def _log_conditions(filters: WebhookLogFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.statuses:
        conditions.append(WebhookLog.status.in_([status.value for status in filters.statuses]))
    if filters.event_type is not None:
        conditions.append(WebhookLog.event_type == filters.event_type)
    if filters.job_id is not None:
        conditions.append(WebhookLog.job_id == filters.job_id)
    if filters.received_after is not None:
        conditions.append(WebhookLog.received_at >= filters.received_after)
    if filters.received_before is not None:
        conditions.append(WebhookLog.received_at < filters.received_before)
    return conditions


async def list_logs(
    session: AsyncSession, filters: WebhookLogFilters, *, offset: int, limit: int
) -> tuple[list[WebhookLog], int]:
    """One page of matching log rows, newest first, and the number of all matching rows."""
    conditions = _log_conditions(filters)
    logs = select(WebhookLog).where(*conditions).order_by(WebhookLog.received_at.desc(), WebhookLog.id.desc())
    return await paginate_scalars(session, logs, offset=offset, limit=limit)
