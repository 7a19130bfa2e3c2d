"""HTTP endpoints of the telemetry queries: `/api/v1/tenants/{tenant}/telemetry/...` and `.../rejected`.

Any signed-in role reads (viewer and up). Staff reach every tenant; a tenant's users reach only their own
(`TenantScope`: 403 for another tenant, 404 for an unknown one).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from mirante.web.csv_export import csv_download, csv_responses
from mirante.web.errors import UnsupportedMediaTypeError, ValidationFailedError
from mirante.web.pagination import Page
from telemetry_ingest.deps import AppSettings
from telemetry_ingest.queries import service
from telemetry_ingest.queries.buckets import BUCKET_ORIGIN, format_bucket
from telemetry_ingest.queries.export import csv_stream
from telemetry_ingest.queries.repository import ReadingFilter, RejectedFilter
from telemetry_ingest.queries.schemas import (
    AggregateOut,
    AggregatePageOut,
    AggregateParams,
    AggregateQueryOut,
    ExportParams,
    LatestOut,
    LatestParams,
    PageLinks,
    RangeOut,
    ReadingOut,
    ReadingPageOut,
    ReadingsParams,
    RejectedOut,
    RejectedParams,
    StatsOut,
    StatsParams,
    iso,
)
from telemetry_ingest.tenancy.deps import TenantScope

router = APIRouter(prefix="/api/v1/tenants/{tenant}", tags=["telemetry"])

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _range_out(filters: ReadingFilter) -> RangeOut:
    return RangeOut(from_=filters.start, to=filters.end, device=filters.device, sensor=filters.sensor)


def _pinned(filters: ReadingFilter) -> dict[str, str]:
    return {"from": iso(filters.start), "to": iso(filters.end)}


@router.get("/telemetry/aggregates", response_model=AggregatePageOut, response_model_by_alias=True)
async def get_aggregates(
    scope: TenantScope, request: Request, params: Annotated[AggregateParams, Query()]
) -> AggregatePageOut:
    """Readings aggregated per device, sensor and time bucket: avg, min, max, last, count, first and last ts.

    Buckets come newest first (`order=asc`: oldest first), then by device and sensor, as in the aggregates CSV
    export; each carries its sensor's `unit`. The range defaults to the 24 hours before now;
    `count` is the exact number of buckets. With `fill=null` or `fill=previous`, every bucket of the range
    appears for each series that has readings in it (gap filling). 422 for a bad bucket, a bucket that cuts the
    range into more than 100,000 buckets, gap filling beyond 1,000,000 buckets, or `from` not before `to`.
    """
    filters = service.reading_filter(params.device, params.sensor, params.from_, params.to)
    grid = service.bucket_grid_for(filters, params.bucket)
    links = PageLinks(request, params.page, params.limit, **_pinned(filters))
    page = await service.aggregates(
        scope.session, filters, grid, fill=params.fill, offset=links.offset, limit=params.limit, order=params.order
    )
    results = [AggregateOut.of(bucket, grid.stride) for bucket in page.buckets]
    return AggregatePageOut(
        count=page.total,
        next=links.next(len(results), page.total),
        previous=links.previous(),
        results=results,
        query=AggregateQueryOut(
            from_=filters.start,
            to=filters.end,
            device=filters.device,
            sensor=filters.sensor,
            bucket=format_bucket(grid.stride),
            bucket_seconds=int(grid.stride.total_seconds()),
            origin=BUCKET_ORIGIN,
            fill=params.fill,
            order=params.order,
        ),
    )


@router.get("/telemetry/readings", response_model=ReadingPageOut)
async def get_readings(
    scope: TenantScope, request: Request, params: Annotated[ReadingsParams, Query()]
) -> ReadingPageOut:
    """Raw readings, newest first (then by device and sensor), for drilling into a series or a bucket.

    The range defaults to the 24 hours before now; `count` is exact. 422 when `from` is not before `to`.
    """
    filters = service.reading_filter(params.device, params.sensor, params.from_, params.to)
    links = PageLinks(request, params.page, params.limit, **_pinned(filters))
    rows, count = await service.readings(scope.session, filters, offset=links.offset, limit=params.limit)
    results = [ReadingOut.model_validate(row) for row in rows]
    return ReadingPageOut(
        count=count,
        next=links.next(len(results), count),
        previous=links.previous(),
        results=results,
        query=_range_out(filters),
    )


@router.get("/telemetry/stats", response_model=StatsOut)
async def get_stats(scope: TenantScope, params: Annotated[StatsParams, Query()]) -> StatsOut:
    """Count, mean, minimum and maximum of the matching readings, with the time and value of the first and last.

    The range defaults to the 24 hours before now. No matching reading: `count` 0 and every other figure null.
    """
    filters = service.reading_filter(params.device, params.sensor, params.from_, params.to)
    stats = await service.stats(scope.session, filters)
    return StatsOut(
        from_=filters.start,
        to=filters.end,
        device=filters.device,
        sensor=filters.sensor,
        count=stats.count,
        avg=stats.avg,
        min=stats.min,
        max=stats.max,
        first_ts=stats.first.ts if stats.first else None,
        first_value=stats.first.value if stats.first else None,
        last_ts=stats.last.ts if stats.last else None,
        last_value=stats.last.value if stats.last else None,
    )


@router.get("/telemetry/latest", response_model=Page[LatestOut])
async def get_latest(scope: TenantScope, request: Request, params: Annotated[LatestParams, Query()]) -> Page[LatestOut]:
    """The newest reading (greatest ts, whatever the arrival order) of each device and sensor, by device then
    sensor; `count` is the exact number of series."""
    links = PageLinks(request, params.page, params.limit)
    rows, count = await service.latest(
        scope.session, device=params.device, sensor=params.sensor, offset=links.offset, limit=params.limit
    )
    results = [LatestOut.model_validate(row) for row in rows]
    return Page[LatestOut](
        count=count, next=links.next(len(results), count), previous=links.previous(), results=results
    )


@router.get("/rejected", response_model=Page[RejectedOut])
async def get_rejected(
    scope: TenantScope, request: Request, params: Annotated[RejectedParams, Query()]
) -> Page[RejectedOut]:
    """Readings and messages the ingest refused, with the reason, most recently received first.

    `from`/`to` bound the reception time (no bound by default); `reason` matches any part of the reason text.
    """
    filters = RejectedFilter(
        start=params.from_,
        end=params.to,
        device=params.device,
        sensor=params.sensor,
        source=params.source,
        reason=params.reason,
    )
    links = PageLinks(request, params.page, params.limit)
    rows, count = await service.rejected(scope.session, filters, offset=links.offset, limit=params.limit)
    results = [RejectedOut.model_validate(row) for row in rows]
    return Page[RejectedOut](
        count=count, next=links.next(len(results), count), previous=links.previous(), results=results
    )


def _body_errors(error: ValidationError) -> RequestValidationError:
    errors = [{**item, "loc": ("body", *item["loc"])} for item in error.errors()]
    return RequestValidationError(errors)


async def export_body(request: Request) -> ExportParams:
    """The export parameters of a POST: a form (`application/x-www-form-urlencoded` or `multipart/form-data`) or
    a JSON object, merged with any query-string parameters (a name given in both is refused)."""
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    fields: dict[str, Any]
    if content_type == "application/json":
        try:
            fields = json.loads(await request.body() or b"{}")
        except ValueError:
            raise ValidationFailedError("the body is not valid JSON") from None
        if not isinstance(fields, dict):
            raise ValidationFailedError("the JSON body must be an object of export parameters")
    elif content_type in FORM_TYPES:
        form = await request.form()
        if any(isinstance(value, UploadFile) for _name, value in form.multi_items()):
            raise ValidationFailedError("the export form takes no files")
        fields = dict(form.multi_items())
    elif content_type == "" and not await request.body():
        fields = {}
    else:
        raise UnsupportedMediaTypeError(
            f"send the export parameters as a form or as JSON, not {content_type or 'an untyped body'}"
        )
    both = sorted(set(fields) & set(request.query_params))
    if both:
        raise ValidationFailedError(f"{', '.join(both)} given both in the query string and in the body")
    try:
        return ExportParams.model_validate({**request.query_params, **fields})
    except ValidationError as error:
        raise _body_errors(error) from None


async def _export(
    scope: TenantScope, request: Request, settings: AppSettings, params: ExportParams
) -> StreamingResponse:
    filters = service.reading_filter(params.device, params.sensor, params.from_, params.to)
    plan = await service.plan_export(
        scope.session,
        scope.schema,
        filters,
        kind=params.kind,
        bucket=params.bucket,
        fill=params.fill,
        max_rows=settings.export_max_rows,
        order=params.order,
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return csv_download(
        csv_stream(request.app.state.engine, plan),
        f"telemetry-{scope.slug}-{params.kind}-{stamp}.csv",
        row_limit=settings.export_max_rows,
    )


EXPORT_RESPONSES = csv_responses(
    "the CSV file: a header line, one line per reading or bucket, and when the row cap cut it, "
    "a last line starting with `# truncated:`"
)


@router.get("/telemetry/export.csv", response_class=StreamingResponse, responses=EXPORT_RESPONSES)
async def export_csv(
    scope: TenantScope, request: Request, settings: AppSettings, params: Annotated[ExportParams, Query()]
) -> StreamingResponse:
    """The matching raw readings (`kind=raw`, series after series in time order) or aggregates
    (`kind=aggregates`, with `bucket`, `fill` and `order`: newest bucket first unless `order=asc`, then by device
    and sensor, the order of `GET telemetry/aggregates`) as a CSV download.

    Streamed, so any size works up to the `export_max_rows` setting (1,000,000 by default; header
    `X-Export-Row-Limit`); a file cut at the cap ends with a `# truncated:` line. Columns, raw: device_id, sensor,
    ts, value, unit, received_at; aggregates: device_id, sensor, bucket, bucket_end, avg, min, max, last, count,
    first_ts, last_ts, filled, unit (the sensor's). Times are ISO 8601 UTC; cells that would start a spreadsheet
    formula get a `'`.
    """
    return await _export(scope, request, settings, params)


@router.post(
    "/telemetry/export.csv",
    response_class=StreamingResponse,
    responses=EXPORT_RESPONSES,
    openapi_extra={
        "requestBody": {
            "content": {
                "application/x-www-form-urlencoded": {"schema": ExportParams.model_json_schema(by_alias=True)},
                "application/json": {"schema": ExportParams.model_json_schema(by_alias=True)},
            }
        }
    },
)
async def export_csv_post(
    scope: TenantScope, request: Request, settings: AppSettings, params: Annotated[ExportParams, Depends(export_body)]
) -> StreamingResponse:
    """The same export as `GET`, with the parameters sent as a form or a JSON object (for pages that post)."""
    return await _export(scope, request, settings, params)
