"""The dashboard: fleet and queue totals, system health and recent performance (`/api/v1/dashboard/`)."""
