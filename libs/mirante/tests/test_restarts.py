"""The backoff `mirante up` applies before starting a dead service again."""

from __future__ import annotations

import pytest

from mirante.restarts import RestartBackoff


def test_quick_exits_double_the_delay_up_to_the_cap() -> None:
    backoff = RestartBackoff(initial=1.0, maximum=10.0, stable_after=60.0)
    assert [backoff.delay_after_exit(uptime=2.0) for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff.delay_after_failed_start() == 10.0


def test_a_process_that_ran_long_enough_starts_from_the_first_delay_again() -> None:
    backoff = RestartBackoff(initial=1.0, maximum=60.0, stable_after=30.0)
    backoff.delay_after_exit(uptime=1.0)
    backoff.delay_after_exit(uptime=1.0)
    assert backoff.delay_after_exit(uptime=1.0) == 4.0
    assert backoff.delay_after_exit(uptime=30.0) == 1.0
    assert backoff.delay_after_exit(uptime=5.0) == 2.0


@pytest.mark.parametrize(("initial", "maximum", "stable_after"), [(0.0, 1.0, 1.0), (2.0, 1.0, 1.0), (1.0, 2.0, -1.0)])
def test_bad_delays_are_refused(initial: float, maximum: float, stable_after: float) -> None:
    with pytest.raises(ValueError, match="must"):
        RestartBackoff(initial=initial, maximum=maximum, stable_after=stable_after)
