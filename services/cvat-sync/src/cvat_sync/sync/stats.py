"""The counts of one sync, as the run records them and the progress line shows them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

MAX_JOB_ERRORS = 100


@dataclass
class SyncStats:
    """Counts of one sync. `fetched` counts every job object CVAT listed; jobs left out by the status filter
    are fetched but neither created, updated, unchanged nor failed (see `skipped`). `job_errors` says why the
    first `MAX_JOB_ERRORS` failed jobs failed."""

    expected: int | None = None
    fetched: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    failed: int = 0
    job_errors: list[dict[str, Any]] = field(default_factory=list)

    def job_failed(self, job_id: int | None, message: str) -> None:
        """Count a job the sync goes on without, keeping the reason of the first few."""
        self.failed += 1
        if len(self.job_errors) < MAX_JOB_ERRORS:
            self.job_errors.append({"job_id": job_id, "message": message})

    @property
    def skipped(self) -> int:
        return max(0, self.fetched - self.created - self.updated - self.unchanged - self.failed)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def counts(self) -> dict[str, int | None]:
        """The counts alone, without the reasons."""
        return {name: value for name, value in asdict(self).items() if name != "job_errors"}


ProgressCallback = Callable[[SyncStats], None]
