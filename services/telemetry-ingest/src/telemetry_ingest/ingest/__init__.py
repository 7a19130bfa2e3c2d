"""Telemetry ingest: payload parsing, batched writes, the MQTT pipeline and `POST /ingest`."""
