"""Tenant-scoped telemetry queries: bucketed aggregates with gap filling, raw readings, statistics, latest values,
rejected readings and streamed CSV exports, under `/api/v1/tenants/{tenant}/telemetry/` and `.../rejected`."""
