"""HTTP endpoints of people and person groups: `/api/v1/people[...]`, `/api/v1/person-groups[...]`.

Every signed-in caller reads; operators (the security desk) register people and manage groups.
`/people/{person_id}/current-location` belongs to the positions.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from mirante.db import Session
from mirante.web.pagination import Page, Pagination
from rtls_cambus.deps import Operator, Viewer
from rtls_cambus.fields import Search, search_text
from rtls_cambus.people import service
from rtls_cambus.people.repository import PersonFilters
from rtls_cambus.people.schemas import (
    ActiveFilter,
    GroupCreate,
    GroupFilter,
    GroupId,
    GroupRead,
    GroupUpdate,
    MemberAdd,
    PersonCreate,
    PersonId,
    PersonRead,
    PersonUpdate,
)

router = APIRouter(prefix="/api/v1", tags=["people"])


@router.get("/people")
async def list_people(
    session: Session,
    principal: Viewer,
    pagination: Pagination,
    q: Search = None,
    active: ActiveFilter = None,
    group_id: GroupFilter = None,
) -> Page[PersonRead]:
    """People by name, filtered by name or external id, state and group."""
    filters = PersonFilters(search=search_text(q), active=active, group_id=group_id)
    found, count = await service.list_people(session, filters, offset=pagination.offset, limit=pagination.limit)
    return pagination.build([PersonRead.model_validate(person) for person in found], count)


@router.post("/people", status_code=status.HTTP_201_CREATED, responses={409: {"description": "external id taken"}})
async def create_person(session: Session, principal: Operator, body: PersonCreate, response: Response) -> PersonRead:
    """Register a person (operators)."""
    person = await service.create_person(session, body)
    response.headers["Location"] = f"/api/v1/people/{person.id}"
    return PersonRead.model_validate(person)


@router.get("/people/{person_id}")
async def get_person(session: Session, principal: Viewer, person_id: PersonId) -> PersonRead:
    return PersonRead.model_validate(await service.get_person(session, person_id))


@router.patch("/people/{person_id}", responses={409: {"description": "external id taken"}})
async def update_person(session: Session, principal: Operator, person_id: PersonId, body: PersonUpdate) -> PersonRead:
    """Change a person (operators); omitted fields stay, null clears."""
    return PersonRead.model_validate(await service.update_person(session, person_id, body.changes()))


@router.delete(
    "/people/{person_id}", status_code=status.HTTP_204_NO_CONTENT, responses={409: {"description": "has carried a tag"}}
)
async def delete_person(session: Session, principal: Operator, person_id: PersonId) -> None:
    """Delete a person (operators). 409 once they have carried a tag: set `active` to false instead."""
    await service.delete_person(session, person_id)


@router.get("/person-groups")
async def list_person_groups(
    session: Session, principal: Viewer, pagination: Pagination, q: Search = None
) -> Page[GroupRead]:
    found, count = await service.list_groups(session, search_text(q), offset=pagination.offset, limit=pagination.limit)
    return pagination.build([GroupRead.model_validate(group) for group in found], count)


@router.post("/person-groups", status_code=status.HTTP_201_CREATED, responses={409: {"description": "name taken"}})
async def create_person_group(
    session: Session, principal: Operator, body: GroupCreate, response: Response
) -> GroupRead:
    group = await service.create_group(session, body)
    response.headers["Location"] = f"/api/v1/person-groups/{group.id}"
    return GroupRead.model_validate(group)


@router.get("/person-groups/{group_id}")
async def get_person_group(session: Session, principal: Viewer, group_id: GroupId) -> GroupRead:
    return GroupRead.model_validate(await service.get_group(session, group_id))


@router.patch("/person-groups/{group_id}", responses={409: {"description": "name taken"}})
async def update_person_group(session: Session, principal: Operator, group_id: GroupId, body: GroupUpdate) -> GroupRead:
    return GroupRead.model_validate(await service.update_group(session, group_id, body.changes()))


@router.delete("/person-groups/{group_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_person_group(session: Session, principal: Operator, group_id: GroupId) -> None:
    """Delete a group and its memberships (operators); the people stay."""
    await service.delete_group(session, group_id)


@router.post(
    "/person-groups/{group_id}/members",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "no such group, or no person `person_id`"}},
)
async def add_person_group_member(session: Session, principal: Operator, group_id: GroupId, body: MemberAdd) -> None:
    """Add a person to the group (operators); adding a member again changes nothing. List them with
    `GET /people?group_id=`."""
    await service.add_member(session, group_id, body.person_id)


@router.delete("/person-groups/{group_id}/members/{person_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_person_group_member(
    session: Session, principal: Operator, group_id: GroupId, person_id: PersonId
) -> None:
    await service.remove_member(session, group_id, person_id)
