"""The machine calling: authenticated by its credential, for the routes machines call (the webhooks).

The contract gives machines no other route, so no per-machine rate limit applies (webhooks are never limited);
a machine route added outside the webhooks would count its calls with `mirante.web.ratelimit.limit_caller`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.db import Session
from vision_orchestrator.machines import repository
from vision_orchestrator.machines.credentials import credential_matches, machine_of
from vision_orchestrator.machines.errors import InvalidMachineCredentialError
from vision_orchestrator.tables import Machine, MachineCredential

LAST_USED_EVERY_SECONDS = 60.0
"""How often a credential's `last_used_at` is written at most: a machine calls every few seconds."""

machine_credential_scheme = HTTPBearer(
    auto_error=False, scheme_name="machine_credential", description="the machine's credential, `mvc_...`"
)


async def bearer_machine(request: Request, session: AsyncSession) -> tuple[Machine, MachineCredential] | None:
    """The machine and active credential an `Authorization: Bearer mvc_...` header names; None without such a
    header; 401 for a malformed, unknown, wrong or revoked credential (the same answer for each)."""
    scheme, _, value = (request.headers.get("authorization") or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    credential = value.strip()
    machine_id = machine_of(credential)
    found = None if machine_id is None else await repository.active_credential_with_machine(session, machine_id)
    if found is None or not credential_matches(credential, found[0].secret_hash):
        raise InvalidMachineCredentialError()
    stored, machine = found
    now = datetime.now(UTC)
    # The stored time is already read: skip the update that would match nothing (most calls).
    if stored.last_used_at is None or stored.last_used_at < now - timedelta(seconds=LAST_USED_EVERY_SECONDS):
        await repository.touch_credential(session, stored.id, now, LAST_USED_EVERY_SECONDS)
    request.state.machine = machine
    return machine, stored


async def machine_caller(
    request: Request,
    session: Session,
    _declared: Annotated[object, Depends(machine_credential_scheme)],
) -> Machine:
    """The machine whose active credential the request carries (`Authorization: Bearer mvc_...`); 401 otherwise,
    with the same answer for a malformed, unknown, wrong or revoked credential."""
    found = await bearer_machine(request, session)
    if found is None:
        raise InvalidMachineCredentialError("machine credential required: send 'Authorization: Bearer mvc_...'")
    return found[0]


MachineCaller = Annotated[Machine, Depends(machine_caller)]
