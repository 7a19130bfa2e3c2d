"""Queries of incidents, support groups and incident rules."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, exists, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from mirante.auth.models import User
from mirante.db import paginate_scalars
from rtls_cambus.incidents.models import (
    Incident,
    IncidentAssignee,
    IncidentAttachment,
    IncidentMessage,
    IncidentRule,
    IncidentStatusChange,
    SupportGroup,
    SupportGroupMember,
)
from rtls_cambus.rows import like_pattern


@dataclass(frozen=True)
class IncidentFilters:
    status: str | None = None
    severity: str | None = None
    support_group_id: int | None = None
    assignee_id: int | None = None
    search: str | None = None


async def list_incidents(
    session: AsyncSession, filters: IncidentFilters, *, offset: int, limit: int
) -> tuple[list[Incident], int]:
    query = select(Incident).order_by(Incident.created_at.desc(), Incident.id.desc())
    if filters.status is not None:
        query = query.where(Incident.status == filters.status)
    if filters.severity is not None:
        query = query.where(Incident.severity == filters.severity)
    if filters.support_group_id is not None:
        query = query.where(Incident.support_group_id == filters.support_group_id)
    if filters.assignee_id is not None:
        query = query.where(
            exists().where(IncidentAssignee.incident_id == Incident.id, IncidentAssignee.user_id == filters.assignee_id)
        )
    if filters.search:
        query = query.where(Incident.title.ilike(like_pattern(filters.search), escape="\\"))
    return await paginate_scalars(session, query, offset=offset, limit=limit)


async def get_incident(session: AsyncSession, incident_id: int, *, for_update: bool = False) -> Incident | None:
    if for_update:
        query = select(Incident).where(Incident.id == incident_id).with_for_update()
        return (await session.execute(query)).scalar_one_or_none()
    return await session.get(Incident, incident_id)


async def assignees_of(session: AsyncSession, incident_ids: Iterable[int]) -> dict[int, list[int]]:
    query = (
        select(IncidentAssignee.incident_id, IncidentAssignee.user_id)
        .where(IncidentAssignee.incident_id.in_(list(incident_ids)))
        .order_by(IncidentAssignee.user_id)
    )
    found: dict[int, list[int]] = defaultdict(list)
    for incident_id, user_id in await session.execute(query):
        found[incident_id].append(user_id)
    return found


async def set_assignees(session: AsyncSession, incident_id: int, user_ids: Sequence[int]) -> None:
    await session.execute(
        delete(IncidentAssignee).where(
            IncidentAssignee.incident_id == incident_id, IncidentAssignee.user_id.not_in(list(user_ids))
        )
    )
    if user_ids:
        rows = [{"incident_id": incident_id, "user_id": user_id} for user_id in user_ids]
        await session.execute(insert(IncidentAssignee).values(rows).on_conflict_do_nothing())


async def user_states(session: AsyncSession, user_ids: Iterable[int]) -> dict[int, bool]:
    """Whether each of `user_ids` that is a user of the identity API is active; others are left out."""
    query = select(User.id, User.is_active).where(User.id.in_(list(user_ids)))
    return {row.id: row.is_active for row in await session.execute(query)}


async def history(session: AsyncSession, incident_id: int) -> list[IncidentStatusChange]:
    query = (
        select(IncidentStatusChange)
        .where(IncidentStatusChange.incident_id == incident_id)
        .order_by(IncidentStatusChange.changed_at, IncidentStatusChange.id)
    )
    return list((await session.scalars(query)).all())


async def list_messages(
    session: AsyncSession, incident_id: int, *, offset: int, limit: int
) -> tuple[list[IncidentMessage], int]:
    query = (
        select(IncidentMessage)
        .where(IncidentMessage.incident_id == incident_id)
        .order_by(IncidentMessage.created_at, IncidentMessage.id)
    )
    return await paginate_scalars(session, query, offset=offset, limit=limit)


async def list_attachments(
    session: AsyncSession, incident_id: int, *, offset: int, limit: int
) -> tuple[list[IncidentAttachment], int]:
    query = (
        select(IncidentAttachment)
        .where(IncidentAttachment.incident_id == incident_id)
        .order_by(IncidentAttachment.created_at, IncidentAttachment.id)
    )
    return await paginate_scalars(session, query, offset=offset, limit=limit)


async def get_attachment(
    session: AsyncSession, incident_id: int, attachment_id: int, *, with_content: bool = False
) -> IncidentAttachment | None:
    query = select(IncidentAttachment).where(
        IncidentAttachment.id == attachment_id, IncidentAttachment.incident_id == incident_id
    )
    if with_content:
        query = query.options(undefer(IncidentAttachment.content))
    return (await session.execute(query)).scalar_one_or_none()


async def list_groups(
    session: AsyncSession, search: str | None, *, offset: int, limit: int
) -> tuple[list[SupportGroup], int]:
    query = select(SupportGroup).order_by(SupportGroup.name, SupportGroup.id)
    if search:
        query = query.where(SupportGroup.name.ilike(like_pattern(search), escape="\\"))
    return await paginate_scalars(session, query, offset=offset, limit=limit)


async def get_group(session: AsyncSession, group_id: int) -> SupportGroup | None:
    return await session.get(SupportGroup, group_id)


async def members_of(session: AsyncSession, group_ids: Iterable[int]) -> dict[int, list[int]]:
    query = (
        select(SupportGroupMember.group_id, SupportGroupMember.user_id)
        .where(SupportGroupMember.group_id.in_(list(group_ids)))
        .order_by(SupportGroupMember.user_id)
    )
    found: dict[int, list[int]] = defaultdict(list)
    for group_id, user_id in await session.execute(query):
        found[group_id].append(user_id)
    return found


async def add_members(session: AsyncSession, group_id: int, user_ids: Sequence[int]) -> None:
    """Add users to a group; those in it already stay as they are."""
    if user_ids:
        rows = [{"group_id": group_id, "user_id": user_id} for user_id in user_ids]
        await session.execute(insert(SupportGroupMember).values(rows).on_conflict_do_nothing())


async def remove_member(session: AsyncSession, group_id: int, user_id: int) -> bool:
    statement = (
        delete(SupportGroupMember)
        .where(SupportGroupMember.group_id == group_id, SupportGroupMember.user_id == user_id)
        .returning(SupportGroupMember.user_id)
    )
    return (await session.execute(statement)).first() is not None


async def list_rules(
    session: AsyncSession, event_type: str | None, *, offset: int, limit: int
) -> tuple[list[IncidentRule], int]:
    query = select(IncidentRule).order_by(IncidentRule.name, IncidentRule.id)
    if event_type is not None:
        query = query.where(IncidentRule.event_type == event_type)
    return await paginate_scalars(session, query, offset=offset, limit=limit)


async def get_rule(session: AsyncSession, rule_id: int) -> IncidentRule | None:
    return await session.get(IncidentRule, rule_id)


async def ruled_event_types(session: AsyncSession) -> list[str]:
    """Every type an enabled rule is on: the engine's consumer skips the others."""
    query = select(IncidentRule.event_type).where(IncidentRule.enabled.is_(True)).distinct()
    return list((await session.scalars(query)).all())


async def enabled_rules_for(session: AsyncSession, event_type: str) -> list[IncidentRule]:
    query = (
        select(IncidentRule)
        .where(IncidentRule.event_type == event_type, IncidentRule.enabled.is_(True))
        .order_by(IncidentRule.id)
    )
    return list((await session.scalars(query)).all())


async def incident_for_event(session: AsyncSession, rule_id: int, event_id: str) -> int | None:
    query = select(Incident.id).where(Incident.rule_id == rule_id, Incident.source_event_id == event_id)
    return (await session.execute(query)).scalar_one_or_none()
