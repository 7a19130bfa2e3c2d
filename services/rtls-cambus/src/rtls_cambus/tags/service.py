"""Tags and who carries them. Runs in the caller's transaction (flush only).

A tag is carried by one person at a time; giving it to someone else closes the previous assignment at the same
instant, so the history has neither gaps nor overlaps. Each change queues `rtls.tag.assigned` or
`rtls.tag.unassigned`, which the position engine and webhooks follow. A tag someone carries cannot be deleted
(409): unassign it first. Deleting a tag removes its history.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.bus import Event, emit
from mirante.web.errors import referenced
from rtls_cambus import rows
from rtls_cambus.identifiers import SCHEMA, SOURCE
from rtls_cambus.people.service import get_person
from rtls_cambus.tags import repository
from rtls_cambus.tags.errors import TagAssignedError, TagExistsError, TagNotAssignedError, TagNotFoundError
from rtls_cambus.tags.models import Tag, TagAssignment
from rtls_cambus.tags.repository import TagFilters
from rtls_cambus.tags.schemas import TagCreate, TagRead

TAG_ASSIGNED = "rtls.tag.assigned"
TAG_UNASSIGNED = "rtls.tag.unassigned"


async def list_tags(
    session: AsyncSession, filters: TagFilters, *, offset: int, limit: int
) -> tuple[list[TagRead], int]:
    found, count = await repository.list_tags(session, filters, offset=offset, limit=limit)
    return [TagRead.of(row) for row in found], count


async def get_tag(session: AsyncSession, tag_id: int) -> TagRead:
    row = await repository.get_tag_row(session, tag_id)
    if row is None:
        raise TagNotFoundError(tag_id)
    return TagRead.of(row)


async def _locked_tag(session: AsyncSession, tag_id: int) -> Tag:
    tag = await repository.get_tag(session, tag_id, for_update=True)
    if tag is None:
        raise TagNotFoundError(tag_id)
    return tag


async def create_tag(session: AsyncSession, body: TagCreate) -> TagRead:
    if body.person_id is not None:
        await referenced(get_person(session, body.person_id), "person_id")
    tag = Tag(**rows.column_values(body.model_dump(exclude={"person_id"})))
    if await rows.add(session, tag):
        raise TagExistsError(body.mac)
    if body.person_id is not None:
        await assign(session, tag.id, body.person_id)
    return await get_tag(session, tag.id)


async def update_tag(session: AsyncSession, tag_id: int, changes: dict[str, Any]) -> TagRead:
    tag = await _locked_tag(session, tag_id)
    if await rows.change(session, tag, changes):
        raise TagExistsError(changes["mac"])
    return await get_tag(session, tag_id)


async def delete_tag(session: AsyncSession, tag_id: int) -> None:
    tag = await _locked_tag(session, tag_id)
    if await repository.open_assignment(session, tag_id) is not None:
        raise TagAssignedError(tag_id)
    await rows.remove(session, tag)


async def _now(session: AsyncSession) -> Any:
    return await session.scalar(select(func.now()))


def _event(kind: str, tag: Tag, assignment: TagAssignment) -> Event:
    return Event(
        source=SOURCE,
        type=kind,
        subject=f"tag/{tag.id}",
        data={
            "tag_id": tag.id,
            "mac": tag.mac,
            "person_id": assignment.person_id,
            "assigned_from": assignment.assigned_from.isoformat(),
            "assigned_to": assignment.assigned_to.isoformat() if assignment.assigned_to else None,
        },
    )


async def assign(session: AsyncSession, tag_id: int, person_id: int) -> TagAssignment:
    """Give the tag to `person_id`, closing whoever had it; giving it to its current holder changes nothing."""
    tag = await _locked_tag(session, tag_id)
    await referenced(get_person(session, person_id), "person_id")
    current = await repository.open_assignment(session, tag_id)
    if current is not None and current.person_id == person_id:
        return current
    now = await _now(session)
    if (closed := await repository.close_assignment(session, tag_id, now)) is not None:
        await emit(session, SCHEMA, _event(TAG_UNASSIGNED, tag, closed))
    assignment = await repository.open_new_assignment(session, tag_id, person_id, now)
    await emit(session, SCHEMA, _event(TAG_ASSIGNED, tag, assignment))
    return assignment


async def unassign(session: AsyncSession, tag_id: int) -> TagAssignment:
    """Take the tag back from whoever carries it; 404 when nobody does."""
    tag = await _locked_tag(session, tag_id)
    closed = await repository.close_assignment(session, tag_id, await _now(session))
    if closed is None:
        raise TagNotAssignedError(tag_id)
    await emit(session, SCHEMA, _event(TAG_UNASSIGNED, tag, closed))
    return closed


async def assignments(
    session: AsyncSession, tag_id: int, *, offset: int, limit: int
) -> tuple[list[TagAssignment], int]:
    """The tag's history, newest first."""
    if await repository.get_tag(session, tag_id) is None:
        raise TagNotFoundError(tag_id)
    return await repository.assignments(session, tag_id, offset=offset, limit=limit)
