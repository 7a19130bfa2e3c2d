"""The distribution strategies as pure functions: who ranks first, and why none when nobody can."""

from __future__ import annotations

from vision_orchestrator.dispatch.strategies import Candidate, Place, Want, choose, rank

BLOB = "blob_detection"


def machine(
    machine_id: str,
    *,
    current: int = 0,
    capacity: int = 2,
    types: tuple[str, ...] = (BLOB,),
    location: str | None = None,
    line: str | None = None,
    successes: dict[str, tuple[int, int]] | None = None,
    available: bool = True,
) -> Candidate:
    return Candidate(
        id=machine_id,
        location=location,
        line=line,
        current=current,
        capacity=capacity,
        supported_types=frozenset(types),
        available=available,
        successes=successes or {},
    )


def ids(machines: list[Candidate]) -> list[str]:
    return [m.id for m in machines]


def test_specialized_prefers_fewest_other_types_then_the_best_success_rate_for_this_type() -> None:
    generalist = machine("mv_a", types=(BLOB, "edge_detection", "color_filter"), successes={BLOB: (100, 100)})
    specialist_poor = machine("mv_b", successes={BLOB: (4, 10)})
    specialist_good = machine("mv_c", successes={BLOB: (9, 10), "edge_detection": (0, 50)})
    specialist_new = machine("mv_d")  # no history: (0 + 1) / (0 + 2), between the two specialists
    machines = [generalist, specialist_poor, specialist_good, specialist_new]

    ranked = rank("specialized", Want(BLOB), machines)

    assert ids(ranked) == ["mv_c", "mv_d", "mv_b", "mv_a"]


def test_specialized_breaks_ties_by_load() -> None:
    busy = machine("mv_a", current=1, successes={BLOB: (9, 10)})
    idle = machine("mv_b", successes={BLOB: (9, 10)})

    assert ids(rank("specialized", Want(BLOB), [busy, idle])) == ["mv_b", "mv_a"]


def test_nearest_prefers_the_same_line_then_the_same_location_then_load() -> None:
    far_idle = machine("mv_a", location="Linha B")
    same_location_busy = machine("mv_b", location="Linha A", current=1)
    same_location_idle = machine("mv_c", location="Linha A")
    same_line_busy = machine("mv_d", location="Linha B", line="L1", current=1)
    want = Want(BLOB, place=Place(location="Linha A", line="L1"))

    ranked = rank("nearest", want, [far_idle, same_location_busy, same_location_idle, same_line_busy])

    assert ids(ranked) == ["mv_d", "mv_c", "mv_b", "mv_a"]


def test_nearest_without_a_place_is_load_balanced() -> None:
    busy = machine("mv_a", location="Linha A", current=1)
    idle = machine("mv_b", location="Linha B")

    assert ids(rank("nearest", Want(BLOB), [busy, idle])) == ["mv_b", "mv_a"]


def test_preferred_machines_rank_first_in_their_order_under_every_strategy() -> None:
    near = machine("mv_a", location="Linha A", line="L1")
    specialist = machine("mv_b", successes={BLOB: (10, 10)})
    loaded = machine("mv_c", current=1, types=(BLOB, "edge_detection"))
    want = Want(BLOB, preferred=("mv_c", "mv_b"), place=Place(location="Linha A", line="L1"))

    for strategy in ("load_balanced", "nearest", "specialized"):
        assert ids(rank(strategy, want, [near, specialist, loaded])) == ["mv_c", "mv_b", "mv_a"], strategy


def test_choose_skips_full_unavailable_and_unfit_machines_and_honours_the_target() -> None:
    full = machine("mv_a", current=2)
    down = machine("mv_b", available=False)
    other_type = machine("mv_c", types=("color_filter",))
    fit = machine("mv_d", current=1)
    also_fit = machine("mv_e")
    machines = [full, down, other_type, fit, also_fit]

    assert choose("specialized", Want(BLOB), machines) == also_fit
    assert choose("nearest", Want(BLOB, target_machine_id="mv_d"), machines) == fit
    assert choose("load_balanced", Want(BLOB, target_machine_id="mv_a"), machines) is None
