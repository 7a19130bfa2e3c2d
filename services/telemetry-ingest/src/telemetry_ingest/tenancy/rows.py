"""The unit every part of the write path passes around: one accepted reading of one sensor of one device."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class ReadingRow:
    """A reading that passed validation, ready to store in its tenant's schema (`ts` is timezone-aware UTC)."""

    device_id: str
    sensor: str
    ts: datetime
    value: float
    unit: str | None
