"""Vision machines: `/api/v1/machines/`. Viewers read; admins register, change and remove machines and manage
their credentials."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Response, status

from mirante.db import Session
from mirante.web.pagination import Page, Pagination
from mirante.web.routing import SlashRouter
from vision_orchestrator.deps import USER_RATE_LIMITED, Admin, Viewer, actor_of
from vision_orchestrator.identifiers import MachineIdPath
from vision_orchestrator.machines import service
from vision_orchestrator.machines.schemas import (
    CredentialIssued,
    CredentialRead,
    MachineFilterParams,
    MachineRead,
    MachineRegistered,
    MachineSort,
    MachineUpdate,
    MachineWrite,
)

router = SlashRouter(prefix="/api/v1/machines", tags=["machines"], responses=USER_RATE_LIMITED)

NAME_TAKEN: dict[int | str, dict[str, Any]] = {409: {"description": "another machine has that name"}}
UNKNOWN_TYPES: dict[int | str, dict[str, Any]] = {
    404: {
        "description": "a type of `supported_inspection_types` is not in the catalogue "
        "(`inspection_type_not_found`, `details.field` and `details.names`)"
    }
}
CHANGE_REFUSALS: dict[int | str, dict[str, Any]] = {
    404: {
        "description": "no such machine, or a type of `supported_inspection_types` is not in the catalogue "
        "(`inspection_type_not_found`, `details.field` and `details.names`)"
    },
    **NAME_TAKEN,
}


@router.get("/")
async def list_machines(
    session: Session,
    principal: Viewer,
    pagination: Pagination,
    filters: MachineFilterParams,
    sort: Annotated[MachineSort, Query(description="sort key, `-` for descending")] = "name",
) -> Page[MachineRead]:
    """The fleet, filtered by status, maintenance, availability, declared type or location."""
    machines, count = await service.list_machines(
        session, filters, sort=sort, offset=pagination.offset, limit=pagination.limit
    )
    return pagination.build(machines, count)


@router.post("/", status_code=status.HTTP_201_CREATED, responses={**UNKNOWN_TYPES, **NAME_TAKEN})
async def register_machine(
    session: Session, principal: Admin, body: MachineWrite, response: Response
) -> MachineRegistered:
    """Register a machine (admins). The answer holds its credential, shown only this once.

    The machine is offline until its first heartbeat. 404 when it declares a type the catalogue lacks.
    """
    machine = await service.register_machine(session, body, actor_of(principal))
    response.headers["Location"] = f"/api/v1/machines/{machine.id}/"
    response.headers["Cache-Control"] = "no-store"
    return machine


@router.get("/{machine_id}/")
async def get_machine(session: Session, principal: Viewer, machine_id: MachineIdPath) -> MachineRead:
    """One machine, with `is_available` (online, below capacity, not in maintenance)."""
    return await service.get_machine(session, machine_id)


@router.put("/{machine_id}/", responses=CHANGE_REFUSALS)
async def replace_machine(
    session: Session, principal: Admin, machine_id: MachineIdPath, body: MachineWrite
) -> MachineRead:
    """Replace every writable field of a machine (admins); fields left out take their defaults."""
    return await service.update_machine(session, machine_id, body.model_dump())


@router.patch("/{machine_id}/", responses=CHANGE_REFUSALS)
async def update_machine(
    session: Session, principal: Admin, machine_id: MachineIdPath, body: MachineUpdate
) -> MachineRead:
    """Change some fields of a machine (admins), e.g. `{"maintenance": true}`; the others stay."""
    return await service.update_machine(session, machine_id, body.changes())


@router.delete(
    "/{machine_id}/",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={409: {"description": "an inspection is on the machine or waits for it"}},
)
async def delete_machine(session: Session, principal: Admin, machine_id: MachineIdPath) -> None:
    """Remove a machine and its credentials (admins); 409 while inspections are on it or target it."""
    await service.remove_machine(session, machine_id, actor_of(principal))


@router.post("/{machine_id}/credentials/", status_code=status.HTTP_201_CREATED)
async def rotate_machine_credential(
    session: Session, principal: Admin, machine_id: MachineIdPath, response: Response
) -> CredentialIssued:
    """Issue a new credential and webhook secret (admins); the active ones stop working now. Shown only in this
    answer."""
    response.headers["Cache-Control"] = "no-store"
    return await service.rotate_credential(session, machine_id, actor_of(principal))


@router.get("/{machine_id}/credentials/")
async def get_machine_credential(session: Session, principal: Admin, machine_id: MachineIdPath) -> CredentialRead:
    """The machine's credential without its secret: when issued, last used, revoked (admins)."""
    return await service.get_credential(session, machine_id)


@router.delete("/{machine_id}/credentials/", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_machine_credential(session: Session, principal: Admin, machine_id: MachineIdPath) -> None:
    """Revoke the machine's credential (admins): its next call is refused. 404 when none is active."""
    await service.revoke_credential(session, machine_id, actor_of(principal))
