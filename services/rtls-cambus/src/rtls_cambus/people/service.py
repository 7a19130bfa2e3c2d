"""People and person groups. Runs in the caller's transaction (flush only).

A person who carries or ever carried a tag cannot be deleted (409): the assignments say whose positions those
were, which audits need; set `active` to false instead. Group memberships go with a deleted person. Deleting a group
removes its memberships, never the people.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mirante.web.errors import referenced
from rtls_cambus import rows
from rtls_cambus.people import repository
from rtls_cambus.people.errors import (
    GroupExistsError,
    GroupNotFoundError,
    MemberNotFoundError,
    PersonCarriesTagError,
    PersonExistsError,
    PersonNotFoundError,
)
from rtls_cambus.people.models import Person, PersonGroup
from rtls_cambus.people.repository import PersonFilters
from rtls_cambus.people.schemas import GroupCreate, PersonCreate


async def list_people(
    session: AsyncSession, filters: PersonFilters, *, offset: int, limit: int
) -> tuple[list[Person], int]:
    found, count = await repository.list_people(session, filters, offset=offset, limit=limit)
    return list(found), count


async def get_person(session: AsyncSession, person_id: int) -> Person:
    person = await repository.get_person(session, person_id)
    if person is None:
        raise PersonNotFoundError(person_id)
    return person


async def create_person(session: AsyncSession, body: PersonCreate) -> Person:
    person = Person(**rows.column_values(body.model_dump()))
    if await rows.add(session, person):
        raise PersonExistsError()
    await session.refresh(person)
    return person


async def update_person(session: AsyncSession, person_id: int, changes: dict[str, Any]) -> Person:
    person = await get_person(session, person_id)
    if await rows.change(session, person, changes):
        raise PersonExistsError()
    await session.refresh(person)
    return person


async def delete_person(session: AsyncSession, person_id: int) -> None:
    person = await get_person(session, person_id)
    if await rows.remove(session, person):
        raise PersonCarriesTagError(person_id)


async def list_groups(
    session: AsyncSession, search: str | None, *, offset: int, limit: int
) -> tuple[list[PersonGroup], int]:
    found, count = await repository.list_groups(session, search, offset=offset, limit=limit)
    return list(found), count


async def get_group(session: AsyncSession, group_id: int) -> PersonGroup:
    group = await repository.get_group(session, group_id)
    if group is None:
        raise GroupNotFoundError(group_id)
    return group


async def create_group(session: AsyncSession, body: GroupCreate) -> PersonGroup:
    group = PersonGroup(**rows.column_values(body.model_dump()))
    if await rows.add(session, group):
        raise GroupExistsError()
    await session.refresh(group)
    return group


async def update_group(session: AsyncSession, group_id: int, changes: dict[str, Any]) -> PersonGroup:
    group = await get_group(session, group_id)
    if await rows.change(session, group, changes):
        raise GroupExistsError()
    await session.refresh(group)
    return group


async def delete_group(session: AsyncSession, group_id: int) -> None:
    await rows.remove(session, await get_group(session, group_id))


async def add_member(session: AsyncSession, group_id: int, person_id: int) -> None:
    await get_group(session, group_id)
    await referenced(get_person(session, person_id), "person_id")
    await repository.add_member(session, group_id, person_id)


async def remove_member(session: AsyncSession, group_id: int, person_id: int) -> None:
    await get_group(session, group_id)
    if not await repository.remove_member(session, group_id, person_id):
        raise MemberNotFoundError(group_id, person_id)
