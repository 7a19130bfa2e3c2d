"""Tenants: the registry in schema `telemetry_ingest`, one schema `tenant_<slug>` each, and request scoping."""
