"""What the alert benchmarks share: a migrated bench database with a site of 1,000 people and 1,000 alert rules,
zone-entry events for them, streams, and sessions whose commits are timed.

Every rule is a `zone_entry` rule on the same restricted zone for one person (1,000 of the site's 2,000 people),
so each `rtls.person.zone_entered` event is evaluated against all 1,000 rules (they share the trigger). For a person
with a rule exactly one holds and the engine raises an alert (names, insert, outbox); for the others none does.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from mirante.bus import Event, StreamConsumer
from mirante.db import create_engine
from mirante.devstack import StackUrls
from mirante.testing.database import create_test_database, drop_test_database
from rtls_cambus.alerts.models import AlertRule
from rtls_cambus.buildings.models import Building, Floor
from rtls_cambus.identifiers import SCHEMA, SOURCE
from rtls_cambus.people.models import Person
from rtls_cambus.zones.models import Zone

RULES = 1_000
ZONE_ENTERED = "rtls.person.zone_entered"


def quick() -> bool:
    """`BENCH_QUICK=1` (or `run.py --quick`): small sizes, to check that the benchmark runs."""
    return os.environ.get("BENCH_QUICK") == "1"


@dataclass
class AlertSite:
    engine: AsyncEngine
    building_id: int
    floor_id: int
    zone_id: int
    watched: list[int]
    others: list[int]
    _session_ids: int = 0

    def entered(self, person_id: int) -> Event:
        """A new presence session of `person_id` in the restricted zone."""
        self._session_ids += 1
        return Event(
            source=SOURCE,
            type=ZONE_ENTERED,
            subject=f"person/{person_id}",
            data={
                "session_id": self._session_ids,
                "person_id": person_id,
                "tag_id": 1,
                "zone_id": self.zone_id,
                "floor_id": self.floor_id,
                "building_id": self.building_id,
            },
        )

    def events(self, count: int, *, alerting: float = 1.0, seed: int = 7) -> list[Event]:
        """`count` zone entries, the share `alerting` of them by people a rule watches (each raises an alert)."""
        draw = random.Random(seed)
        return [
            self.entered(draw.choice(self.watched if draw.random() < alerting else self.others)) for _ in range(count)
        ]


@asynccontextmanager
async def alert_site(urls: StackUrls) -> AsyncIterator[AlertSite]:
    """A fresh migrated database holding the site and its 1,000 rules; dropped afterwards."""
    database_url = await create_test_database(urls.database_url, prefix="mirante_bench_alerts")
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            session = AsyncSession(bind=connection)
            building = Building(name="Bench building")
            session.add(building)
            await session.flush()
            floor = Floor(building_id=building.id, level=0)
            session.add(floor)
            await session.flush()
            zone = Zone(floor_id=floor.id, name="Lab", restricted=True)
            session.add(zone)
            await session.flush()
            people = (
                await session.execute(
                    insert(Person).returning(Person.id), [{"full_name": f"Person {n}"} for n in range(2 * RULES)]
                )
            ).scalars()
            person_ids = list(people)
            await session.execute(
                insert(AlertRule),
                [
                    {
                        "name": f"Lab: person {person_id}",
                        "kind": "zone_entry",
                        "severity": "high",
                        "cooldown_seconds": 0,
                        "zone_id": zone.id,
                        "person_id": person_id,
                        "params": {"min_dwell_seconds": 0},
                    }
                    for person_id in person_ids[:RULES]
                ],
            )
            site = AlertSite(engine, building.id, floor.id, zone.id, person_ids[:RULES], person_ids[RULES:])
            await session.close()
        yield site
    finally:
        await engine.dispose()
        await drop_test_database(urls.database_url, database_url)


async def clear_alerts(site: AlertSite) -> None:
    async with site.engine.begin() as connection:
        await connection.execute(text(f'TRUNCATE "{SCHEMA}".alert_events, "{SCHEMA}".outbox'))


async def publish(redis: Redis, stream: str, events: list[Event]) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for item in events:
            pipe.xadd(stream, item.to_fields())  # type: ignore[arg-type]
        await pipe.execute()


def new_stream(name: str) -> str:
    return f"bench:alerts:{name}:{uuid.uuid4().hex[:8]}"


Handler = Callable[[AsyncSession, Event], Awaitable[Any]]


def consumer(
    redis: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    stream: str,
    handler: Handler,
    *,
    batch_size: int = 50,
) -> StreamConsumer:
    async def handle(session: AsyncSession, item: Event) -> None:
        await handler(session, item)

    return StreamConsumer(
        redis,
        sessionmaker,
        stream,
        f"bench-{uuid.uuid4().hex[:8]}",
        "bench-1",
        handle,
        SCHEMA,
        start_from="0",
        batch_size=batch_size,
        block_ms=100,
    )


@dataclass
class CommitClock:
    """When the transaction that handled each event committed (events noted by `note` in the handler); `done` is
    set once `expected` events have committed."""

    expected: int
    committed: dict[str, float] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def note(self, session: AsyncSession, item: Event) -> None:
        session.info.setdefault("bench_events", []).append(item.id)

    def sessionmaker(self, engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
        """A sessionmaker like the service's whose sessions stamp the noted events when they commit."""

        class TimedSession(Session):
            pass

        def committed(session: Session) -> None:
            now = time.perf_counter()
            for event_id in session.info.pop("bench_events", []):
                self.committed.setdefault(event_id, now)
            if len(self.committed) >= self.expected:
                self.done.set()

        def rolled_back(session: Session) -> None:
            session.info.pop("bench_events", None)

        sqlalchemy_event.listen(TimedSession, "after_commit", committed)
        sqlalchemy_event.listen(TimedSession, "after_rollback", rolled_back)
        return async_sessionmaker(engine, expire_on_commit=False, autoflush=False, sync_session_class=TimedSession)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
