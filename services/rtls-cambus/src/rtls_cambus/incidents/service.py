"""Incidents, support groups and incident rules. Runs in the caller's transaction (flush only).

Status flow: open → acknowledged → in_progress → resolved → closed, one step at a time, each change kept in the
history with who made it and when, and the time of the latest entry into each status on the incident. A
resolved incident may be reopened (resolved → in_progress: the fix did not hold); closed is final. Any other
change, the same status included, is refused with 409. Every change of an incident emits
`rtls.incident.created` or `rtls.incident.updated` through the outbox, in the same transaction.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth.principal import Principal
from mirante.bus import Event, TypeInterest, emit
from mirante.web.errors import MissingReferenceError
from rtls_cambus import rows
from rtls_cambus.identifiers import SCHEMA, SOURCE
from rtls_cambus.incidents import repository
from rtls_cambus.incidents.content import sniff
from rtls_cambus.incidents.errors import (
    AttachmentEmptyError,
    AttachmentNotFoundError,
    AttachmentTooLargeError,
    AttachmentTypeRefusedError,
    IncidentNotFoundError,
    RuleExistsError,
    RuleNotFoundError,
    SupportGroupExistsError,
    SupportGroupNotFoundError,
    SupportMemberNotFoundError,
    TransitionRefusedError,
    UsersInactiveError,
    UsersNotFoundError,
)
from rtls_cambus.incidents.models import (
    Incident,
    IncidentAttachment,
    IncidentMessage,
    IncidentRule,
    IncidentStatusChange,
    SupportGroup,
)
from rtls_cambus.incidents.repository import IncidentFilters
from rtls_cambus.incidents.schemas import (
    IncidentCreate,
    IncidentRead,
    MessageRead,
    RuleCreate,
    Status,
    SupportGroupCreate,
    SupportGroupRead,
)

TRANSITIONS: Final[dict[Status, tuple[Status, ...]]] = {
    Status.open: (Status.acknowledged,),
    Status.acknowledged: (Status.in_progress,),
    Status.in_progress: (Status.resolved,),
    Status.resolved: (Status.closed, Status.in_progress),
    Status.closed: (),
}
_REFERENCES: Final = {
    "building_id": "building",
    "floor_id": "floor",
    "zone_id": "zone",
    "support_group_id": "support group",
}


@dataclass(frozen=True)
class Actor:
    """Who changes an incident: a user, an API key, a rule, or `chatwoot` (a message from its conversation)."""

    kind: str
    id: int | None
    name: str

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        return cls(principal.kind, principal.id, principal.name)


# Incidents


async def read_model(session: AsyncSession, incident: Incident) -> IncidentRead:
    assignees = await repository.assignees_of(session, [incident.id])
    return _read(incident, assignees.get(incident.id, []))


def _read(incident: Incident, assignee_ids: list[int]) -> IncidentRead:
    values = {name: getattr(incident, name) for name in IncidentRead.model_fields if name != "assignee_ids"}
    return IncidentRead(**values, assignee_ids=assignee_ids)


async def list_incidents(
    session: AsyncSession, filters: IncidentFilters, *, offset: int, limit: int
) -> tuple[list[IncidentRead], int]:
    found, count = await repository.list_incidents(session, filters, offset=offset, limit=limit)
    assignees = await repository.assignees_of(session, [incident.id for incident in found])
    return [_read(incident, assignees.get(incident.id, [])) for incident in found], count


async def get_incident(session: AsyncSession, incident_id: int, *, for_update: bool = False) -> Incident:
    incident = await repository.get_incident(session, incident_id, for_update=for_update)
    if incident is None:
        raise IncidentNotFoundError(incident_id)
    return incident


async def check_assignable(session: AsyncSession, user_ids: Sequence[int], field: str) -> list[int]:
    """`user_ids` (body field `field`) without repeats, in order; 404 naming those that are no users, 409 naming
    those that are inactive."""
    unique = list(dict.fromkeys(user_ids))
    states = await repository.user_states(session, unique) if unique else {}
    if missing := [user_id for user_id in unique if user_id not in states]:
        raise UsersNotFoundError(field, missing)
    if inactive := [user_id for user_id in unique if not states[user_id]]:
        raise UsersInactiveError(field, inactive)
    return unique


def _reference_error(constraint: str, values: dict[str, Any]) -> MissingReferenceError:
    for name, thing in _REFERENCES.items():
        if constraint.startswith(f"fk_incidents_{name}_"):
            return MissingReferenceError(thing, values.get(name), name)
    raise RuntimeError(f"incident write refused by {constraint}")


async def open_incident(
    session: AsyncSession,
    values: dict[str, Any],
    actor: Actor,
    assignee_ids: Sequence[int] = (),
) -> IncidentRead:
    """Open an incident from `values` (columns) with its first history entry and `rtls.incident.created`."""
    assignees = await check_assignable(session, assignee_ids, "assignee_ids")
    incident = Incident(**rows.column_values(values), status=Status.open.value, created_by=_user_id(actor))
    if constraint := await rows.add(session, incident):
        raise _reference_error(constraint, values)
    session.add(
        IncidentStatusChange(
            incident_id=incident.id,
            from_status=None,
            to_status=Status.open.value,
            changed_by=actor.id,
            changed_by_kind=actor.kind,
            changed_by_name=actor.name,
        )
    )
    await repository.set_assignees(session, incident.id, assignees)
    await session.flush()
    await session.refresh(incident)
    read = _read(incident, sorted(assignees))
    await _emit(session, "rtls.incident.created", read, actor, change="created")
    return read


def _user_id(actor: Actor) -> int | None:
    return actor.id if actor.kind == "user" else None


async def create_incident(session: AsyncSession, body: IncidentCreate, actor: Actor) -> IncidentRead:
    values = body.model_dump(exclude={"assignee_ids"})
    values["severity"] = body.severity.value
    return await open_incident(session, values, actor, body.assignee_ids)


async def update_incident(
    session: AsyncSession, incident_id: int, changes: dict[str, Any], actor: Actor
) -> IncidentRead:
    incident = await get_incident(session, incident_id, for_update=True)
    if "severity" in changes and changes["severity"] is not None:
        changes["severity"] = str(changes["severity"])
    if constraint := await rows.change(session, incident, changes):
        raise _reference_error(constraint, changes)
    await session.refresh(incident)
    read = await read_model(session, incident)
    await _emit(session, "rtls.incident.updated", read, actor, change="fields", fields=sorted(changes))
    return read


async def delete_incident(session: AsyncSession, incident_id: int) -> None:
    await rows.remove(session, await get_incident(session, incident_id))


async def change_status(
    session: AsyncSession, incident_id: int, wanted: Status, note: str | None, actor: Actor
) -> IncidentRead:
    incident = await get_incident(session, incident_id, for_update=True)
    current = Status(incident.status)
    allowed = TRANSITIONS[current]
    if wanted not in allowed:
        raise TransitionRefusedError(current.value, wanted.value, [status.value for status in allowed])
    incident.status = wanted.value
    setattr(incident, f"{wanted.value}_at", func.now())
    if current is Status.resolved and wanted is Status.in_progress:
        incident.resolved_at = None
    session.add(
        IncidentStatusChange(
            incident_id=incident.id,
            from_status=current.value,
            to_status=wanted.value,
            changed_by=actor.id,
            changed_by_kind=actor.kind,
            changed_by_name=actor.name,
            note=note or None,
        )
    )
    await session.flush()
    await session.refresh(incident)
    read = await read_model(session, incident)
    await _emit(session, "rtls.incident.updated", read, actor, change="status", previous_status=current.value)
    return read


async def history(session: AsyncSession, incident_id: int) -> list[IncidentStatusChange]:
    await get_incident(session, incident_id)
    return await repository.history(session, incident_id)


async def set_assignees(session: AsyncSession, incident_id: int, user_ids: Sequence[int], actor: Actor) -> IncidentRead:
    incident = await get_incident(session, incident_id, for_update=True)
    assignees = await check_assignable(session, user_ids, "user_ids")
    await repository.set_assignees(session, incident_id, assignees)
    incident.updated_at = func.now()
    await session.flush()
    await session.refresh(incident)
    read = _read(incident, sorted(assignees))
    await _emit(session, "rtls.incident.updated", read, actor, change="assignees")
    return read


async def _emit(session: AsyncSession, event_type: str, read: IncidentRead, actor: Actor, **extra: Any) -> None:
    data = {
        "incident": read.model_dump(mode="json"),
        "actor": {"kind": actor.kind, "id": actor.id, "name": actor.name},
        **extra,
    }
    await emit(session, SCHEMA, Event(source=SOURCE, type=event_type, subject=f"incident/{read.id}", data=data))


# Messages and attachments


async def post_message(session: AsyncSession, incident_id: int, body: str, actor: Actor) -> IncidentMessage:
    """Add to the thread; `rtls.incident.updated` (`change`: `message`) carries the message to the mirrors
    (Chatwoot), which tell their own messages apart by `author_kind`."""
    incident = await get_incident(session, incident_id)
    message = IncidentMessage(
        incident_id=incident_id, author_id=actor.id, author_kind=actor.kind, author_name=actor.name, body=body
    )
    session.add(message)
    await session.flush()
    await session.refresh(message)
    read = await read_model(session, incident)
    await _emit(
        session,
        "rtls.incident.updated",
        read,
        actor,
        change="message",
        message=MessageRead.model_validate(message).model_dump(mode="json"),
    )
    return message


async def list_messages(
    session: AsyncSession, incident_id: int, *, offset: int, limit: int
) -> tuple[list[IncidentMessage], int]:
    await get_incident(session, incident_id)
    return await repository.list_messages(session, incident_id, offset=offset, limit=limit)


def _display_name(name: str | None) -> str | None:
    if not name:
        return None
    # Only for display: the last path segment, printable characters, never used to store or serve the file.
    cleaned = "".join(char for char in name.replace("\\", "/").rsplit("/", 1)[-1] if char.isprintable())
    return cleaned.strip()[:255] or None


async def add_attachment(
    session: AsyncSession, incident_id: int, data: bytes, original_name: str | None, limit: int, actor: Actor
) -> IncidentAttachment:
    await get_incident(session, incident_id)
    if len(data) > limit:
        raise AttachmentTooLargeError(limit)
    if not data:
        raise AttachmentEmptyError()
    kind = sniff(data)
    if kind is None:
        raise AttachmentTypeRefusedError()
    content_type, extension = kind
    attachment = IncidentAttachment(
        incident_id=incident_id,
        stored_name=f"{uuid.uuid4().hex}.{extension}",
        original_name=_display_name(original_name),
        content_type=content_type,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        content=data,
        uploaded_by=actor.id,
        uploaded_by_name=actor.name,
    )
    session.add(attachment)
    await session.flush()
    await session.refresh(attachment)
    return attachment


async def list_attachments(
    session: AsyncSession, incident_id: int, *, offset: int, limit: int
) -> tuple[list[IncidentAttachment], int]:
    await get_incident(session, incident_id)
    return await repository.list_attachments(session, incident_id, offset=offset, limit=limit)


async def get_attachment(
    session: AsyncSession, incident_id: int, attachment_id: int, *, with_content: bool = False
) -> IncidentAttachment:
    await get_incident(session, incident_id)
    attachment = await repository.get_attachment(session, incident_id, attachment_id, with_content=with_content)
    if attachment is None:
        raise AttachmentNotFoundError(incident_id, attachment_id)
    return attachment


async def delete_attachment(session: AsyncSession, incident_id: int, attachment_id: int) -> None:
    await session.delete(await get_attachment(session, incident_id, attachment_id))


# Support groups


async def group_read(session: AsyncSession, group: SupportGroup) -> SupportGroupRead:
    members = await repository.members_of(session, [group.id])
    return _group_read(group, members.get(group.id, []))


def _group_read(group: SupportGroup, member_ids: list[int]) -> SupportGroupRead:
    values = {name: getattr(group, name) for name in SupportGroupRead.model_fields if name != "member_ids"}
    return SupportGroupRead(**values, member_ids=member_ids)


async def list_groups(
    session: AsyncSession, search: str | None, *, offset: int, limit: int
) -> tuple[list[SupportGroupRead], int]:
    found, count = await repository.list_groups(session, search, offset=offset, limit=limit)
    members = await repository.members_of(session, [group.id for group in found])
    return [_group_read(group, members.get(group.id, [])) for group in found], count


async def get_group(session: AsyncSession, group_id: int) -> SupportGroup:
    group = await repository.get_group(session, group_id)
    if group is None:
        raise SupportGroupNotFoundError(group_id)
    return group


async def create_group(session: AsyncSession, body: SupportGroupCreate) -> SupportGroupRead:
    members = await check_assignable(session, body.member_ids, "member_ids")
    group = SupportGroup(**rows.column_values(body.model_dump(exclude={"member_ids"})))
    if await rows.add(session, group):
        raise SupportGroupExistsError()
    await repository.add_members(session, group.id, members)
    await session.refresh(group)
    return await group_read(session, group)


async def update_group(session: AsyncSession, group_id: int, changes: dict[str, Any]) -> SupportGroupRead:
    group = await get_group(session, group_id)
    if await rows.change(session, group, changes):
        raise SupportGroupExistsError()
    await session.refresh(group)
    return await group_read(session, group)


async def delete_group(session: AsyncSession, group_id: int) -> None:
    await rows.remove(session, await get_group(session, group_id))


async def add_member(session: AsyncSession, group_id: int, user_id: int) -> None:
    await get_group(session, group_id)
    await check_assignable(session, [user_id], "user_id")
    await repository.add_members(session, group_id, [user_id])


async def remove_member(session: AsyncSession, group_id: int, user_id: int) -> None:
    await get_group(session, group_id)
    if not await repository.remove_member(session, group_id, user_id):
        raise SupportMemberNotFoundError(group_id, user_id)


# Incident rules


async def list_rules(
    session: AsyncSession, event_type: str | None, *, offset: int, limit: int
) -> tuple[list[IncidentRule], int]:
    return await repository.list_rules(session, event_type, offset=offset, limit=limit)


async def get_rule(session: AsyncSession, rule_id: int) -> IncidentRule:
    rule = await repository.get_rule(session, rule_id)
    if rule is None:
        raise RuleNotFoundError(rule_id)
    return rule


def _rule_constraint_error(constraint: str, values: dict[str, Any]) -> Exception:
    if constraint.startswith("fk_incident_rules_support_group_id"):
        return MissingReferenceError("support group", values.get("support_group_id"), "support_group_id")
    return RuleExistsError()


async def create_rule(session: AsyncSession, body: RuleCreate, interest: TypeInterest) -> IncidentRule:
    """A new rule; it applies to every event this replica's engine reads once it is committed."""
    values = body.model_dump(mode="json")
    rule = IncidentRule(**values)
    if constraint := await rows.add(session, rule):
        raise _rule_constraint_error(constraint, values)
    interest.bump_after_commit(session)
    await session.refresh(rule)
    return rule


async def update_rule(
    session: AsyncSession, rule_id: int, changes: dict[str, Any], interest: TypeInterest
) -> IncidentRule:
    rule = await get_rule(session, rule_id)
    if "severity" in changes and changes["severity"] is not None:
        changes["severity"] = str(changes["severity"])
    if constraint := await rows.change(session, rule, changes):
        raise _rule_constraint_error(constraint, changes)
    if "event_type" in changes or "enabled" in changes:
        interest.bump_after_commit(session)
    await session.refresh(rule)
    return rule


async def delete_rule(session: AsyncSession, rule_id: int) -> None:
    await rows.remove(session, await get_rule(session, rule_id))
