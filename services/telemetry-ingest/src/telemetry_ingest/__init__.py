"""telemetry-ingest: Multi-tenant MQTT telemetry into per-tenant Postgres schemas, time-bucketed queries, ops panel."""
