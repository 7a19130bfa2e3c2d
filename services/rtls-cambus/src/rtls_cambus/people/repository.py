"""Queries of people and person groups."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, exists, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.db import paginate_scalars
from rtls_cambus.people.models import Person, PersonGroup, PersonGroupMember
from rtls_cambus.rows import like_pattern


@dataclass(frozen=True)
class PersonFilters:
    search: str | None = None
    active: bool | None = None
    group_id: int | None = None


async def list_people(
    session: AsyncSession, filters: PersonFilters, *, offset: int, limit: int
) -> tuple[Sequence[Person], int]:
    query = select(Person).order_by(Person.full_name, Person.id)
    if filters.search:
        pattern = like_pattern(filters.search)
        query = query.where(
            or_(Person.full_name.ilike(pattern, escape="\\"), Person.external_id.ilike(pattern, escape="\\"))
        )
    if filters.active is not None:
        query = query.where(Person.active.is_(filters.active))
    if filters.group_id is not None:
        query = query.where(
            exists().where(PersonGroupMember.person_id == Person.id, PersonGroupMember.group_id == filters.group_id)
        )
    return await paginate_scalars(session, query, offset=offset, limit=limit)


async def get_person(session: AsyncSession, person_id: int) -> Person | None:
    return await session.get(Person, person_id)


async def list_groups(
    session: AsyncSession, search: str | None, *, offset: int, limit: int
) -> tuple[Sequence[PersonGroup], int]:
    query = select(PersonGroup).order_by(PersonGroup.name, PersonGroup.id)
    if search:
        query = query.where(PersonGroup.name.ilike(like_pattern(search), escape="\\"))
    return await paginate_scalars(session, query, offset=offset, limit=limit)


async def get_group(session: AsyncSession, group_id: int) -> PersonGroup | None:
    return await session.get(PersonGroup, group_id)


async def add_member(session: AsyncSession, group_id: int, person_id: int) -> None:
    """Add a person to a group; nothing happens when they are in it already."""
    statement = insert(PersonGroupMember).values(group_id=group_id, person_id=person_id).on_conflict_do_nothing()
    await session.execute(statement)


async def remove_member(session: AsyncSession, group_id: int, person_id: int) -> bool:
    statement = (
        delete(PersonGroupMember)
        .where(PersonGroupMember.group_id == group_id, PersonGroupMember.person_id == person_id)
        .returning(PersonGroupMember.person_id)
    )
    return (await session.execute(statement)).first() is not None
