"""Queries of tags and their assignments."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.db import paginate, paginate_scalars
from rtls_cambus.rows import like_pattern
from rtls_cambus.tags.models import Tag, TagAssignment


@dataclass(frozen=True)
class TagFilters:
    search: str | None = None
    person_id: int | None = None
    assigned: bool | None = None


def _with_holder() -> Any:
    """Tags with their open assignment's person and start (null when nobody carries them)."""
    return select(Tag, TagAssignment.person_id, TagAssignment.assigned_from).outerjoin(
        TagAssignment, and_(TagAssignment.tag_id == Tag.id, TagAssignment.assigned_to.is_(None))
    )


async def list_tags(
    session: AsyncSession, filters: TagFilters, *, offset: int, limit: int
) -> tuple[Sequence[Row[Any]], int]:
    query = _with_holder().order_by(Tag.mac)
    if filters.search:
        pattern = like_pattern(filters.search)
        query = query.where(or_(Tag.mac.ilike(pattern, escape="\\"), Tag.label.ilike(pattern, escape="\\")))
    if filters.person_id is not None:
        query = query.where(TagAssignment.person_id == filters.person_id)
    if filters.assigned is not None:
        query = query.where(TagAssignment.id.is_not(None) if filters.assigned else TagAssignment.id.is_(None))
    return await paginate(session, query, offset=offset, limit=limit)


async def get_tag_row(session: AsyncSession, tag_id: int) -> Row[Any] | None:
    row: Row[Any] | None = (await session.execute(_with_holder().where(Tag.id == tag_id))).first()
    return row


async def get_tag(session: AsyncSession, tag_id: int, *, for_update: bool = False) -> Tag | None:
    query = select(Tag).where(Tag.id == tag_id)
    if for_update:
        query = query.with_for_update()
    return await session.scalar(query)


async def open_assignment(session: AsyncSession, tag_id: int) -> TagAssignment | None:
    query = select(TagAssignment).where(TagAssignment.tag_id == tag_id, TagAssignment.assigned_to.is_(None))
    return await session.scalar(query)


async def close_assignment(session: AsyncSession, tag_id: int, at: datetime) -> TagAssignment | None:
    statement = (
        update(TagAssignment)
        .where(TagAssignment.tag_id == tag_id, TagAssignment.assigned_to.is_(None))
        .values(assigned_to=at)
        .returning(TagAssignment)
    )
    return await session.scalar(statement)


async def open_new_assignment(session: AsyncSession, tag_id: int, person_id: int, at: datetime) -> TagAssignment:
    assignment = TagAssignment(tag_id=tag_id, person_id=person_id, assigned_from=at)
    session.add(assignment)
    await session.flush()
    return assignment


async def assignments(
    session: AsyncSession, tag_id: int, *, offset: int, limit: int
) -> tuple[list[TagAssignment], int]:
    query = (
        select(TagAssignment)
        .where(TagAssignment.tag_id == tag_id)
        .order_by(TagAssignment.assigned_from.desc(), TagAssignment.id.desc())
    )
    return await paginate_scalars(session, query, offset=offset, limit=limit)
