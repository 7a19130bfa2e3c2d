"""Time as the upload manager sees it, so tests can replace it: a monotonic clock, sleeping, and local wall time."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

    def now(self) -> datetime:
        """Local wall time, with its offset (the upload window is in the desktop's local time)."""
        ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))

    def now(self) -> datetime:
        return datetime.now().astimezone()
