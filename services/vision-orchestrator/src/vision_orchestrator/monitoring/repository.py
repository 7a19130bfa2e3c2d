"""The statistics of a machine, computed in SQL over its results, status history and heartbeats."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# Buckets are the periods (`date_trunc` in UTC) overlapping the window, clipped to it. A slot is held from an
# inspection's move to assigned or processing on the machine until its next move (or now, while it still holds
# it); each holding is clipped to each bucket and summed.
_STATISTICS = text(
    """
WITH buckets AS (
    SELECT GREATEST(b, CAST(:start AS timestamptz)) AS bucket_start,
           LEAST(b + CAST(CAST(:step AS text) AS interval), CAST(:end AS timestamptz)) AS bucket_end
    FROM generate_series(
        date_trunc(:period, CAST(:start AS timestamptz), 'UTC'),
        CAST(:end AS timestamptz) - interval '1 microsecond',
        CAST(CAST(:step AS text) AS interval)
    ) AS b
),
moves AS (
    SELECT h.machine_id, h.to_status, h.changed_at,
           lead(h.changed_at) OVER (PARTITION BY h.inspection_id ORDER BY h.id) AS next_at
    FROM vision_orchestrator.inspection_status_history AS h
    WHERE h.inspection_id IN (
        SELECT inspection_id FROM vision_orchestrator.inspection_status_history
        WHERE machine_id = :machine_id AND changed_at < :end
    )
),
held AS (
    SELECT changed_at AS held_from, COALESCE(next_at, now()) AS held_to
    FROM moves
    WHERE machine_id = :machine_id AND to_status IN ('assigned', 'processing')
),
results AS (
    SELECT received_at, status, processing_time_seconds
    FROM vision_orchestrator.inspection_results
    WHERE machine_id = :machine_id AND received_at >= :start AND received_at < :end
),
beats AS (
    SELECT received_at,
           (system_info ->> 'cpu_usage')::float8 AS cpu,
           (system_info ->> 'gpu_usage')::float8 AS gpu
    FROM vision_orchestrator.heartbeats
    WHERE machine_id = :machine_id AND received_at >= :start AND received_at < :end
)
SELECT bk.bucket_start, bk.bucket_end,
       EXTRACT(EPOCH FROM bk.bucket_end - bk.bucket_start)::float8 AS seconds,
       (SELECT count(*) FROM results r
         WHERE r.received_at >= bk.bucket_start AND r.received_at < bk.bucket_end AND r.status = 'completed')
         AS completed,
       (SELECT count(*) FROM results r
         WHERE r.received_at >= bk.bucket_start AND r.received_at < bk.bucket_end AND r.status = 'failed')
         AS failed,
       (SELECT sum(r.processing_time_seconds) FROM results r
         WHERE r.received_at >= bk.bucket_start AND r.received_at < bk.bucket_end) AS processing_sum,
       (SELECT count(r.processing_time_seconds) FROM results r
         WHERE r.received_at >= bk.bucket_start AND r.received_at < bk.bucket_end) AS processing_count,
       (SELECT COALESCE(sum(EXTRACT(EPOCH FROM
                LEAST(h.held_to, bk.bucket_end) - GREATEST(h.held_from, bk.bucket_start))), 0)::float8
          FROM held h WHERE h.held_from < bk.bucket_end AND h.held_to > bk.bucket_start) AS busy_seconds,
       (SELECT count(*) FROM beats hb
         WHERE hb.received_at >= bk.bucket_start AND hb.received_at < bk.bucket_end) AS heartbeats,
       (SELECT sum(hb.cpu) FROM beats hb
         WHERE hb.received_at >= bk.bucket_start AND hb.received_at < bk.bucket_end) AS cpu_sum,
       (SELECT count(hb.cpu) FROM beats hb
         WHERE hb.received_at >= bk.bucket_start AND hb.received_at < bk.bucket_end) AS cpu_count,
       (SELECT sum(hb.gpu) FROM beats hb
         WHERE hb.received_at >= bk.bucket_start AND hb.received_at < bk.bucket_end) AS gpu_sum,
       (SELECT count(hb.gpu) FROM beats hb
         WHERE hb.received_at >= bk.bucket_start AND hb.received_at < bk.bucket_end) AS gpu_count
FROM buckets bk
ORDER BY bk.bucket_start
"""
)

STEPS = {"hour": "1 hour", "day": "1 day", "week": "1 week", "month": "1 month"}


async def bucket_sums(
    session: AsyncSession, machine_id: str, period: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Per bucket of the window: its bounds and length, and the sums the figures are made of."""
    rows = await session.execute(
        _STATISTICS,
        {"machine_id": machine_id, "period": period, "step": STEPS[period], "start": start, "end": end},
    )
    return [dict(row._mapping) for row in rows]
