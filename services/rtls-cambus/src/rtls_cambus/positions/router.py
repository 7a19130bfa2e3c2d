"""HTTP endpoints of positions, presence and the live feed.

Every signed-in caller (viewer and up) reads. The feed is opened with a ticket (see `feed.py`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from mirante.db import Session
from mirante.types import Text
from mirante.web.pagination import Page, Pagination
from rtls_cambus.deps import AppSettings, Viewer
from rtls_cambus.fields import BuildingFilter, FloorFilter
from rtls_cambus.people.schemas import PersonId
from rtls_cambus.positions import feed, service
from rtls_cambus.positions.deps import CurrentFilters, HistoryQuery, Params, SessionQuery
from rtls_cambus.positions.schemas import (
    CurrentPosition,
    FeedTicket,
    FreshFilter,
    GatewayTags,
    PersonLocation,
    PositionChangeRead,
    PresenceSessionRead,
)

router = APIRouter(prefix="/api/v1", tags=["positions"])
FEED_PATH = "/api/v1/positions/feed"


@router.get("/positions/current")
async def current_positions(
    session: Session,
    principal: Viewer,
    pagination: Pagination,
    params: Params,
    filters: CurrentFilters,
    fresh: FreshFilter = None,
) -> Page[CurrentPosition]:
    """Every tag's current position (one row per tag that has been heard), by tag id."""
    found, count = await service.current_positions(
        session, filters, fresh, params, offset=pagination.offset, limit=pagination.limit
    )
    return pagination.build(found, count)


@router.get("/positions/by-device")
async def positions_by_device(
    session: Session,
    principal: Viewer,
    pagination: Pagination,
    params: Params,
    building_id: BuildingFilter = None,
    floor_id: FloorFilter = None,
) -> Page[GatewayTags]:
    """Placed gateways with the tags each has heard within the freshness window (smoothed RSSI, strongest
    first; `placed_here` when the engine puts the tag at that gateway)."""
    found, count = await service.tags_by_gateway(
        session, building_id, floor_id, params, offset=pagination.offset, limit=pagination.limit
    )
    return pagination.build(found, count)


@router.get("/people/{person_id}/current-location", responses={404: {"description": "no such person"}})
async def person_current_location(
    session: Session, principal: Viewer, params: Params, person_id: PersonId
) -> PersonLocation:
    """Where the person is now: the freshest position of the tags they carry, or `unknown`."""
    return await service.person_location(session, person_id, params)


@router.get("/positions/history")
async def position_history(
    session: Session, principal: Viewer, pagination: Pagination, filters: HistoryQuery
) -> Page[PositionChangeRead]:
    """Position changes (not every reading) in `[from, to)`, oldest first: a person's trail with `person_id`."""
    found, count = await service.position_history(session, filters, offset=pagination.offset, limit=pagination.limit)
    return pagination.build(found, count)


@router.get("/presence-sessions")
async def presence_sessions(
    session: Session, principal: Viewer, pagination: Pagination, filters: SessionQuery
) -> Page[PresenceSessionRead]:
    """Who was in which zone from when to when, newest first; `from`/`to` keep sessions overlapping the period."""
    found, count = await service.presence_sessions(session, filters, offset=pagination.offset, limit=pagination.limit)
    return pagination.build(found, count)


@router.post("/positions/feed-tickets", status_code=201)
async def create_feed_ticket(request: Request, principal: Viewer, settings: AppSettings) -> FeedTicket:
    """A one-use ticket to open the live feed with (`EventSource` cannot send the bearer token)."""
    ticket = await feed.issue_ticket(request.app.state.redis, principal, settings.feed_ticket_seconds)
    return FeedTicket(ticket=ticket, expires_in=settings.feed_ticket_seconds, url=f"{FEED_PATH}?ticket={ticket}")


@router.get(
    "/positions/feed",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, 401: {"description": "unknown, used or expired ticket"}},
)
async def live_feed(
    request: Request,
    settings: AppSettings,
    ticket: Annotated[Text, Query(max_length=100, description="from POST /positions/feed-tickets")],
    last_event_id: Annotated[Text | None, Header(max_length=50)] = None,
) -> StreamingResponse:
    """Server-Sent Events: `rtls.position.*`, `rtls.person.*` and device events as they are published, each with
    the stream entry id as its `id` (a reconnect with `Last-Event-ID` resumes after it)."""
    await feed.redeem_ticket(request.app.state.redis, ticket)
    events = feed.stream_events(
        request,
        request.app.state.redis,
        request.app.state.spec.stream,
        feed.start_id(last_event_id),
        settings.feed_max_seconds,
    )
    return StreamingResponse(
        events, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
