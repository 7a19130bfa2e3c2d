"""The inspection-type catalogue: list, read, add, describe, remove; and the check other features make of the
types a request names. Every function runs in the caller's transaction (`flush`, never `commit`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from vision_orchestrator.catalogue import repository
from vision_orchestrator.catalogue.errors import (
    InspectionTypeExistsError,
    InspectionTypeInUseError,
    InspectionTypeNotFoundError,
    UnknownInspectionTypesError,
)
from vision_orchestrator.catalogue.schemas import InspectionTypeCreate, InspectionTypeRead, InspectionTypeUpdate

logger = logging.getLogger(__name__)


async def list_types(session: AsyncSession, *, offset: int, limit: int) -> tuple[list[InspectionTypeRead], int]:
    rows, count = await repository.list_types(session, offset=offset, limit=limit)
    return [InspectionTypeRead.model_validate(row) for row in rows], count


async def get_type(session: AsyncSession, name: str) -> InspectionTypeRead:
    row = await repository.get_type(session, name)
    if row is None:
        raise InspectionTypeNotFoundError(name)
    return InspectionTypeRead.model_validate(row)


async def add_type(session: AsyncSession, body: InspectionTypeCreate, actor: str) -> InspectionTypeRead:
    row = await repository.insert_type(session, body.name, body.description)
    if row is None:
        raise InspectionTypeExistsError(body.name)
    logger.info("inspection type %s added by %s", body.name, actor)
    return InspectionTypeRead.model_validate(row)


async def update_type(session: AsyncSession, name: str, body: InspectionTypeUpdate) -> InspectionTypeRead:
    if body.description is None:
        return await get_type(session, name)
    row = await repository.update_type(session, name, body.description)
    if row is None:
        raise InspectionTypeNotFoundError(name)
    return InspectionTypeRead.model_validate(row)


async def remove_type(session: AsyncSession, name: str, actor: str) -> None:
    """Remove a type nothing refers to: 409 while a machine declares it or an inspection (even finished) asks for
    it, since its history would lose the name."""
    if await repository.get_type(session, name, for_update=True) is None:
        raise InspectionTypeNotFoundError(name)
    machines, inspections = await repository.usage(session, name)
    if machines or inspections:
        raise InspectionTypeInUseError(name, machines, inspections)
    await repository.delete_type(session, name)
    logger.info("inspection type %s removed by %s", name, actor)


async def check_known(session: AsyncSession, field: str, names: Iterable[str]) -> None:
    """404 (`UnknownInspectionTypesError`, naming the body field `field`) when the catalogue lacks any of `names`."""
    missing = await repository.missing_types(session, names)
    if missing:
        raise UnknownInspectionTypesError(field, missing)


async def known_among(session: AsyncSession, names: Iterable[str]) -> set[str]:
    """The names among `names` the catalogue has."""
    wanted = set(names)
    return wanted - await repository.missing_types(session, wanted)
