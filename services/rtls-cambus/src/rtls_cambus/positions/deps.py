"""Dependencies of positions: the engine's parameters from the app's settings, and the query filters of the
endpoints, each set read once here and handed to the service as the repository's filter object."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from rtls_cambus.deps import AppSettings
from rtls_cambus.fields import BuildingFilter, FloorFilter
from rtls_cambus.positions.engine import EngineParams
from rtls_cambus.positions.repository import HistoryFilters, PositionFilters, SessionFilters
from rtls_cambus.positions.schemas import (
    From,
    GroupFilter,
    OpenFilter,
    PersonFilter,
    StatusFilter,
    TagFilter,
    To,
    ZoneFilter,
)
from rtls_cambus.positions.service import engine_params


async def get_engine_params(settings: AppSettings) -> EngineParams:
    return engine_params(settings)


Params = Annotated[EngineParams, Depends(get_engine_params)]


async def current_filters(
    building_id: BuildingFilter = None,
    floor_id: FloorFilter = None,
    zone_id: ZoneFilter = None,
    group_id: GroupFilter = None,
    person_id: PersonFilter = None,
    status: StatusFilter = None,
) -> PositionFilters:
    return PositionFilters(
        building_id=building_id,
        floor_id=floor_id,
        zone_id=zone_id,
        group_id=group_id,
        person_id=person_id,
        status=status,
    )


async def history_filters(
    person_id: PersonFilter = None,
    tag_id: TagFilter = None,
    zone_id: ZoneFilter = None,
    floor_id: FloorFilter = None,
    building_id: BuildingFilter = None,
    since: From = None,
    until: To = None,
) -> HistoryFilters:
    return HistoryFilters(
        person_id=person_id,
        tag_id=tag_id,
        zone_id=zone_id,
        floor_id=floor_id,
        building_id=building_id,
        since=since,
        until=until,
    )


async def session_filters(
    history: Annotated[HistoryFilters, Depends(history_filters)], open: OpenFilter = None
) -> SessionFilters:
    return SessionFilters(**vars(history), open=open)


CurrentFilters = Annotated[PositionFilters, Depends(current_filters)]
"""`building_id`, `floor_id`, `zone_id`, `group_id`, `person_id`, `status` of `GET /positions/current`."""
HistoryQuery = Annotated[HistoryFilters, Depends(history_filters)]
"""Who, where and `from`/`to`: the filters of position history."""
SessionQuery = Annotated[SessionFilters, Depends(session_filters)]
"""The history's filters and `open`: the filters of presence sessions."""
