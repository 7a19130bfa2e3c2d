"""Retry delays: exponential backoff with full jitter, capped, never shorter than the server's `Retry-After`."""

from __future__ import annotations

import email.utils
import math
import random
from datetime import UTC, datetime

BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 60.0
# A server naming a far-off time must not stall a worker for good.
RETRY_AFTER_CAP_SECONDS = 600.0


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date), within `[0, RETRY_AFTER_CAP_SECONDS]`;
    None when absent or unreadable."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = (moment - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_SECONDS)


def retry_delay(
    retry: int,
    *,
    retry_after: float | None = None,
    base: float = BACKOFF_BASE_SECONDS,
    cap: float = BACKOFF_CAP_SECONDS,
    rng: random.Random | None = None,
) -> float:
    """The wait before retry number `retry` (from 0): uniform in `[0, min(cap, base * 2**retry)]` (full jitter,
    which spreads clients that failed together), but at least what the server asked for."""
    ceiling = min(cap, base * 2.0 ** min(max(retry, 0), 64))
    delay = (rng or random).uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
