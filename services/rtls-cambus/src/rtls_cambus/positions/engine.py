"""The position engine of one tag: which gateway (so which zone) a tag is at, from its readings over time.

Pure and deterministic: no I/O, no clock. The caller passes each reading's time and keeps the `TagState` between
calls (the service keeps it in the tag's position row, so any replica carries on where another stopped).

The rule (room level, cheap, explainable):

1. A reading is the gateway's RSSI plus its `rssi_offset`; below the gateway's `rssi_threshold` it is ignored.
2. Per gateway, an asymmetric EWMA: a stronger reading is followed quickly (`alpha_rise`), a weaker one slowly
   (`alpha_fall`), so one faded packet does not pull a tag out of its room. A gateway silent for longer than
   `fresh_seconds` is forgotten and starts again from its next reading.
3. With no position, or when the current gateway is no longer fresh, the strongest fresh gateway wins at once.
4. Otherwise a challenger must beat the current gateway by `margin_db` and keep doing so for `dwell_seconds`
   (the same challenger: the clock starts again when another one leads or the lead drops below the margin).
5. With no fresh gateway at all the position is unknown (`decide` says so at any time, readings or not).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple


@dataclass(frozen=True, slots=True)
class EngineParams:
    alpha_rise: float = 0.5
    alpha_fall: float = 0.2
    fresh_seconds: float = 30.0
    margin_db: float = 6.0
    dwell_seconds: float = 5.0

    def __post_init__(self) -> None:
        if not (0 < self.alpha_rise <= 1 and 0 < self.alpha_fall <= 1):
            raise ValueError("alpha_rise and alpha_fall must be in (0, 1]")
        if self.fresh_seconds <= 0 or self.margin_db < 0 or self.dwell_seconds < 0:
            raise ValueError("fresh_seconds must be positive, margin_db and dwell_seconds not negative")


class Track(NamedTuple):
    """The smoothed RSSI of one gateway for this tag and when it last heard the tag (seconds, caller's clock).

    Tuples, as `Reading`: one is made per reading."""

    level: float
    seen: float


@dataclass(frozen=True, slots=True)
class TagState:
    tracks: dict[int, Track] = field(default_factory=dict)
    current: int | None = None
    challenger: int | None = None
    challenger_since: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "tracks": {str(gateway): [track.level, track.seen] for gateway, track in self.tracks.items()},
            "current": self.current,
            "challenger": self.challenger,
            "challenger_since": self.challenger_since,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> TagState:
        if not data:
            return cls()
        tracks = {int(gateway): Track(float(level), float(seen)) for gateway, (level, seen) in data["tracks"].items()}
        return cls(tracks, data.get("current"), data.get("challenger"), data.get("challenger_since"))


class Reading(NamedTuple):
    gateway: int
    rssi: int
    at: float
    offset: int = 0
    threshold: int | None = None


@dataclass(frozen=True, slots=True)
class Position:
    """Where the engine puts the tag: a gateway (None: unknown), its smoothed level and lead over the next one."""

    gateway: int | None
    level: float | None
    lead_db: float | None


def _fresh(state: TagState, now: float, params: EngineParams) -> dict[int, Track]:
    return {gateway: track for gateway, track in state.tracks.items() if now - track.seen <= params.fresh_seconds}


def _strongest(tracks: dict[int, Track]) -> int:
    # Ties go to the lowest gateway id, so the same readings always give the same answer.
    best, best_level = -1, -math.inf
    for gateway, track in tracks.items():
        if track.level > best_level or (track.level == best_level and gateway < best):
            best, best_level = gateway, track.level
    return best


def observe(state: TagState, reading: Reading, params: EngineParams) -> TagState:
    """The state after one reading (unchanged when the reading is ignored)."""
    return observe_together(state, (reading,), params)


def observe_together(state: TagState, readings: Sequence[Reading], params: EngineParams) -> TagState:
    """The state after readings received together (one batch, one time): every gateway's track is updated in
    turn, then the rule is applied once at the latest reading's time, so the order in which simultaneous readings
    happen to arrive does not decide where a tag is first placed. Unchanged when every reading is ignored."""
    if not readings:
        return state
    now = max(reading.at for reading in readings)
    tracks = _fresh(state, now, params)
    changed = False
    for reading in readings:
        rssi = reading.rssi + reading.offset
        if reading.threshold is not None and rssi < reading.threshold:
            continue
        previous = tracks.get(reading.gateway) or state.tracks.get(reading.gateway)
        if previous is not None and reading.at < previous.seen:
            continue  # older than what this gateway already told: arrived out of order
        if previous is None or reading.at - previous.seen > params.fresh_seconds:
            level = float(rssi)
        else:
            alpha = params.alpha_rise if rssi > previous.level else params.alpha_fall
            level = previous.level + alpha * (rssi - previous.level)
        tracks[reading.gateway] = Track(level, reading.at)
        changed = True
    return _decide(state, tracks, now, params) if changed else state


def decide(state: TagState, now: float, params: EngineParams) -> TagState:
    """Apply the switching rule at `now`: the incumbent holds unless a challenger has led by the margin long
    enough; with no fresh gateway the position becomes unknown."""
    return _decide(state, _fresh(state, now, params), now, params)


def _decide(state: TagState, fresh: dict[int, Track], now: float, params: EngineParams) -> TagState:
    # `fresh`: the state's tracks still fresh at `now` (observe has just added its reading's), computed once.
    if not fresh:
        return TagState({}, None, None, None)
    best = _strongest(fresh)
    if state.current is None or state.current not in fresh:
        return TagState(fresh, best, None, None)
    if best == state.current or fresh[best].level - fresh[state.current].level < params.margin_db:
        return TagState(fresh, state.current, None, None)
    since = state.challenger_since if state.challenger == best and state.challenger_since is not None else now
    if now - since >= params.dwell_seconds:
        return TagState(fresh, best, None, None)
    return TagState(fresh, state.current, best, since)


def position(state: TagState) -> Position:
    """The position a state stands for."""
    if state.current is None or state.current not in state.tracks:
        return Position(None, None, None)
    level = state.tracks[state.current].level
    others = [track.level for gateway, track in state.tracks.items() if gateway != state.current]
    return Position(state.current, level, round(level - max(others), 2) if others else None)
