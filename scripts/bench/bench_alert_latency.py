"""Time from an event on the stream to its alert committed, p99, with 1,000 rules, at a steady event rate.

Events are published one by one at a fixed rate; the clock starts before each XADD and stops when the transaction
that handled the event commits (a hook on the sessions' commit). Baseline: the same events through the same
consumer with a handler that does nothing, timed the same way, so the ratio shows what evaluating 1,000 rules and
raising the alert add to the consumer's own path (read, inbox, commit).
"""

from __future__ import annotations

import asyncio
import os
import time

from bench_alerts_common import (
    RULES,
    AlertSite,
    CommitClock,
    alert_site,
    clear_alerts,
    consumer,
    new_stream,
    percentile,
    quick,
)
from redis.asyncio import Redis
from report import Report, load_note
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.bus import Event
from mirante.devstack import StackUrls
from rtls_cambus.alerts.engine import AlertEngine

RATE_PER_SECOND = 10


async def _latencies(redis: Redis, site: AlertSite, count: int, engine: AlertEngine | None) -> list[float]:
    """Seconds from XADD to commit for each of `count` events published at `RATE_PER_SECOND`."""
    clock = CommitClock(count)

    async def handler(session: AsyncSession, item: Event) -> None:
        if engine is not None:
            await engine.handle_event(session, item)
        clock.note(session, item)

    stream = new_stream("latency")
    member = consumer(redis, clock.sessionmaker(site.engine), stream, handler)
    await member.ensure_groups()
    task = asyncio.create_task(member.run())
    sent: dict[str, float] = {}
    try:
        await asyncio.sleep(0.5)
        started = time.perf_counter()
        for index, item in enumerate(site.events(count, seed=11 + count + (1 if engine else 0))):
            await asyncio.sleep(max(0.0, started + index / RATE_PER_SECOND - time.perf_counter()))
            sent[item.id] = time.perf_counter()
            await redis.xadd(stream, item.to_fields())  # type: ignore[arg-type]
        await asyncio.wait_for(clock.done.wait(), 300)
    finally:
        member.stop()
        await asyncio.wait_for(task, 60)
        await redis.delete(stream)
    return [clock.committed[event_id] - at for event_id, at in sent.items()]


def _ms(values: list[float]) -> str:
    return f"{percentile(values, 0.5) * 1000:.1f} ms / {percentile(values, 0.99) * 1000:.1f} ms"


async def run(urls: StackUrls) -> Report:
    count = 50 if quick() else 600
    load_at_start = os.getloadavg()[0]
    redis = Redis.from_url(urls.redis_url, socket_timeout=30)
    try:
        async with alert_site(urls) as site:
            await _latencies(redis, site, min(count, 50), AlertEngine())  # warm-up
            await clear_alerts(site)
            baseline = await _latencies(redis, site, count, None)
            alerts = await _latencies(redis, site, count, AlertEngine())
    finally:
        await redis.aclose()
    alert_p99 = percentile(alerts, 0.99)
    return Report(
        name="alert_latency",
        title="rtls-cambus alerts: event to alert created, p99",
        rows=[
            (
                f"baseline: event → committed by a consumer that does nothing, p50 / p99 ({count:,} events)",
                _ms(baseline),
            ),
            (f"**event → alert committed, {RULES:,} rules, p50 / p99** ({count:,} events)", f"**{_ms(alerts)}**"),
        ],
        ratio=alert_p99 / percentile(baseline, 0.99),
        ratio_meaning="alert p99 ÷ bare consumer p99",
        target="≤ 3, and p99 well under a second",
        notes=[
            f"Events published one at a time at {RATE_PER_SECOND}/s, each a new zone entry evaluated against "
            f"{RULES:,} zone-entry rules with one holding; the consumer reads with XREADGROUP (BLOCK), handles what it "
            "got in one transaction and acknowledges after the commit.",
            "In the service the alert's `rtls.alert.created` then leaves through the outbox relay, which adds its own "
            "delay (see the event bus section).",
            load_note(load_at_start),
        ],
    )
