"""Retry delays: exponential backoff with full jitter, and a server's `Retry-After` when it sends one.

Full jitter (a delay drawn uniformly from zero up to the exponential ceiling) spreads the retries of many
clients that failed together across the whole window, so they do not come back in lockstep; it also gives
the shortest total wait of the usual jitter schemes under contention.
"""

from __future__ import annotations

import email.utils
import math
import random
from collections.abc import Sequence
from datetime import UTC, datetime

DEFAULT_RETRY_AFTER_CAP_SECONDS = 300.0
# 2.0 ** 64 times any sane base is far above every cap; a larger exponent could overflow a float.
_MAX_EXPONENT = 64


def exponential_ceiling(attempt: int, base: float, cap: float) -> float:
    """`min(cap, base * 2**attempt)`, `attempt` counting from 0: the longest wait of that attempt."""
    return min(cap, base * 2.0 ** min(max(attempt, 0), _MAX_EXPONENT))


def full_jitter(attempt: int, base: float, cap: float) -> float:
    """A delay drawn uniformly from `[0, exponential_ceiling(attempt, base, cap)]`."""
    return random.uniform(0, exponential_ceiling(attempt, base, cap))


def retry_after_seconds(
    value: str | None, *, cap: float = DEFAULT_RETRY_AFTER_CAP_SECONDS, now: datetime | None = None
) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date), within `[0, cap]`.

    None when the header is absent or unreadable, so the caller falls back to its own backoff. The cap keeps
    a server that names a far-off time from stalling a worker for good.
    """
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
    return min(max(seconds, 0.0), cap)


def scheduled_delay(attempts: int, schedule: Sequence[float], retry_after: str | None = None) -> float | None:
    """Seconds before the next try after `attempts` failed ones, or None when `schedule` is spent.

    `schedule[n]` is the longest wait after the (n+1)th failure; the delay is drawn with full jitter below it. A
    `Retry-After` header value the other side sent wins, capped at the longest step.
    """
    if attempts > len(schedule):
        return None
    if attempts < 1:
        return 0.0
    told = retry_after_seconds(retry_after, cap=max(schedule))
    if told is not None:
        return told
    return random.uniform(0, schedule[attempts - 1])


class Backoff:
    """Delays for successive retries of one operation: full jitter under a ceiling that doubles from `base`
    up to `cap`; `reset()` after a success starts again from `base`."""

    def __init__(self, base: float, cap: float, *, retry_after_cap: float = DEFAULT_RETRY_AFTER_CAP_SECONDS) -> None:
        if not 0 <= base <= cap:
            raise ValueError("backoff delays must satisfy 0 <= base <= cap")
        if retry_after_cap < 0:
            raise ValueError("retry_after_cap must not be negative")
        self.base = base
        self.cap = cap
        self.retry_after_cap = retry_after_cap
        self.attempt = 0

    def next_delay(self, retry_after: str | None = None) -> float:
        """The delay before the next retry: the server's `Retry-After` header value when it gives a readable
        one (capped at `retry_after_cap`), else full jitter for this attempt. Either way it counts as an
        attempt."""
        delay = retry_after_seconds(retry_after, cap=self.retry_after_cap)
        if delay is None:
            delay = full_jitter(self.attempt, self.base, self.cap)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """Start again from `base` (after a success)."""
        self.attempt = 0
