"""System health from three signals, as a pure function so the rule is read (and tested) in one place.

- the share of the fleet online: machines online or busy among those not in maintenance;
- the failure rate: failed among the inspections finished (completed or failed) in the recent window, judged
  only once at least `MIN_FINISHED_FOR_RATE` finished, so one early failure does not raise an alarm;
- the queue age: how long the oldest pending inspection has waited.

Each signal is `good`, `degraded` or `critical` by its thresholds, and the system takes the worst of them. A fleet
with no machine outside maintenance counts as fully offline when work is pending (nobody can take it) and is not
judged otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Health(StrEnum):
    good = "good"
    degraded = "degraded"
    critical = "critical"


_RANK: Final = {Health.good: 0, Health.degraded: 1, Health.critical: 2}

ONLINE_SHARE_DEGRADED: Final = 0.9
"""Below this share of the fleet online, the system is degraded..."""
ONLINE_SHARE_CRITICAL: Final = 0.5
"""...and below this one, critical."""
FAILURE_RATE_DEGRADED: Final = 0.05
FAILURE_RATE_CRITICAL: Final = 0.25
MIN_FINISHED_FOR_RATE: Final = 5
QUEUE_AGE_DEGRADED_SECONDS: Final = 5 * 60
QUEUE_AGE_CRITICAL_SECONDS: Final = 30 * 60


@dataclass(frozen=True)
class Signals:
    machines_in_service: int
    """Machines not in maintenance."""
    online_in_service: int
    """Of those, the ones online or busy."""
    finished: int
    """Inspections completed or failed in the window."""
    failed: int
    oldest_pending_seconds: float | None
    """How long the oldest pending inspection has waited; None when none is pending."""


@dataclass(frozen=True)
class Verdict:
    health: Health
    reasons: list[str]
    """What made it less than good, worst first; empty when good."""


def _grade(value: float, degraded: float, critical: float, *, higher_is_worse: bool) -> Health:
    if higher_is_worse:
        return Health.critical if value >= critical else Health.degraded if value >= degraded else Health.good
    return Health.critical if value < critical else Health.degraded if value < degraded else Health.good


def judge(signals: Signals) -> Verdict:
    """The worst of the three signals' grades, with a sentence for each signal that is not good."""
    graded: list[tuple[Health, str]] = []
    if signals.machines_in_service:
        share = signals.online_in_service / signals.machines_in_service
        graded.append(
            (
                _grade(share, ONLINE_SHARE_DEGRADED, ONLINE_SHARE_CRITICAL, higher_is_worse=False),
                f"{signals.online_in_service} of {signals.machines_in_service} machines in service are online",
            )
        )
    elif signals.oldest_pending_seconds is not None:
        graded.append((Health.critical, "inspections are pending and no machine is in service"))
    if signals.finished >= MIN_FINISHED_FOR_RATE:
        rate = signals.failed / signals.finished
        graded.append(
            (
                _grade(rate, FAILURE_RATE_DEGRADED, FAILURE_RATE_CRITICAL, higher_is_worse=True),
                f"{signals.failed} of {signals.finished} inspections finished recently failed",
            )
        )
    if signals.oldest_pending_seconds is not None:
        minutes = signals.oldest_pending_seconds / 60
        graded.append(
            (
                _grade(
                    signals.oldest_pending_seconds,
                    QUEUE_AGE_DEGRADED_SECONDS,
                    QUEUE_AGE_CRITICAL_SECONDS,
                    higher_is_worse=True,
                ),
                f"the oldest pending inspection has waited {minutes:.0f} min",
            )
        )
    bad = sorted((pair for pair in graded if pair[0] is not Health.good), key=lambda pair: -_RANK[pair[0]])
    return Verdict(health=bad[0][0] if bad else Health.good, reasons=[reason for _, reason in bad])
