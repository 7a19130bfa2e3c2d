"""The inspection-type catalogue: `/api/v1/inspection-types/`. Viewers read; admins add, describe and remove."""

from __future__ import annotations

from fastapi import Response, status

from mirante.db import Session
from mirante.web.pagination import Page, Pagination
from mirante.web.routing import SlashRouter
from vision_orchestrator.catalogue import service
from vision_orchestrator.catalogue.schemas import InspectionTypeCreate, InspectionTypeRead, InspectionTypeUpdate
from vision_orchestrator.deps import USER_RATE_LIMITED, Admin, Viewer, actor_of
from vision_orchestrator.identifiers import TypeNamePath

router = SlashRouter(prefix="/api/v1/inspection-types", tags=["inspection types"], responses=USER_RATE_LIMITED)


@router.get("/")
async def list_inspection_types(
    session: Session, principal: Viewer, pagination: Pagination
) -> Page[InspectionTypeRead]:
    """The catalogue, by name: the types machines may declare and inspections may ask for."""
    types, count = await service.list_types(session, offset=pagination.offset, limit=pagination.limit)
    return pagination.build(types, count)


@router.post("/", status_code=status.HTTP_201_CREATED, responses={409: {"description": "the name is taken"}})
async def create_inspection_type(
    session: Session, principal: Admin, body: InspectionTypeCreate, response: Response
) -> InspectionTypeRead:
    """Add a type (admins). 409 when the name is taken."""
    created = await service.add_type(session, body, actor_of(principal))
    response.headers["Location"] = f"/api/v1/inspection-types/{created.name}/"
    return created


@router.get("/{name}/")
async def get_inspection_type(session: Session, principal: Viewer, name: TypeNamePath) -> InspectionTypeRead:
    """One type of the catalogue."""
    return await service.get_type(session, name)


@router.patch("/{name}/")
async def update_inspection_type(
    session: Session, principal: Admin, name: TypeNamePath, body: InspectionTypeUpdate
) -> InspectionTypeRead:
    """Change a type's description (admins). A name is kept: machines and inspections refer to it."""
    return await service.update_type(session, name, body)


@router.delete(
    "/{name}/",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={409: {"description": "a machine declares the type or an inspection asks for it"}},
)
async def delete_inspection_type(session: Session, principal: Admin, name: TypeNamePath) -> None:
    """Remove a type (admins); 409 while a machine declares it or any inspection asks for it."""
    await service.remove_type(session, name, actor_of(principal))
