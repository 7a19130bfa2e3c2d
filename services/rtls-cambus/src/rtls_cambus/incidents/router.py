"""HTTP endpoints of incidents, support groups and incident rules: `/api/v1/incidents[...]`,
`/api/v1/support-groups[...]`, `/api/v1/incident-rules[...]`.

Callers not bound to a tenant (`deps.Suite*`: rules open incidents from any service's events, every tenant's
among them) read, attachments included; operators work incidents (open, edit, change status, assign, write
messages, attach files); admins manage support groups and incident rules, and delete incidents.
An attachment is served as a download (`Content-Disposition: attachment` under its server-made name) with
`nosniff` and a sandboxing CSP, so it never runs as a page of the API's origin.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, File, Query, Response, UploadFile, status

from mirante.db import Session
from mirante.web.pagination import Page, Pagination
from rtls_cambus.conditions import EventType
from rtls_cambus.deps import AppSettings, SuiteAdmin, SuiteOperator, SuiteViewer
from rtls_cambus.fields import Search, search_text
from rtls_cambus.incidents import service
from rtls_cambus.incidents.content import ATTACHMENT_CONTENT_TYPES
from rtls_cambus.incidents.deps import RuleInterest
from rtls_cambus.incidents.errors import AttachmentTooLargeError
from rtls_cambus.incidents.repository import IncidentFilters
from rtls_cambus.incidents.schemas import (
    AssigneeFilter,
    AssigneesPut,
    AttachmentId,
    AttachmentRead,
    GroupFilter,
    IncidentCreate,
    IncidentId,
    IncidentRead,
    IncidentUpdate,
    MemberAdd,
    MessageCreate,
    MessageRead,
    RuleCreate,
    RuleId,
    RuleRead,
    RuleUpdate,
    SeverityFilter,
    StatusChange,
    StatusChangeRead,
    StatusFilter,
    SupportGroupCreate,
    SupportGroupId,
    SupportGroupRead,
    SupportGroupUpdate,
    UserId,
)
from rtls_cambus.incidents.service import Actor

ATTACHMENTS_PATH_PREFIX: Final = "/api/v1/incidents/"
"""Uploads go to `/api/v1/incidents/{id}/attachments`; the body limit is raised by prefix, for the routes below."""

router = APIRouter(prefix="/api/v1")

_PLACE_AND_GROUP: Final = "no building, floor, zone or support group of that id (`details.field` says which)"
_USERS: Final[dict[int | str, dict[str, Any]]] = {
    404: {"description": "no user of one of those ids (`details.user_ids`)"},
    409: {"description": "one of those users is inactive (`details.user_ids`)"},
}

_DOWNLOAD_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private, no-store",
}


@router.get("/incidents", tags=["incidents"])
async def list_incidents(
    session: Session,
    principal: SuiteViewer,
    pagination: Pagination,
    status: StatusFilter = None,
    severity: SeverityFilter = None,
    support_group_id: GroupFilter = None,
    assignee_id: AssigneeFilter = None,
    q: Search = None,
) -> Page[IncidentRead]:
    """Incidents, newest first, by status, severity, support group, assignee or part of the title."""
    filters = IncidentFilters(
        status=status.value if status else None,
        severity=severity.value if severity else None,
        support_group_id=support_group_id,
        assignee_id=assignee_id,
        search=search_text(q),
    )
    found, count = await service.list_incidents(session, filters, offset=pagination.offset, limit=pagination.limit)
    return pagination.build(found, count)


@router.post(
    "/incidents",
    tags=["incidents"],
    status_code=status.HTTP_201_CREATED,
    responses={404: {"description": f"{_PLACE_AND_GROUP}, or no user among `assignee_ids`"}, 409: _USERS[409]},
)
async def create_incident(
    session: Session, principal: SuiteOperator, body: IncidentCreate, response: Response
) -> IncidentRead:
    """Open an incident (operators); it starts `open`."""
    incident = await service.create_incident(session, body, Actor.of(principal))
    response.headers["Location"] = f"/api/v1/incidents/{incident.id}"
    return incident


@router.get("/incidents/{incident_id}", tags=["incidents"])
async def get_incident(session: Session, principal: SuiteViewer, incident_id: IncidentId) -> IncidentRead:
    return await service.read_model(session, await service.get_incident(session, incident_id))


@router.patch("/incidents/{incident_id}", tags=["incidents"], responses={404: {"description": _PLACE_AND_GROUP}})
async def update_incident(
    session: Session, principal: SuiteOperator, incident_id: IncidentId, body: IncidentUpdate
) -> IncidentRead:
    """Change title, description, severity, location or support group (operators); omitted fields stay."""
    return await service.update_incident(session, incident_id, body.changes(), Actor.of(principal))


@router.delete("/incidents/{incident_id}", tags=["incidents"], status_code=status.HTTP_204_NO_CONTENT)
async def delete_incident(session: Session, principal: SuiteAdmin, incident_id: IncidentId) -> None:
    """Delete an incident with its history, messages and attachments (admins); close it to keep it."""
    await service.delete_incident(session, incident_id)


@router.post(
    "/incidents/{incident_id}/status",
    tags=["incidents"],
    responses={409: {"description": "the change is not allowed from the current status"}},
)
async def change_incident_status(
    session: Session, principal: SuiteOperator, incident_id: IncidentId, body: StatusChange
) -> IncidentRead:
    """Move the incident along its flow (operators): open → acknowledged → in_progress → resolved → closed, or
    resolved → in_progress to reopen it."""
    return await service.change_status(session, incident_id, body.status, body.note, Actor.of(principal))


@router.get("/incidents/{incident_id}/history", tags=["incidents"])
async def incident_history(session: Session, principal: SuiteViewer, incident_id: IncidentId) -> list[StatusChangeRead]:
    """Every status the incident went through, oldest first, with who and when."""
    return [StatusChangeRead.model_validate(change) for change in await service.history(session, incident_id)]


@router.put("/incidents/{incident_id}/assignees", tags=["incidents"], responses=_USERS)
async def put_incident_assignees(
    session: Session, principal: SuiteOperator, incident_id: IncidentId, body: AssigneesPut
) -> IncidentRead:
    """Replace the assignees (operators): ids of active users of the identity API."""
    return await service.set_assignees(session, incident_id, body.user_ids, Actor.of(principal))


@router.get("/incidents/{incident_id}/messages", tags=["incidents"])
async def list_incident_messages(
    session: Session, principal: SuiteViewer, pagination: Pagination, incident_id: IncidentId
) -> Page[MessageRead]:
    """The incident's thread, oldest first."""
    found, count = await service.list_messages(session, incident_id, offset=pagination.offset, limit=pagination.limit)
    return pagination.build([MessageRead.model_validate(message) for message in found], count)


@router.post("/incidents/{incident_id}/messages", tags=["incidents"], status_code=status.HTTP_201_CREATED)
async def post_incident_message(
    session: Session, principal: SuiteOperator, incident_id: IncidentId, body: MessageCreate
) -> MessageRead:
    """Write to the incident's thread (operators)."""
    message = await service.post_message(session, incident_id, body.body, Actor.of(principal))
    return MessageRead.model_validate(message)


@router.get("/incidents/{incident_id}/attachments", tags=["incidents"])
async def list_incident_attachments(
    session: Session, principal: SuiteViewer, pagination: Pagination, incident_id: IncidentId
) -> Page[AttachmentRead]:
    found, count = await service.list_attachments(
        session, incident_id, offset=pagination.offset, limit=pagination.limit
    )
    return pagination.build([AttachmentRead.model_validate(attachment) for attachment in found], count)


@router.post(
    "/incidents/{incident_id}/attachments",
    tags=["incidents"],
    status_code=status.HTTP_201_CREATED,
    responses={
        413: {"description": "too large"},
        415: {"description": "not an accepted type"},
        422: {"description": "an empty file"},
    },
)
async def upload_incident_attachment(
    session: Session,
    principal: SuiteOperator,
    settings: AppSettings,
    incident_id: IncidentId,
    file: Annotated[UploadFile, File(description="PNG, JPEG, GIF, WebP, PDF or UTF-8 text, judged by content")],
) -> AttachmentRead:
    """Attach a file (operators). It is stored under a name the server makes; the uploaded name is kept for
    display only."""
    limit = settings.incident_attachment_max_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise AttachmentTooLargeError(limit)
    attachment = await service.add_attachment(session, incident_id, data, file.filename, limit, Actor.of(principal))
    return AttachmentRead.model_validate(attachment)


@router.get(
    "/incidents/{incident_id}/attachments/{attachment_id}",
    tags=["incidents"],
    response_class=Response,
    responses={
        200: {
            "description": "the file, with the type its content was judged to be",
            "content": {content_type: {} for content_type in ATTACHMENT_CONTENT_TYPES},
        }
    },
)
async def download_incident_attachment(
    session: Session, principal: SuiteViewer, incident_id: IncidentId, attachment_id: AttachmentId
) -> Response:
    """The attached file, as a download, to signed-in callers only."""
    attachment = await service.get_attachment(session, incident_id, attachment_id, with_content=True)
    headers = {
        **_DOWNLOAD_HEADERS,
        "Content-Disposition": f'attachment; filename="{attachment.stored_name}"',
        "ETag": f'"{attachment.sha256}"',
    }
    return Response(content=attachment.content, media_type=attachment.content_type, headers=headers)


@router.delete(
    "/incidents/{incident_id}/attachments/{attachment_id}",
    tags=["incidents"],
    status_code=status.HTTP_204_NO_CONTENT,
)
async def delete_incident_attachment(
    session: Session, principal: SuiteOperator, incident_id: IncidentId, attachment_id: AttachmentId
) -> None:
    await service.delete_attachment(session, incident_id, attachment_id)


@router.get("/support-groups", tags=["support groups"])
async def list_support_groups(
    session: Session, principal: SuiteViewer, pagination: Pagination, q: Search = None
) -> Page[SupportGroupRead]:
    found, count = await service.list_groups(session, search_text(q), offset=pagination.offset, limit=pagination.limit)
    return pagination.build(found, count)


@router.post(
    "/support-groups",
    tags=["support groups"],
    status_code=status.HTTP_201_CREATED,
    responses={**_USERS, 409: {"description": "name taken, or a member is inactive (`details.user_ids`)"}},
)
async def create_support_group(
    session: Session, principal: SuiteAdmin, body: SupportGroupCreate, response: Response
) -> SupportGroupRead:
    group = await service.create_group(session, body)
    response.headers["Location"] = f"/api/v1/support-groups/{group.id}"
    return group


@router.get("/support-groups/{group_id}", tags=["support groups"])
async def get_support_group(session: Session, principal: SuiteViewer, group_id: SupportGroupId) -> SupportGroupRead:
    return await service.group_read(session, await service.get_group(session, group_id))


@router.patch("/support-groups/{group_id}", tags=["support groups"], responses={409: {"description": "name taken"}})
async def update_support_group(
    session: Session, principal: SuiteAdmin, group_id: SupportGroupId, body: SupportGroupUpdate
) -> SupportGroupRead:
    return await service.update_group(session, group_id, body.changes())


@router.delete("/support-groups/{group_id}", tags=["support groups"], status_code=status.HTTP_204_NO_CONTENT)
async def delete_support_group(session: Session, principal: SuiteAdmin, group_id: SupportGroupId) -> None:
    """Delete a group (admins); its incidents and rules keep going without one."""
    await service.delete_group(session, group_id)


@router.post(
    "/support-groups/{group_id}/members",
    tags=["support groups"],
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        404: {"description": "no such group, or no user `user_id`"},
        409: {"description": "the user is inactive"},
    },
)
async def add_support_group_member(
    session: Session, principal: SuiteAdmin, group_id: SupportGroupId, body: MemberAdd
) -> None:
    """Add an active user to the group (admins); adding a member again changes nothing."""
    await service.add_member(session, group_id, body.user_id)


@router.delete(
    "/support-groups/{group_id}/members/{user_id}",
    tags=["support groups"],
    status_code=status.HTTP_204_NO_CONTENT,
)
async def remove_support_group_member(
    session: Session, principal: SuiteAdmin, group_id: SupportGroupId, user_id: UserId
) -> None:
    await service.remove_member(session, group_id, user_id)


@router.get("/incident-rules", tags=["incident rules"])
async def list_incident_rules(
    session: Session,
    principal: SuiteViewer,
    pagination: Pagination,
    event_type: Annotated[EventType | None, Query(description="only rules on this event type")] = None,
) -> Page[RuleRead]:
    found, count = await service.list_rules(session, event_type, offset=pagination.offset, limit=pagination.limit)
    return pagination.build([RuleRead.model_validate(rule) for rule in found], count)


@router.post(
    "/incident-rules",
    tags=["incident rules"],
    status_code=status.HTTP_201_CREATED,
    responses={404: {"description": "no support group `support_group_id`"}, 409: {"description": "name taken"}},
)
async def create_incident_rule(
    session: Session, principal: SuiteAdmin, interest: RuleInterest, body: RuleCreate, response: Response
) -> RuleRead:
    """A rule that opens an incident for each event of its type whose data meets its conditions (admins)."""
    rule = await service.create_rule(session, body, interest)
    response.headers["Location"] = f"/api/v1/incident-rules/{rule.id}"
    return RuleRead.model_validate(rule)


@router.get("/incident-rules/{rule_id}", tags=["incident rules"])
async def get_incident_rule(session: Session, principal: SuiteViewer, rule_id: RuleId) -> RuleRead:
    return RuleRead.model_validate(await service.get_rule(session, rule_id))


@router.patch(
    "/incident-rules/{rule_id}",
    tags=["incident rules"],
    responses={
        404: {"description": "no such rule, or no support group `support_group_id`"},
        409: {"description": "name taken"},
    },
)
async def update_incident_rule(
    session: Session, principal: SuiteAdmin, interest: RuleInterest, rule_id: RuleId, body: RuleUpdate
) -> RuleRead:
    return RuleRead.model_validate(await service.update_rule(session, rule_id, body.changes(), interest))


@router.delete("/incident-rules/{rule_id}", tags=["incident rules"], status_code=status.HTTP_204_NO_CONTENT)
async def delete_incident_rule(session: Session, principal: SuiteAdmin, rule_id: RuleId) -> None:
    """Delete a rule (admins); the incidents it opened stay."""
    await service.delete_rule(session, rule_id)
