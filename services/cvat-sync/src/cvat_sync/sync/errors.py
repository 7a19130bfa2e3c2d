"""The errors of the sync feature."""

from __future__ import annotations

from typing import Any

from cvat_sync.sync.models import SyncRun
from mirante.web.errors import ApiError, ConflictError, NotFoundError


class ActiveRunExistsError(Exception):
    """Inserting a queued or running run violated the one-active-run index."""


class InvalidSyncFiltersError(ValueError):
    """A sync filter has a value CVAT could not match (not a positive id, an unknown status, ...)."""


class SyncAlreadyRunningError(ConflictError):
    """Another sync run is queued or running: only one runs at a time."""

    def __init__(self, run: SyncRun | None) -> None:
        if run is None:
            message = "another sync run is queued or running; wait for it to finish"
            details: dict[str, Any] | None = None
        else:
            who = f" by {run.started_by}" if run.started_by else ""
            message = f"sync run {run.id} ({run.trigger}{who}) is {run.status}; wait for it to finish"
            details = {"run_id": run.id, "status": run.status}
        super().__init__(message, code="sync_already_running", details=details)
        self.run = run


class SyncRunNotFoundError(NotFoundError):
    def __init__(self, run_id: int) -> None:
        super().__init__(f"no sync run {run_id}")


class CvatNotConfiguredError(ApiError):
    status_code, code = 503, "cvat_not_configured"
