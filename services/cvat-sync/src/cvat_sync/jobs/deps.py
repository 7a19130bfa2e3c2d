"""Request dependencies of the jobs feature: the list filters, and the session a streamed export reads with."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from cvat_sync.jobs.queries import JobFilters
from cvat_sync.jobs.schemas import job_filters
from mirante.auth import StreamingSession

JobFilterParams = Annotated[JobFilters, Depends(job_filters)]


ExportSession = StreamingSession
"""The session a streamed export reads with, for a caller who is signed in."""
