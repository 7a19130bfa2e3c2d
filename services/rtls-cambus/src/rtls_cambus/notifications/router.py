"""HTTP endpoints of notifications: each user's mail preferences, and the mail log for admins of the suite."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from mirante.auth import CurrentPrincipal, Principal
from mirante.db import Session
from mirante.web.errors import ForbiddenError
from mirante.web.pagination import Page, Pagination
from rtls_cambus.deps import SuiteAdmin
from rtls_cambus.notifications import repository
from rtls_cambus.notifications.schemas import (
    MailKind,
    MailRead,
    MailStatus,
    PreferencesPut,
    PreferencesRead,
    UserFilter,
)

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])


async def signed_in_user(principal: CurrentPrincipal) -> Principal:
    """A user, whatever the role: preferences are a person's, and an API key is no person."""
    if not principal.is_user:
        raise ForbiddenError("mail preferences belong to users; sign in as the user instead of using an API key")
    return principal


SignedInUser = Annotated[Principal, Depends(signed_in_user)]


async def _read(session: Session, user_id: int) -> PreferencesRead:
    stored = await repository.get_preference(session, user_id)
    return PreferencesRead(
        email_alerts=stored.email_alerts if stored is not None else True,
        email_incidents=stored.email_incidents if stored is not None else True,
        email=await repository.user_email(session, user_id),
    )


@router.get("/preferences")
async def get_preferences(session: Session, user: SignedInUser) -> PreferencesRead:
    """Which mails you get (everything, until you turn a kind off) and the address they go to."""
    return await _read(session, user.id)


@router.put("/preferences")
async def put_preferences(session: Session, user: SignedInUser, body: PreferencesPut) -> PreferencesRead:
    """Turn alert mails and incident mails on or off for yourself; it applies to mails planned from now on."""
    await repository.put_preference(session, user.id, body.email_alerts, body.email_incidents)
    return await _read(session, user.id)


@router.get("/mails")
async def list_mails(
    session: Session,
    principal: SuiteAdmin,
    pagination: Pagination,
    user_id: UserFilter = None,
    status: Annotated[MailStatus | None, Query(description="only with this status")] = None,
    kind: Annotated[MailKind | None, Query(description="only of this kind")] = None,
) -> Page[MailRead]:
    """Every mail notification, newest first, with its status, tries and last error (admins of the suite)."""
    found, count = await repository.list_mails(
        session,
        repository.MailFilters(status=status, kind=kind, user_id=user_id),
        offset=pagination.offset,
        limit=pagination.limit,
    )
    results = [
        MailRead.model_validate(
            {**{name: getattr(row, name) for name in MailRead.model_fields}, "event_id": str(row.event_id)}
        )
        for row in found
    ]
    return pagination.build(results, count)
