"""What happened to each stream entry a consumer saw, and the running totals of those outcomes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    """What happened to one stream entry."""

    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    FAILED = "failed"
    DEAD_LETTERED = "dead_lettered"
    MISSING = "missing"
    """The entry was deleted from the stream while pending; it is acknowledged and dropped."""
    SKIPPED = "skipped"
    """The entry's type is not one the handler needs (`wanted_types`); acknowledged unparsed, without an inbox row."""


@dataclass
class ConsumerStats:
    """Running totals, in a shape that maps directly onto Prometheus counters."""

    processed: int = 0
    duplicates: int = 0
    failures: int = 0
    dead_lettered: int = 0
    missing: int = 0
    skipped: int = 0
    reclaimed: int = 0
    loop_errors: int = 0
    batch_fallbacks: int = 0
    """Batches whose transaction failed as a whole and were applied again one entry at a time."""

    def count(self, outcome: Outcome) -> None:
        """Add one to the total of `outcome`."""
        match outcome:
            case Outcome.PROCESSED:
                self.processed += 1
            case Outcome.DUPLICATE:
                self.duplicates += 1
            case Outcome.FAILED:
                self.failures += 1
            case Outcome.DEAD_LETTERED:
                self.dead_lettered += 1
            case Outcome.MISSING:
                self.missing += 1
            case Outcome.SKIPPED:
                self.skipped += 1
