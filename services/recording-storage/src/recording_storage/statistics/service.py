"""Upload statistics: the aggregates of the repository laid out as one row per day."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth.policy import tenant_reach
from mirante.auth.principal import Principal
from recording_storage.statistics import repository
from recording_storage.statistics.schemas import DayFigures, InProgressFigures, Totals, UploadStatistics


async def upload_statistics(
    db: AsyncSession, caller: Principal, days: int, now: datetime | None = None
) -> UploadStatistics:
    """The last `days` UTC days (today included) of the caller's reach, and the uploads in progress now."""
    moment = now or datetime.now(UTC)
    first_day = moment.astimezone(UTC).date() - timedelta(days=days - 1)
    since = datetime.combine(first_day, time(), UTC)
    tenant = tenant_reach(caller)
    reach = repository.Reach(tenant=tenant, bound=tenant is not None)
    volume = await repository.volume_by_day(db, since, reach)
    failures = await repository.failures_by_day(db, since, moment, reach)
    progress = await repository.in_progress(db, moment, reach)
    counting_began = await repository.first_failure_day(db)
    rows = []
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        recordings, size = volume.get(day, (0, 0))
        by_reason = failures.get(day, {})
        rows.append(
            DayFigures(
                day=day,
                recordings=recordings,
                bytes=size,
                failed_sessions=sum(by_reason.values()),
                failures_by_reason=by_reason,
            )
        )
    return UploadStatistics(
        generated_at=moment,
        days=rows,
        totals=Totals(
            recordings=sum(row.recordings for row in rows),
            bytes=sum(row.bytes for row in rows),
            failed_sessions=sum(row.failed_sessions for row in rows),
            failures_by_reason=dict(sum((Counter(row.failures_by_reason) for row in rows), Counter())),
        ),
        in_progress=InProgressFigures(
            sessions=progress.sessions,
            declared_bytes=progress.declared_bytes,
            received_bytes=progress.received_bytes,
            oldest_created_at=progress.oldest_created_at,
        ),
        # The migration that made the tally counted from its day on; an empty tally knows nothing before now.
        failures_known_since=datetime.combine(counting_began, time(), UTC) if counting_began else moment,
    )
