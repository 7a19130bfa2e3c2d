"""The upload window: the hours of the desktop's local time in which uploads may run (e.g. outside business hours)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _parse_time(value: str) -> time:
    try:
        hours, minutes = value.split(":")
        return time(int(hours), int(minutes))
    except ValueError as exc:
        raise ValueError(f"upload window times are HH:MM, got {value!r}") from exc


@dataclass(frozen=True)
class UploadWindow:
    """Open from `start` to `end` every day (past midnight when `end` < `start`; always when they are equal),
    and all day on `all_day` weekdays (0 = Monday)."""

    start: time
    end: time
    all_day: frozenset[int] = field(default_factory=frozenset)

    @classmethod
    def from_config(cls, value: dict[str, Any]) -> UploadWindow:
        """From `{"start": "19:00", "end": "07:00", "all_day": ["sat", "sun"]}`."""
        days = []
        for day in value.get("all_day", []):
            name = str(day).strip().lower()[:3]
            if name not in WEEKDAYS:
                raise ValueError(f"unknown weekday {day!r} in the upload window")
            days.append(WEEKDAYS.index(name))
        return cls(_parse_time(str(value["start"])), _parse_time(str(value["end"])), frozenset(days))

    def is_open(self, moment: datetime) -> bool:
        if moment.weekday() in self.all_day:
            return True
        now = moment.time().replace(tzinfo=None)
        if self.start == self.end:
            return True
        if self.start < self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end

    def seconds_until_open(self, moment: datetime) -> float:
        """0 when open now, else the seconds until it next opens."""
        if self.is_open(moment):
            return 0.0
        # The window opens either at a day's `start` or at the midnight beginning an all-day weekday.
        candidates = []
        for days_ahead in range(8):
            day = (moment + timedelta(days=days_ahead)).date()
            candidates.append(datetime.combine(day, self.start, tzinfo=moment.tzinfo))
            candidates.append(datetime.combine(day, time(0, 0), tzinfo=moment.tzinfo))
        for candidate in sorted(candidates):
            if candidate > moment and self.is_open(candidate):
                return (candidate - moment).total_seconds()
        return 0.0  # pragma: no cover - a window with start != end opens every day
