"""The staff-only ops panel: web pages that query any tenant's telemetry through the tenant API."""
