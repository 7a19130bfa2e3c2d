"""A building's BLE gateways publishing beacon readings of people walking between rooms, for tests and demos.

`Building` has `rooms` rooms in a row, one gateway per room. Each person carries a tag and walks from room to
room, staying `dwell` ticks in each. At every tick each gateway publishes
`rtls/gateways/<mac>/beacon` with `{"readings": [{"tag_mac", "rssi"}]}` for the tags it hears: strongest in the
tag's own room (about -55 dBm), weaker one room away (about -75 dBm), with Gaussian noise, clamped to the valid
-127..0 dBm. `silent_gateway` makes one gateway stop publishing halfway through (it should go offline).
`readings_per_message` splits a gateway's readings of a tick into messages of at most that many (benchmarks).
Everything comes from a seeded generator, so a test knows where each person was at each tick (`PublishResult`).

    .venv/bin/python scripts/simulators/gateways.py --url mqtt://127.0.0.1:1883 --rooms 4 --people 6 --ticks 60
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import orjson

from mirante.mqtt import Publisher


@dataclass
class PublishResult:
    messages: int = 0
    readings: int = 0
    rooms: list[dict[str, int]] = field(default_factory=list)
    """Per tick, the room each tag was in."""
    silent_from_tick: int | None = None

    def visits(self, tag: str) -> list[int]:
        """The rooms `tag` was in, in order, each stay once: where a position engine should have placed it."""
        rooms = [tick[tag] for tick in self.rooms]
        return [room for index, room in enumerate(rooms) if index == 0 or rooms[index - 1] != room]


@dataclass
class Building:
    rooms: int = 4
    people: int = 5
    dwell: int = 5
    noise_db: float = 3.0
    seed: int = 1
    silent_gateway: bool = False
    start_room: int | None = None
    """Everyone starts in this room (default: each in a room drawn at random)."""
    gateways: list[str] = field(init=False)
    tags: list[str] = field(init=False)

    def __post_init__(self) -> None:
        if self.rooms < 1 or self.people < 0 or self.dwell < 1:
            raise ValueError("rooms and dwell must be at least 1, people at least 0")
        if self.start_room is not None and not 0 <= self.start_room < self.rooms:
            raise ValueError(f"start_room must be one of the rooms 0..{self.rooms - 1}")
        self._random = random.Random(self.seed)
        self.gateways = [self._mac(0x0A) for _ in range(self.rooms)]
        self.tags = [self._mac(0x0B) for _ in range(self.people)]
        self._room = {
            tag: self._random.randrange(self.rooms) if self.start_room is None else self.start_room for tag in self.tags
        }

    def _mac(self, prefix: int) -> str:
        return ":".join(f"{byte:02X}" for byte in [prefix, *(self._random.randrange(256) for _ in range(5))])

    def step(self, tick: int) -> dict[str, int]:
        """Move people whose dwell is over to a neighbouring room; where each tag is now."""
        if tick and tick % self.dwell == 0:
            for tag in self.tags:
                here = self._room[tag]
                options = [room for room in (here - 1, here + 1) if 0 <= room < self.rooms] or [here]
                self._room[tag] = self._random.choice(options)
        return dict(self._room)

    def rssi(self, tag_room: int, gateway_room: int) -> int:
        distance = abs(tag_room - gateway_room)
        value = -55 - 20 * distance + self._random.gauss(0, self.noise_db)
        return max(-127, min(0, round(value)))

    def messages(
        self, tick: int, silent_from: int | None, readings_per_message: int | None = None
    ) -> list[tuple[str, bytes]]:
        """The beacon messages of `tick`: one per gateway that hears anyone (and is not silent), or several of at
        most `readings_per_message` readings each."""
        rooms = self.step(tick)
        out = []
        for index, gateway in enumerate(self.gateways):
            if silent_from is not None and index == 0 and tick >= silent_from:
                continue
            heard = [
                {"tag_mac": tag, "rssi": self.rssi(room, index)}
                for tag, room in rooms.items()
                if abs(room - index) <= 1
            ]
            size = readings_per_message or max(len(heard), 1)
            topic = f"rtls/gateways/{gateway}/beacon"
            out.extend(
                (topic, orjson.dumps({"readings": heard[start : start + size]}))
                for start in range(0, max(len(heard), 1), size)
            )
        return out

    async def publish(
        self,
        url: str,
        *,
        ticks: int,
        interval: float = 0.0,
        progress: bool = False,
        first_tick: int = 0,
        after_tick: Callable[[int, PublishResult], Awaitable[None]] | None = None,
        readings_per_message: int | None = None,
    ) -> PublishResult:
        """Publish ticks `first_tick` to `first_tick + ticks - 1`; a later call with `first_tick` where the last
        one stopped continues the same walk. `after_tick(tick, result)` runs once a tick's messages are
        acknowledged (a test waits there for the ingest to have stored them)."""
        result = PublishResult(silent_from_tick=first_tick + ticks // 2 if self.silent_gateway else None)
        started = time.monotonic()
        async with Publisher(url) as publisher:
            for tick in range(first_tick, first_tick + ticks):
                batch = self.messages(tick, result.silent_from_tick, readings_per_message)
                result.rooms.append(dict(self._room))
                await publisher.publish_many(batch)
                result.messages += len(batch)
                result.readings += sum(len(orjson.loads(payload)["readings"]) for _, payload in batch)
                if progress:
                    rate = result.messages / max(time.monotonic() - started, 1e-6)
                    print(f"tick {tick + 1}/{ticks}: {result.messages} messages ({rate:.0f}/s)", file=sys.stderr)
                if after_tick is not None:
                    await after_tick(tick, result)
                if interval:
                    await asyncio.sleep(interval)
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--rooms", type=int, default=4)
    parser.add_argument("--people", type=int, default=5)
    parser.add_argument("--dwell", type=int, default=5, help="ticks a person stays in a room")
    parser.add_argument("--ticks", type=int, default=30)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between ticks")
    parser.add_argument("--noise-db", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--silent-gateway", action="store_true", help="the first gateway stops halfway through")
    parser.add_argument("--start-room", type=int, default=None, help="everyone starts in this room (0-based)")
    parser.add_argument(
        "--readings-per-message", type=int, default=None, help="split each gateway's readings of a tick into messages"
    )
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    try:
        building = Building(
            args.rooms,
            args.people,
            args.dwell,
            args.noise_db,
            args.seed,
            silent_gateway=args.silent_gateway,
            start_room=args.start_room,
        )
        if args.readings_per_message is not None and args.readings_per_message < 1:
            raise ValueError("readings per message must be at least 1")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"gateways: {', '.join(building.gateways)}", file=sys.stderr)
    result = asyncio.run(
        building.publish(
            args.url,
            ticks=args.ticks,
            interval=args.interval,
            progress=not args.quiet,
            readings_per_message=args.readings_per_message,
        )
    )
    print(orjson.dumps({"messages": result.messages, "readings": result.readings}).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
