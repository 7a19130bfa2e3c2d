"""Prometheus metrics of the ingest, on the app's registry (served at /metrics).

Labels take fixed words only (message kinds, reason classes), never what publishers send. Counters move once
what they count is committed.
"""

from __future__ import annotations

from collections import Counter as Tally

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge

from mirante.mqtt import SubscriberRunner


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages = Counter(
            "rtls_ingest_messages_total", "MQTT messages handled, per kind", ["kind"], registry=registry
        )
        self.readings = Counter(
            "rtls_ingest_readings_stored_total", "Beacon readings stored in the collection logs", registry=registry
        )
        self.rejected = Counter(
            "rtls_ingest_rejected_total",
            "Messages or readings rejected (and kept in rejected_messages), per reason class",
            ["reason"],
            registry=registry,
        )
        self.subscriber_connected = Gauge(
            "rtls_mqtt_subscriber_connected", "1 while the MQTT ingest subscriber is connected", registry=registry
        )
        self.subscriber_acked = Gauge(
            "rtls_mqtt_subscriber_acked_messages",
            "Messages acknowledged (committed) by the MQTT ingest subscriber since it started",
            registry=registry,
        )

    def record(self, kinds: Tally[str], readings: int, rejected: Tally[str]) -> None:
        for kind, count in kinds.items():
            self.messages.labels(kind).inc(count)
        if readings:
            self.readings.inc(readings)
        for reason, count in rejected.items():
            self.rejected.labels(reason).inc(count)

    def watch(self, runner: SubscriberRunner | None) -> None:
        if runner is None:
            self.subscriber_connected.set_function(lambda: 0.0)
            self.subscriber_acked.set_function(lambda: 0.0)
            return
        self.subscriber_connected.set_function(lambda: float(runner.connected.is_set()))
        self.subscriber_acked.set_function(lambda: float(runner.acked))


def ingest_metrics(app: FastAPI) -> IngestMetrics:
    """The app's ingest metrics, created on first use on its registry."""
    metrics: IngestMetrics | None = getattr(app.state, "ingest_metrics", None)
    if metrics is None:
        metrics = app.state.ingest_metrics = IngestMetrics(app.state.metrics_registry)
    return metrics
