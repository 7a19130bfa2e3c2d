"""When a rule applies: days of the week and a time window in a time zone.

`start` before `end` is a window within the day; `start` after `end` runs past midnight and belongs to the day it
starts on (Friday 22:00 to 06:00 covers Saturday 03:00); `start` equal to `end` is the whole day. Times are the
wall clock of `timezone`, so a window keeps its local hours across daylight-saving changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Final
from zoneinfo import ZoneInfo, available_timezones

WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@cache
def known_timezones() -> frozenset[str]:
    return frozenset(available_timezones())


def timezone_problem(name: str) -> str | None:
    """Why `name` is not an IANA time zone this server knows, or None."""
    if name == "UTC" or name in known_timezones():
        return None
    return f"{name!r} is not an IANA time zone name such as UTC, Europe/Lisbon or America/Sao_Paulo"


def minutes_of(clock: str) -> int:
    """Minutes since midnight of `HH:MM`."""
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


@dataclass(frozen=True, slots=True)
class Window:
    """A schedule ready to test instants against."""

    days: frozenset[int]
    start: int
    end: int
    zone: ZoneInfo

    @classmethod
    def of(cls, days: list[str], start: str, end: str, timezone: str) -> Window:
        return cls(
            frozenset(WEEKDAYS.index(day) for day in days), minutes_of(start), minutes_of(end), ZoneInfo(timezone)
        )

    def opened_at(self, at: datetime) -> datetime | None:
        """When the occurrence of the window that contains `at` began (in UTC), or None outside the schedule."""
        local = at.astimezone(self.zone)
        minute = local.hour * 60 + local.minute
        today = local.date()
        if self.start == self.end:
            return self._instant(today, 0) if local.weekday() in self.days else None
        if self.start < self.end:
            inside = local.weekday() in self.days and self.start <= minute < self.end
            return self._instant(today, self.start) if inside else None
        if minute >= self.start and local.weekday() in self.days:
            return self._instant(today, self.start)
        yesterday = today - timedelta(days=1)
        if minute < self.end and yesterday.weekday() in self.days:
            return self._instant(yesterday, self.start)
        return None

    def contains(self, at: datetime) -> bool:
        return self.opened_at(at) is not None

    def _instant(self, day: date, minute: int) -> datetime:
        local = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=self.zone)
        return local.astimezone(UTC)
