"""HTTP endpoints of tags: `/api/v1/tags[...]`. Every signed-in caller reads; operators manage tags and who
carries them."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from mirante.db import Session
from mirante.web.pagination import Page, Pagination
from rtls_cambus.deps import Operator, Viewer
from rtls_cambus.fields import Search, search_text
from rtls_cambus.tags import service
from rtls_cambus.tags.repository import TagFilters
from rtls_cambus.tags.schemas import (
    AssignedFilter,
    AssignmentRead,
    AssignmentSet,
    PersonFilter,
    TagCreate,
    TagId,
    TagRead,
    TagUpdate,
)

router = APIRouter(prefix="/api/v1/tags", tags=["tags"])


@router.get("")
async def list_tags(
    session: Session,
    principal: Viewer,
    pagination: Pagination,
    q: Search = None,
    person_id: PersonFilter = None,
    assigned: AssignedFilter = None,
) -> Page[TagRead]:
    """Tags by MAC, filtered by MAC or label, holder and whether anyone carries them."""
    filters = TagFilters(search=search_text(q), person_id=person_id, assigned=assigned)
    found, count = await service.list_tags(session, filters, offset=pagination.offset, limit=pagination.limit)
    return pagination.build(found, count)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={404: {"description": "no person `person_id`"}, 409: {"description": "MAC taken"}},
)
async def create_tag(session: Session, principal: Operator, body: TagCreate, response: Response) -> TagRead:
    """Register a tag (operators), optionally giving it to a person at once. The MAC is normalised."""
    tag = await service.create_tag(session, body)
    response.headers["Location"] = f"/api/v1/tags/{tag.id}"
    return tag


@router.get("/{tag_id}")
async def get_tag(session: Session, principal: Viewer, tag_id: TagId) -> TagRead:
    return await service.get_tag(session, tag_id)


@router.patch("/{tag_id}", responses={409: {"description": "MAC taken"}})
async def update_tag(session: Session, principal: Operator, tag_id: TagId, body: TagUpdate) -> TagRead:
    """Change a tag's MAC, label or notes (operators)."""
    return await service.update_tag(session, tag_id, body.changes())


@router.delete("/{tag_id}", status_code=status.HTTP_204_NO_CONTENT, responses={409: {"description": "carried"}})
async def delete_tag(session: Session, principal: Operator, tag_id: TagId) -> None:
    """Delete a tag and its history (operators). 409 while someone carries it."""
    await service.delete_tag(session, tag_id)


@router.put("/{tag_id}/assignment", responses={404: {"description": "no such tag, or no person `person_id`"}})
async def assign_tag(session: Session, principal: Operator, tag_id: TagId, body: AssignmentSet) -> AssignmentRead:
    """Give the tag to a person (operators); whoever had it stops having it at the same instant."""
    return AssignmentRead.model_validate(await service.assign(session, tag_id, body.person_id))


@router.delete("/{tag_id}/assignment")
async def unassign_tag(session: Session, principal: Operator, tag_id: TagId) -> AssignmentRead:
    """Take the tag back (operators); the answer is the assignment just closed. 404 when nobody carries it."""
    return AssignmentRead.model_validate(await service.unassign(session, tag_id))


@router.get("/{tag_id}/assignments")
async def list_tag_assignments(
    session: Session, principal: Viewer, tag_id: TagId, pagination: Pagination
) -> Page[AssignmentRead]:
    """Who carried the tag, from when to when, newest first."""
    found, count = await service.assignments(session, tag_id, offset=pagination.offset, limit=pagination.limit)
    return pagination.build([AssignmentRead.model_validate(item) for item in found], count)
