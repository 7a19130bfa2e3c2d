"""CAM-BUS cameras of a building publishing info, status and analytic events with new/update/end, for tests.

Each camera publishes `.../camera/<code>/info` and `.../status` once, then `events` analytic events on
`.../<analytic>/events` in Frigate's shape (`{"type", "before", "after": {"id", "label", "score", ...}}`): a
`new`, `updates` updates (score and zones changing) and an `end`, all with the same id. The building's
collector announces itself on `rtls/cameras/<tenant>/<building>/collector/status`.

    .venv/bin/python scripts/simulators/cameras.py --url mqtt://127.0.0.1:1883 --building hq --cameras 3
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from mirante.mqtt import Publisher

LABELS = ("person", "car", "bicycle")
ZONES = ("lobby", "corridor", "lab", "parking")


@dataclass
class CameraFleet:
    building: str
    tenant: str = "default"
    cameras: int = 2
    floor: int = 0
    analytic: str = "detection"
    seed: int = 1
    codes: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self.codes = [f"cam-{index + 1:02d}" for index in range(self.cameras)]

    def base(self, code: str) -> str:
        return f"rtls/cameras/{self.tenant}/{self.building}/{self.floor}/camera/{code}"

    def announcements(self) -> list[tuple[str, bytes]]:
        out = [(f"rtls/cameras/{self.tenant}/{self.building}/collector/status", b"online")]
        for code in self.codes:
            info = {"model": "sim-cam", "firmware": "1.0", "resolution": "1920x1080"}
            out += [(f"{self.base(code)}/info", orjson.dumps(info)), (f"{self.base(code)}/status", b"online")]
        return out

    def event(self, code: str, number: int, updates: int, start: float) -> list[tuple[str, bytes]]:
        """The messages of one event: new, `updates` updates, end; one id throughout."""
        event_id = f"{start:.3f}-{code}-{number}"
        label = self._random.choice(LABELS)
        topic = f"{self.base(code)}/{self.analytic}/events"
        before: dict[str, Any] | None = None
        out = []
        steps = ["new", *["update"] * updates, "end"]
        for step, kind in enumerate(steps):
            after = {
                "id": event_id,
                "camera": code,
                "label": label,
                "score": round(self._random.uniform(0.5, 0.99), 3),
                "start_time": start,
                "end_time": start + step if kind == "end" else None,
                "current_zones": [] if kind == "end" else [self._random.choice(ZONES)],
                "entered_zones": [],
            }
            out.append((topic, orjson.dumps({"type": kind, "before": before, "after": after})))
            before = after
        return out

    async def publish(self, url: str, *, events: int = 3, updates: int = 2, progress: bool = False) -> dict[str, int]:
        sent = 0
        start = time.time()
        async with Publisher(url) as publisher:
            sent += await publisher.publish_many(self.announcements())
            for number in range(events):
                for code in self.codes:
                    # One event's messages in order: its id must meet new before update before end.
                    for topic, payload in self.event(code, number, updates, start + number):
                        await publisher.publish(topic, payload)
                        sent += 1
                if progress:
                    print(f"event {number + 1}/{events} on {len(self.codes)} cameras, {sent} messages", file=sys.stderr)
        return {"messages": sent, "events": events * len(self.codes)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--tenant", default="default")
    parser.add_argument("--building", required=True, help="the building's code in the catalogue")
    parser.add_argument("--floor", type=int, default=0, help="floor level")
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--analytic", default="detection")
    parser.add_argument("--events", type=int, default=3, help="events per camera")
    parser.add_argument("--updates", type=int, default=2, help="update messages per event")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    fleet = CameraFleet(args.building, args.tenant, args.cameras, args.floor, args.analytic, args.seed)
    summary = asyncio.run(fleet.publish(args.url, events=args.events, updates=args.updates, progress=not args.quiet))
    print(orjson.dumps(summary).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
