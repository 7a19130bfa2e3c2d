"""The errors of the jobs feature."""

from __future__ import annotations

from mirante.web.errors import NotFoundError


class InvalidJobQueryError(ValueError):
    """Filters or a sort key that cannot describe a set of jobs (unknown value, empty range...)."""


class JobNotFoundError(NotFoundError):
    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} is not in the mirror")
