"""Request dependencies of the jobs feature: the list filters, and the session a streamed export reads with."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession

from cvat_sync.jobs.queries import JobFilters
from cvat_sync.jobs.schemas import job_filters
from mirante.auth import CurrentPrincipal
from mirante.db import get_session

JobFilterParams = Annotated[JobFilters, Depends(job_filters)]


async def export_session(
    session: Annotated[AsyncSession, Depends(get_session, scope="request")],
    principal: CurrentPrincipal,
) -> AsyncSession:
    """A session that stays open until a streamed body has been sent, for a caller who is signed in.

    It is the ordinary `get_session` dependency with request scope, so tests that override `get_session`
    export what they wrote. It is resolved before the principal so that, when both share one session (as under
    that override), the principal's shorter-lived savepoint nests inside this one and ends first.
    """
    return session


ExportSession = Annotated[AsyncSession, Depends(export_session)]
