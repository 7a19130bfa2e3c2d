"""The gateway simulator's walk and readings (its traffic through the ingest is in test_ingest_mqtt.py)."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))

from scripts.simulators.gateways import Building  # noqa: E402


def test_people_walk_to_neighbouring_rooms_and_readings_stay_in_range() -> None:
    building = Building(rooms=4, people=3, dwell=2, seed=uuid.uuid4().int % 1000)
    previous = building.step(0)
    for tick in range(1, 20):
        now = building.step(tick)
        assert all(abs(now[tag] - previous[tag]) <= 1 for tag in building.tags)
        previous = now
    assert all(-127 <= building.rssi(0, gateway) <= 0 for gateway in range(4))
    assert Building(seed=5).gateways == Building(seed=5).gateways
