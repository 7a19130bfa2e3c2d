"""A bandwidth limit: a token bucket on the bytes the client sends, shared by every concurrent upload."""

from __future__ import annotations

import asyncio

from recording_client.clock import Clock, SystemClock


class TokenBucket:
    """Lets at most `rate` bytes per second through, with bursts of at most `capacity` bytes.

    The bucket starts empty, so a process that restarts gets no fresh burst: over any stretch of time, across
    restarts, the bytes sent stay within `rate` times the time elapsed (plus one burst after an idle spell).
    A request larger than the bucket is granted as a debt the caller sleeps off, so chunk size and capacity
    need not agree.
    """

    def __init__(self, rate: float, *, capacity: float | None = None, clock: Clock | None = None) -> None:
        if rate <= 0:
            raise ValueError("the bandwidth limit must be positive")
        self.rate = float(rate)
        self.capacity = float(capacity) if capacity is not None else self.rate
        self._clock = clock or SystemClock()
        self._tokens = 0.0
        self._updated = self._clock.monotonic()
        # One waiter at a time: the others queue behind it, so the limit holds for the sum of all uploads.
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    async def acquire(self, amount: int) -> None:
        """Wait until `amount` bytes may be sent."""
        if amount <= 0:
            return
        async with self._lock:
            self._refill()
            self._tokens -= amount
            if self._tokens < 0:
                await self._clock.sleep(-self._tokens / self.rate)
                self._refill()
