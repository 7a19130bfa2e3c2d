"""The ops panel's pages: `/ops/` (tenant and filters), `/ops/telemetry` (aggregates), `/ops/telemetry/drilldown`.

The pages are shells served by `mirante.web.pages`; their scripts call the tenant API
(`/api/v1/tenants/{tenant}/telemetry/...`, `/api/v1/tenants/{tenant}/devices`) with the signed-in user's bearer
token, so the API's own rules decide what they show: staff reach every tenant, anyone else gets 403 from the API,
and the pages refuse non-staff accounts before asking it anything. Filters live in the query string under the
names the panel has always used (`tenant_slug`, `device_id`, `sensor_id`, `from`, `to`, `bucket`, `limit`), so
bookmarked links keep working.
"""

from __future__ import annotations

from pathlib import Path

from mirante.web.pages import PageKit

OPS_HOME = "/ops/"

pages = PageKit(Path(__file__).resolve().parent, title="Telemetry ops", home=OPS_HOME)
router = pages.router

pages.add_page(OPS_HOME, "ops-home", "Ops panel: the tenant selector and the telemetry filters (staff only).")
pages.add_page(
    "/ops/telemetry",
    "ops-telemetry",
    "Ops panel: a tenant's aggregated telemetry, page by page, with drill-down links and CSV export (staff only).",
)
pages.add_page(
    "/ops/telemetry/drilldown",
    "ops-drilldown",
    "Ops panel: one sensor's latest readings, their statistics and a time-series chart (staff only).",
)
