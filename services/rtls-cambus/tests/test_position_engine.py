"""The position engine with synthetic, seeded reading sequences: walking, standing still in noise, silence."""

from __future__ import annotations

import math
import random

import pytest

from rtls_cambus.positions.engine import (
    EngineParams,
    Reading,
    TagState,
    decide,
    observe,
    observe_together,
    position,
)

PARAMS = EngineParams()
# Three rooms in a row, a gateway in each, 8 m apart; a path loss of 25 dB per decade of distance (≈ indoor).
GATEWAYS = {1: 0.0, 2: 8.0, 3: 16.0}


def rssi_at(distance_m: float) -> float:
    return -55.0 - 25.0 * math.log10(max(distance_m, 1.0))


def walk(stays: list[tuple[float, float]], *, noise_db: float, seed: int, every: float = 1.0) -> list[Reading]:
    """Readings of every gateway each `every` seconds for a person standing at each (place_m, seconds) in turn,
    walking between places at 1.2 m/s, with Gaussian noise and a few lost packets."""
    rng = random.Random(seed)
    points: list[float] = []
    here = stays[0][0]
    for place, seconds in stays:
        steps = int(abs(place - here) / (1.2 * every))
        points += [here + (place - here) * step / max(steps, 1) for step in range(steps)]
        points += [place] * int(seconds / every)
        here = place
    readings = []
    for index, x in enumerate(points):
        for gateway, gx in GATEWAYS.items():
            if rng.random() < 0.1:
                continue
            level = rssi_at(abs(x - gx)) + rng.gauss(0, noise_db)
            readings.append(Reading(gateway, round(level), index * every))
    return readings


def run(readings: list[Reading], params: EngineParams = PARAMS) -> tuple[TagState, list[int | None]]:
    """The final state and the sequence of gateways the tag was placed at (one entry per switch)."""
    state = TagState()
    placed: list[int | None] = []
    for reading in readings:
        state = observe(state, reading, params)
        current = position(state).gateway
        if not placed or placed[-1] != current:
            placed.append(current)
    return state, placed


@pytest.mark.parametrize("seed", range(20))
def test_walking_room_to_room_switches_once_per_room_change(seed: int) -> None:
    stays = [(0.0, 60), (8.0, 60), (16.0, 60), (8.0, 60), (0.0, 60)]
    _, placed = run(walk(stays, noise_db=4.0, seed=seed))
    assert placed == [1, 2, 3, 2, 1]


@pytest.mark.parametrize("seed", range(20))
def test_standing_between_two_rooms_in_noise_does_not_flap(seed: int) -> None:
    # 3 m from room 1's gateway and 5 m from room 2's: 5.5 dB apart on average, under noise of sd 5 dB.
    rng = random.Random(seed)
    readings = []
    for second in range(600):
        readings.append(Reading(1, round(rssi_at(3.0) + rng.gauss(0, 5)), float(second)))
        readings.append(Reading(2, round(rssi_at(5.0) + rng.gauss(0, 5)), float(second) + 0.5))
    _, placed = run(readings)
    assert placed == [1]


def test_offset_and_threshold_apply_before_smoothing() -> None:
    state = observe(TagState(), Reading(1, -90, 0.0, offset=0, threshold=-85), PARAMS)
    assert position(state).gateway is None
    state = observe(state, Reading(1, -90, 1.0, offset=10, threshold=-85), PARAMS)
    assert position(state).gateway == 1 and position(state).level == -80.0


def test_a_stronger_room_needs_the_margin_for_the_dwell_time() -> None:
    state = observe(TagState(), Reading(1, -60, 0.0), PARAMS)
    state = observe(state, Reading(2, -57, 1.0), PARAMS)  # stronger, but within the margin
    assert position(state).gateway == 1 and state.challenger is None
    state = observe(state, Reading(2, -50, 2.0), PARAMS)
    assert position(state).gateway == 1 and state.challenger == 2
    state = observe(state, Reading(2, -50, 6.0), PARAMS)
    assert position(state).gateway == 1
    state = observe(state, Reading(2, -50, 7.0), PARAMS)
    assert position(state).gateway == 2 and position(state).lead_db is not None


def test_a_lead_that_drops_below_the_margin_starts_the_dwell_again() -> None:
    state = observe(TagState(), Reading(1, -60, 0.0), PARAMS)
    state = observe(state, Reading(2, -40, 1.0), PARAMS)
    assert state.challenger == 2 and state.challenger_since == 1.0
    state = observe(state, Reading(1, -30, 2.0), PARAMS)  # room 1 comes back strongly
    assert state.challenger is None
    state = observe(state, Reading(2, -35, 3.0), PARAMS)
    assert state.challenger == 2 and state.challenger_since == 3.0


def test_silence_makes_the_position_unknown_and_a_stale_room_is_left_at_once() -> None:
    state = observe(TagState(), Reading(1, -60, 0.0), PARAMS)
    assert position(decide(state, PARAMS.fresh_seconds, PARAMS)).gateway == 1
    assert position(decide(state, PARAMS.fresh_seconds + 1, PARAMS)).gateway is None
    # Room 1 went quiet; a weak room 2 takes over without waiting for the margin or the dwell.
    state = observe(state, Reading(2, -85, 31.0), PARAMS)
    assert position(state).gateway == 2


def test_readings_received_together_place_a_new_tag_at_the_strongest_whatever_their_order() -> None:
    near, far = Reading(1, -55, 5.0), Reading(2, -75, 5.0)
    for readings in ([near, far], [far, near]):
        state = observe_together(TagState(), readings, PARAMS)
        assert position(state).gateway == 1 and set(state.tracks) == {1, 2}
    # One at a time, the first heard places the tag and the second must beat it by the margin for the dwell time.
    assert position(observe(observe(TagState(), far, PARAMS), near, PARAMS)).gateway == 2
    ignored = Reading(3, -90, 5.0, threshold=-80)
    assert observe_together(TagState(), [ignored], PARAMS) == TagState()


def test_out_of_order_readings_of_a_gateway_are_ignored() -> None:
    state = observe(TagState(), Reading(1, -60, 10.0), PARAMS)
    assert observe(state, Reading(1, -90, 9.0), PARAMS) == state


def test_state_survives_its_json_form() -> None:
    state = observe(TagState(), Reading(1, -60, 0.0), PARAMS)
    state = observe(state, Reading(2, -40, 1.0), PARAMS)
    assert TagState.from_json(state.to_json()) == state
    assert TagState.from_json(None) == TagState()


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        EngineParams(alpha_rise=0)
    with pytest.raises(ValueError):
        EngineParams(fresh_seconds=0)
