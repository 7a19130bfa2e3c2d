"""Prometheus metrics of the write path, on the app's registry (`app.state.metrics_registry`, served at /metrics).

Readings are counted per tenant: `received = written + duplicate + rejected`. Rejections carry a reason class
(`ingest.reasons`), never the free-text reason, and unrouted messages carry no tenant label at all, so that no
label takes values from what publishers send. Counters move only once what they count is committed (MQTT) or
flushed in the request's transaction (HTTP).
"""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from mirante.mqtt import SubscriberRunner
from telemetry_ingest.ingest.writer import Source, WriteResult

BATCH_SIZE_BUCKETS: Final = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000)
WRITE_SECONDS_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class IngestMetrics:
    """The counters, histograms and subscriber gauges of telemetry ingest."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.received = Counter(
            "telemetry_readings_received_total",
            "Readings received (accepted or rejected) per tenant",
            ["tenant"],
            registry=registry,
        )
        self.written = Counter(
            "telemetry_readings_written_total", "Readings stored per tenant", ["tenant"], registry=registry
        )
        self.duplicate = Counter(
            "telemetry_readings_duplicate_total",
            "Readings already stored (same device, sensor and time), e.g. redelivered, per tenant",
            ["tenant"],
            registry=registry,
        )
        self.rejected = Counter(
            "telemetry_readings_rejected_total",
            "Readings rejected per tenant and reason class",
            ["tenant", "reason"],
            registry=registry,
        )
        self.unrouted = Counter(
            "telemetry_messages_unrouted_total",
            "Messages naming no known tenant (or another tenant than the caller's), per source and reason class",
            ["source", "reason"],
            registry=registry,
        )
        self.batch_readings = Histogram(
            "telemetry_ingest_batch_readings",
            "Readings received per written batch",
            ["source"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.write_seconds = Histogram(
            "telemetry_ingest_write_seconds",
            "Time to write one batch, commit included for MQTT",
            ["source"],
            buckets=WRITE_SECONDS_BUCKETS,
            registry=registry,
        )
        self.subscriber_connected = Gauge(
            "telemetry_mqtt_subscriber_connected", "1 while the MQTT ingest subscriber is connected", registry=registry
        )
        self.subscriber_received = Gauge(
            "telemetry_mqtt_subscriber_received_messages",
            "Messages received by the MQTT ingest subscriber since it started",
            registry=registry,
        )
        self.subscriber_acked = Gauge(
            "telemetry_mqtt_subscriber_acked_messages",
            "Messages acknowledged (stored) by the MQTT ingest subscriber since it started",
            registry=registry,
        )
        self.subscriber_failures = Gauge(
            "telemetry_mqtt_subscriber_failed_batches",
            "Batches the MQTT ingest subscriber failed to store (they are delivered again) since it started",
            registry=registry,
        )
        self.subscriber_reconnects = Gauge(
            "telemetry_mqtt_subscriber_reconnects",
            "Reconnections of the MQTT ingest subscriber since it started",
            registry=registry,
        )

    def record(self, source: Source, result: WriteResult, seconds: float) -> None:
        """Count what a committed (or flushed) write did."""
        received = 0
        for slug, counts in result.tenants.items():
            received += counts.received
            if counts.received:
                self.received.labels(slug).inc(counts.received)
            if counts.written:
                self.written.labels(slug).inc(counts.written)
            if counts.duplicate:
                self.duplicate.labels(slug).inc(counts.duplicate)
            for reason, count in counts.rejected_by_class.items():
                self.rejected.labels(slug, reason).inc(count)
        for reason, count in result.unrouted.items():
            self.unrouted.labels(source, reason).inc(count)
        self.batch_readings.labels(source).observe(received)
        self.write_seconds.labels(source).observe(seconds)

    def record_unrouted(self, source: Source, reason: str, count: int = 1) -> None:
        """Count messages refused before they reached the writer (e.g. a request body that is not JSON)."""
        self.unrouted.labels(source, reason).inc(count)

    def watch(self, runner: SubscriberRunner | None) -> None:
        """Report `runner`'s state in the subscriber gauges (None: not running, every gauge reads 0)."""
        if runner is None:
            for gauge in (
                self.subscriber_connected,
                self.subscriber_received,
                self.subscriber_acked,
                self.subscriber_failures,
                self.subscriber_reconnects,
            ):
                gauge.set_function(_zero)
            return
        self.subscriber_connected.set_function(lambda: float(runner.connected.is_set()))
        self.subscriber_received.set_function(lambda: float(runner.received))
        self.subscriber_acked.set_function(lambda: float(runner.acked))
        self.subscriber_failures.set_function(lambda: float(runner.handler_failures))
        self.subscriber_reconnects.set_function(lambda: float(runner.reconnects))


def _zero() -> float:
    return 0.0


def ingest_metrics(app: FastAPI) -> IngestMetrics:
    """The app's ingest metrics, created on first use on its registry."""
    metrics: IngestMetrics | None = getattr(app.state, "ingest_metrics", None)
    if metrics is None:
        metrics = app.state.ingest_metrics = IngestMetrics(app.state.metrics_registry)
    return metrics
