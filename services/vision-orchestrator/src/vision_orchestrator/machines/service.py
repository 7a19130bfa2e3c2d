"""Machines: list, read, register (with a credential shown once), change, remove; and their credentials
(issue or rotate, read, revoke). Every function runs in the caller's transaction (`flush`, never `commit`)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mirante.webhooks.signatures import generate_standard_secret
from vision_orchestrator.catalogue.service import check_known
from vision_orchestrator.identifiers import new_machine_id
from vision_orchestrator.machines import repository
from vision_orchestrator.machines.credentials import new_credential
from vision_orchestrator.machines.errors import (
    CredentialNotFoundError,
    MachineBusyError,
    MachineNameTakenError,
    MachineNotFoundError,
)
from vision_orchestrator.machines.schemas import (
    CredentialIssued,
    CredentialRead,
    MachineFilters,
    MachineRead,
    MachineRegistered,
    MachineWrite,
    storable,
)
from vision_orchestrator.tables import Machine, MachineCredential

logger = logging.getLogger(__name__)

TYPES_FIELD = "supported_inspection_types"


async def list_machines(
    session: AsyncSession, filters: MachineFilters, *, sort: str, offset: int, limit: int
) -> tuple[list[MachineRead], int]:
    rows, count = await repository.list_machines(session, filters, sort=sort, offset=offset, limit=limit)
    return [MachineRead.of(row) for row in rows], count


async def _machine(session: AsyncSession, machine_id: str, *, for_update: bool = False) -> Machine:
    machine = await repository.get_machine(session, machine_id, for_update=for_update)
    if machine is None:
        raise MachineNotFoundError(machine_id)
    return machine


async def get_machine(session: AsyncSession, machine_id: str) -> MachineRead:
    return MachineRead.of(await _machine(session, machine_id))


async def register_machine(session: AsyncSession, body: MachineWrite, actor: str) -> MachineRegistered:
    """A new machine (offline until its first heartbeat) and its first credential, shown only in this answer.

    404 when it declares a type the catalogue lacks; 409 when its name is taken.
    """
    await check_known(session, TYPES_FIELD, body.supported_inspection_types)
    machine = await repository.insert_machine(session, {"id": new_machine_id(), **storable(body.model_dump())})
    if machine is None:
        raise MachineNameTakenError(body.name)
    credential = await _issue(session, machine.id)
    logger.info("machine %s (%s) registered by %s", machine.id, machine.name, actor)
    return MachineRegistered(
        **MachineRead.of(machine).model_dump(),
        credential=credential.credential,
        webhook_secret=credential.webhook_secret,
        credential_created_at=credential.created_at,
    )


async def update_machine(session: AsyncSession, machine_id: str, changes: dict[str, Any]) -> MachineRead:
    """Change a machine's fields (PUT gives them all, PATCH some); 404 (no such machine, or a type
    the catalogue lacks), 409 (name taken)."""
    await _machine(session, machine_id, for_update=True)
    if "supported_inspection_types" in changes:
        await check_known(session, TYPES_FIELD, changes["supported_inspection_types"])
    if "name" in changes and await repository.name_taken(session, changes["name"], other_than=machine_id):
        raise MachineNameTakenError(changes["name"])
    if not changes:
        return await get_machine(session, machine_id)
    machine = await repository.update_machine(session, machine_id, storable(changes))
    assert machine is not None
    return MachineRead.of(machine)


async def remove_machine(session: AsyncSession, machine_id: str, actor: str) -> None:
    """Remove a machine with its credentials; 409 while an inspection is on it or waits for it as its target.

    Finished inspections keep their history; their machine fields are cleared.
    """
    machine = await _machine(session, machine_id, for_update=True)
    waiting = await repository.open_inspections(session, machine_id)
    if waiting:
        raise MachineBusyError(machine_id, waiting)
    await repository.delete_machine(session, machine)
    logger.info("machine %s removed by %s", machine_id, actor)


def _credential_read(credential: MachineCredential) -> CredentialRead:
    return CredentialRead(
        machine_id=credential.machine_id,
        active=credential.revoked_at is None,
        created_at=credential.created_at,
        last_used_at=credential.last_used_at,
        revoked_at=credential.revoked_at,
    )


async def _issue(session: AsyncSession, machine_id: str) -> CredentialIssued:
    previous = await repository.active_credential(session, machine_id, for_update=True)
    if previous is not None:
        await repository.revoke_credential(session, previous, datetime.now(UTC))
    plaintext, secret_hash = new_credential(machine_id)
    webhook_secret = generate_standard_secret()
    credential = await repository.add_credential(session, machine_id, secret_hash, webhook_secret)
    return CredentialIssued(
        machine_id=machine_id,
        credential=plaintext,
        webhook_secret=webhook_secret,
        created_at=credential.created_at,
        replaced_active=previous is not None,
    )


async def rotate_credential(session: AsyncSession, machine_id: str, actor: str) -> CredentialIssued:
    """A new credential for the machine; the active one (if any) stops working now. 404 for an unknown machine."""
    await _machine(session, machine_id, for_update=True)
    issued = await _issue(session, machine_id)
    logger.info(
        "credential of machine %s %s by %s", machine_id, "rotated" if issued.replaced_active else "issued", actor
    )
    return issued


async def get_credential(session: AsyncSession, machine_id: str) -> CredentialRead:
    """The machine's current credential (the active one, else the last revoked), never its secret."""
    await _machine(session, machine_id)
    credential = await repository.latest_credential(session, machine_id)
    if credential is None:
        raise CredentialNotFoundError(machine_id)
    return _credential_read(credential)


async def revoke_credential(session: AsyncSession, machine_id: str, actor: str) -> CredentialRead:
    """Revoke the active credential: the machine's next call is refused (401). 404 when none is active."""
    await _machine(session, machine_id, for_update=True)
    credential = await repository.active_credential(session, machine_id, for_update=True)
    if credential is None:
        raise CredentialNotFoundError(machine_id, f"machine {machine_id!r} has no active credential")
    await repository.revoke_credential(session, credential, datetime.now(UTC))
    logger.info("credential of machine %s revoked by %s", machine_id, actor)
    return _credential_read(credential)
