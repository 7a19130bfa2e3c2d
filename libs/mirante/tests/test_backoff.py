"""Retry delays: full jitter under a doubling ceiling, reset after success, and `Retry-After` honoured."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from mirante.backoff import Backoff, full_jitter, retry_after_seconds, scheduled_delay
from mirante.mqtt.batching import Backoff as RunnerBackoff


def test_full_jitter_draws_from_zero_to_the_doubling_ceiling(monkeypatch: pytest.MonkeyPatch) -> None:
    ceilings: list[float] = []
    monkeypatch.setattr(random, "uniform", lambda low, high: ceilings.append(high) or low)
    backoff = Backoff(0.5, 5.0)
    delays = [backoff.next_delay() for _ in range(6)]
    assert delays == [0.0] * 6
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_delays_stay_within_their_ceiling_and_spread_over_it() -> None:
    delays = [full_jitter(3, 0.1, 10.0) for _ in range(2_000)]
    assert all(0 <= delay <= 0.8 for delay in delays)
    assert min(delays) < 0.1 and max(delays) > 0.7


def test_a_huge_attempt_number_stays_at_the_cap() -> None:
    assert 0 <= full_jitter(10_000, 1.0, 30.0) <= 30.0


def test_reset_starts_again_from_the_base() -> None:
    backoff = Backoff(1.0, 60.0)
    for _ in range(5):
        backoff.next_delay()
    assert backoff.attempt == 5
    backoff.reset()
    assert backoff.attempt == 0
    assert backoff.next_delay() <= 1.0


def test_a_zero_base_never_waits() -> None:
    backoff = Backoff(0.0, 0.0)
    assert [backoff.next_delay() for _ in range(3)] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(("base", "cap"), [(-1.0, 1.0), (2.0, 1.0)])
def test_bad_delays_are_refused(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="0 <= base <= cap"):
        Backoff(base, cap)


def test_retry_after_in_seconds_is_honoured_and_capped() -> None:
    backoff = Backoff(0.5, 5.0, retry_after_cap=120.0)
    assert backoff.next_delay("7") == 7.0
    assert backoff.next_delay("1.5") == 1.5
    assert backoff.next_delay("86400") == 120.0
    assert backoff.next_delay("-3") == 0.0
    assert backoff.attempt == 4


def test_retry_after_as_an_http_date_counts_from_now() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    header = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds(header, now=now) == 30.0
    assert retry_after_seconds(format_datetime(now - timedelta(hours=1), usegmt=True), now=now) == 0.0
    assert retry_after_seconds(format_datetime(now + timedelta(days=1), usegmt=True), cap=60.0, now=now) == 60.0


@pytest.mark.parametrize("header", [None, "", "soon", "nan", "Mon, 99 Foo 2026"])
def test_a_missing_or_unreadable_retry_after_falls_back_to_jitter(header: str | None) -> None:
    assert retry_after_seconds(header) is None
    assert 0 <= Backoff(0.5, 5.0).next_delay(header) <= 0.5


def test_the_mqtt_runner_keeps_its_backoff_name() -> None:
    assert RunnerBackoff is Backoff


def test_a_schedule_bounds_each_retry_and_ends() -> None:
    schedule = [1.0, 10.0, 100.0]
    for attempts, step in enumerate(schedule, start=1):
        delays = [scheduled_delay(attempts, schedule) for _ in range(50)]
        assert all(delay is not None and 0 <= delay <= step for delay in delays)
    assert scheduled_delay(4, schedule) is None
    assert scheduled_delay(1, schedule, retry_after="30") == 30.0
    assert scheduled_delay(1, schedule, retry_after="100000") == 100.0
