"""What a sync covers."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from cvat_sync.cvat.payloads import STATUSES, CvatJob, Status
from cvat_sync.sync.errors import InvalidSyncFiltersError


@dataclass(frozen=True)
class SyncFilters:
    """What a sync covers: CVAT's own filters (sent as query parameters) and the derived status (local)."""

    project_id: int | None = None
    task_id: int | None = None
    assignee: str | None = None
    status: Status | None = None

    def __post_init__(self) -> None:
        for name in ("project_id", "task_id"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 1):
                raise InvalidSyncFiltersError(f"{name} must be a positive integer, got {value!r}")
        if self.assignee is not None and (not isinstance(self.assignee, str) or not self.assignee.strip()):
            raise InvalidSyncFiltersError("assignee must be a non-empty CVAT username")
        if self.status is not None and self.status not in STATUSES:
            raise InvalidSyncFiltersError(f"status must be one of {', '.join(STATUSES)}, got {self.status!r}")

    @property
    def is_full(self) -> bool:
        """No filter at all: only such a sync may conclude that unseen jobs were deleted."""
        return all(value is None for value in asdict(self).values())

    def as_json(self) -> dict[str, Any]:
        return {name: value for name, value in asdict(self).items() if value is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SyncFilters:
        known = {name: data.get(name) for name in ("project_id", "task_id", "assignee", "status")}
        return cls(**known)

    def accepts(self, job: CvatJob) -> bool:
        return self.status is None or job.status == self.status
